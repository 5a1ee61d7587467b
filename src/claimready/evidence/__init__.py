"""Evidence: raw artifacts exactly as collected, content-addressed and entered in the ledger."""
