"""Which kernel code this is: one hash over the sources of the installed `kernels` package.

A run records it (run.json `environment.kernels_hash`, collectors/sweep/env.py) so that a report, the dashboard or
`perfmodel runs` can say, on a laptop install too, whether the figures it shows were measured on the kernels
installed there (perfmodel.runs.kernel_code), and the compiled instruction mixes are filed under it
(perfmodel's mix cache). It covers every .py and .toml file of the package (the stages, their shared Gluon and
launch code, the tuner, the peers' wrappers, the reference outputs are checked against, the hardware table the
launchers size grids and register budgets from; not the bookkeeping, BOOKKEEPING), by
path inside the package and content, so the same sources give the same hash on any machine, from a git checkout or
an installed wheel, without git. scripts/backfill_kernels_hash.py hashes a commit's tree through `kernels_digest`
too, so the two compare.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

# The files the hash covers: the package's sources and the data it ships (pyproject.toml's package-data for kernels
# is *.toml), found recursively, __pycache__ left out, less the bookkeeping that runs no kernel and sizes none: the
# registry of implementations and its package __init__ (which exist), how a user's kernel is named and loaded and
# how any name is looked up (user_kernels.py, importable.py, lookup.py), the messages for known causes, the suites
# (which configs a name means) and this module. Reorganizing those leaves every run's kernels as they were.
KERNELS_SOURCE_SUFFIXES = (".py", ".toml")
BOOKKEEPING = frozenset({"__init__.py", "registry.py", "user_kernels.py", "importable.py", "lookup.py",
                         "known_causes.py", "suites.py", "source.py"})
KERNELS_HASH_DIGITS = 12  # hex digits kept
# run.json environment.kernels_hash_source of a run whose hash collect computed (a backfilled run names its commit)
COLLECTED_KERNELS_SOURCE = "the installed kernels package, when the run was collected"


def kernels_digest(files: dict[str, bytes]) -> dict:
    """{"kernels_hash", "kernels_files"} of kernel sources given as {path inside the package ('stage1_warpspec.py'):
    contents}: SHA-256 of each file (KERNELS_HASH_DIGITS hex digits in `kernels_files`) and one over the sorted
    (path, file digest) pairs. CRLF line endings are read as LF, so a Windows checkout hashes as the commit does."""
    whole = hashlib.sha256()
    per_file = {}
    for name in sorted(files):
        digest = hashlib.sha256(files[name].replace(b"\r\n", b"\n")).hexdigest()
        per_file[name] = digest[:KERNELS_HASH_DIGITS]
        whole.update(name.encode() + b"\0" + digest.encode() + b"\n")
    return {"kernels_hash": whole.hexdigest()[:KERNELS_HASH_DIGITS], "kernels_files": per_file}


def is_kernels_source(name: str) -> bool:
    """Whether a path inside the kernels package is one `kernels_digest` covers."""
    return (name.endswith(KERNELS_SOURCE_SUFFIXES) and "__pycache__" not in name.split("/")
            and name not in BOOKKEEPING)


@functools.lru_cache(maxsize=1)
def kernels_code() -> dict:
    """`kernels_digest` of this installed package (read once per process), or {"kernels_hash": None, "why": ...}
    when its files cannot be read."""
    root = Path(__file__).resolve().parent
    try:
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                 if p.is_file() and is_kernels_source(p.relative_to(root).as_posix())}
    except OSError as e:
        return {"kernels_hash": None, "why": f"cannot read the kernels package at {root}: {e.strerror or e}"}
    return kernels_digest(files)


def source_hash() -> str | None:
    """The package's hash alone (kernels_code()["kernels_hash"])."""
    return kernels_code()["kernels_hash"]
