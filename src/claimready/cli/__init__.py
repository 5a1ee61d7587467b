"""The ``claimready`` command line."""
