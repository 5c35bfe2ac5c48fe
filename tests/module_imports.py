"""What a Python source file imports (every `import` and `from ... import`, at any depth), for the tests that
check which layers a module may read from (data flows one way: kernels -> collectors -> run store -> perfmodel)."""

from __future__ import annotations

import ast
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
