"""The run store's modules (runstore/: the writer, the reader, the folder's layout, the schema, the safe writes)
import in any order, each first in a fresh interpreter (a device script imported the reader first and met a
circular import when the writer and the reader imported each other; now the writer imports the reader, and both
the layout, never the reverse: tests/test_layout.py holds every module to that)."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ("runstore.reader", "runstore.writer", "runstore.layout", "runstore.schema", "runstore.safe_io")


@pytest.mark.parametrize("first", MODULES)
def test_each_module_imports_first(first):
    code = (f"import {first}\n"
            f"import {', '.join(m for m in MODULES if m != first)}\n"
            "from runstore.reader import Run, check_tables, list_runs, load_run\n"
            "from runstore.writer import RunWriter\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
