"""Benchmarks of the evidence ledger."""
