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


# ---- the project's import graph (tests/test_layout.py) ------------------------------------------------------------
PROJECT_PACKAGES = ("kernels", "collectors", "runstore", "perfmodel", "app")


def project_modules(root: str | Path, packages=PROJECT_PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of every module of `packages` under `root` (a package by its own name)."""
    root = Path(root)
    out: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def project_imports(root: str | Path, packages=PROJECT_PACKAGES) -> dict[str, set[str]]:
    """{module: the project modules it imports}, from every `import` and `from ... import` at any depth (inside
    functions too): relative imports resolved against the module's package, and `from package import name` read
    as the submodule `package.name` where that is a module (else the package)."""
    modules = project_modules(root, packages)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    if f"{target}.{a.name}" in modules:
                        deps.add(f"{target}.{a.name}")
                    elif target in modules:
                        deps.add(target)
        deps.discard(name)
        graph[name] = deps
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)
