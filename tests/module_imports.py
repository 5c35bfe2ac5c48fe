"""What a Python source file imports (every `import` and `from ... import`, at any depth), for the tests that
check which layers a module may read from (data flows one way: kernels -> collectors -> run store -> perfmodel)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def imported_modules(path: str | Path) -> set[str]:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def names_used(path: str | Path) -> set[str]:
    """Every bare name and attribute name a source file uses (what a no-timings test searches)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return ({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)})


_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _Blocked())
"""


def run_without(code: str, blocked, cwd, timeout: float = 300, args=()) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter in which importing any of the top-level packages `blocked` fails as if
    they were not installed (a machine without torch, or the GPU machine without plotly)."""
    return subprocess.run([sys.executable, "-c", _BLOCKER.format(blocked=set(blocked)) + code, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
