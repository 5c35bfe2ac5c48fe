"""Moved to runstore/reader.py: `implied_tables` is `runstore.reader.implied_tables`. This name stays for one release
(until 0.2)."""

from runstore.reader import implied_tables

__all__ = ["implied_tables"]
