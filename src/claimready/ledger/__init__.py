"""The evidence ledger: one append-only, tamper-evident log per tenant.

The log is an RFC 6962 / RFC 9162 Merkle tree stored in the C2SP tlog-tiles
layout, with C2SP checkpoints signed as C2SP signed notes and per-entry
receipts in the C2SP tlog-proof format, so a reviewer can check it with any
independent implementation of those specifications.
"""
