"""Which kernel code this is: one hash over the sources of the installed `kernels` package.

A run records it (run.json `kernels_hash`) so that a reader can tell whether the figures it shows were measured on
the kernels installed now, and the compiled instruction mixes are filed under it (collectors/mix_cache.py). It
covers every .py and .toml file of the package (the stages, their shared Gluon and launch code, the tuner, the
hardware table the launchers size grids and register budgets from), by path relative to the package and content,
so the same sources give the same hash on any machine, from a git checkout or an installed wheel, without git.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

SOURCE_SUFFIXES = (".py", ".toml")


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """12 hex digits of SHA-256 over the package's sources (read once per process)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]
