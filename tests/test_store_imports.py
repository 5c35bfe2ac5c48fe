"""The run store's two halves (collectors/store.py writes, collectors/store_read.py reads) import in either order,
each in a fresh interpreter (a device script imported store_read first and met a circular import)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first,second", [("collectors.store_read", "collectors.store"),
                                          ("collectors.store", "collectors.store_read")])
def test_either_half_imports_first(first, second):
    code = (f"import {first}, {second}\n"
            "from collectors.store import load_run, list_runs, Run, check_tables, RunWriter\n"
            "assert load_run is __import__('collectors.store_read', fromlist=['x']).load_run\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
