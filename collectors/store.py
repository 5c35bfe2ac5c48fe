"""Moved to runstore/ (the run store is a package of its own): `Run` is `runstore.reader.Run`. This name stays for one
release (until 0.2)."""

from runstore.reader import Run

__all__ = ["Run"]
