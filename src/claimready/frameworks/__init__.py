"""Security frameworks as data: catalogs of identifiers that controls map to."""
