"""Moved to collectors/sweep/: `Interrupted` is `collectors.sweep.options.Interrupted` (and `collect` is
`collectors.sweep.collect.collect`). This name stays for one release (until 0.2)."""

from collectors.sweep.options import Interrupted

__all__ = ["Interrupted"]
