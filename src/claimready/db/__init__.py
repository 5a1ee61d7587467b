"""Relational store: SQLite by default, PostgreSQL at scale, one code path."""
