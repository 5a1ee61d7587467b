"""Tenants: one client organization each; every record belongs to exactly one."""
