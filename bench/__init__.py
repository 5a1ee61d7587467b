"""claimready's benchmarks: ``python -m bench [name ...] [--quick]``."""
