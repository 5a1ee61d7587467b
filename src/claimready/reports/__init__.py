"""Reports: what a reviewer reads, built from stored evaluations and the evidence they cite."""
