"""Connectors: collect raw evidence from one kind of source and normalize it into facts."""
