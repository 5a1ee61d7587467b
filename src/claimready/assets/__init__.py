"""Assets: one identity per machine, account or resource, reconciled across sources."""
