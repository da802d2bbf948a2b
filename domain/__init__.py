"""Pantheon's product rules: pure Python, no I/O frameworks (see docs/architecture.md)."""
