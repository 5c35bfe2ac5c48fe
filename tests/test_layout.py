"""The house by job (issue 22, item 2): the folders show the data path, kernels -> collectors (measurement, then the
sweep) -> runstore -> perfmodel -> app, and the imports keep to it.

Every module of the five packages is read as source (its imports at any depth, inside functions too; relative
imports resolved, `from package import name` read as the submodule where there is one: tests/module_imports.py),
so an import that only runs on the GPU machine or in one branch counts as much as one at the top.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from module_imports import PROJECT_PACKAGES, import_cycles, imported_modules, project_imports, project_modules

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
# collectors' measurement sub-packages (read kernels and write through the run store) and the sweep that drives them
MEASUREMENT = ("timing", "ncu", "census", "ceilings", "timeline")
SWEEP = "sweep"
# what the run store may import besides itself and kernels: the standard library, pandas and pyarrow
RUNSTORE_THIRD_PARTY = {"pandas", "pyarrow"}
# the import paths README.md or the Python API named before the layout, kept for one release (until 0.2) as thin
# re-exports: old module -> {name: the module that owns it now}
SHIMS = {
    "collectors.store": {"Run": "runstore.reader"},
    "collectors.store_read": {"implied_tables": "runstore.reader"},
    "collectors.collect": {"Interrupted": "collectors.sweep.options"},
    "perfmodel.scoring": {"register_predictor": "perfmodel.model.predictors"},
}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return project_imports(ROOT)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_packages_of_the_data_path_exist():
    for package in PROJECT_PACKAGES + tuple(f"collectors/{p}" for p in MEASUREMENT + (SWEEP,)):
        assert (ROOT / package / "__init__.py").is_file(), f"{package}/ is not a package"


def test_no_two_modules_import_each_other_at_any_depth(graph):
    cycles = import_cycles(graph)
    described = ["; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_no_module_is_over_400_lines():
    over = {name: n for name, path in project_modules(ROOT).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


@pytest.mark.parametrize("package,never", [
    ("kernels", ("collectors", "runstore", "perfmodel", "app")),   # the kernels import nothing of the toolkit
    ("runstore", ("collectors", "perfmodel", "app")),              # the store is a floor: only kernels below it
    ("collectors", ("perfmodel", "app")),                          # measurement hands its rows to the store only
    ("perfmodel", ("app",)),
    ("app", ("collectors", "runstore")),                           # the dashboard reads runs through perfmodel
])
def test_each_layer_imports_only_the_layers_below(graph, package, never):
    offenders = sorted(f"{m} -> {d}" for m, deps in graph.items() if _in(m, package)
                       for d in deps if any(_in(d, n) for n in never))
    assert not offenders, offenders


def test_measurement_never_imports_the_sweep(graph):
    offenders = sorted(f"{m} -> {d}" for m, deps in graph.items()
                       if any(_in(m, f"collectors.{p}") for p in MEASUREMENT)
                       for d in deps if _in(d, f"collectors.{SWEEP}"))
    assert not offenders, offenders


def test_the_run_store_reads_only_the_standard_library_pandas_and_pyarrow():
    allowed = set(sys.stdlib_module_names) | RUNSTORE_THIRD_PARTY | {"runstore", "kernels"}
    for name, path in project_modules(ROOT, ("runstore",)).items():
        outside = {m.partition(".")[0] for m in imported_modules(path)} - allowed
        assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize("package", ["collectors", *(f"collectors/{p}" for p in MEASUREMENT + (SWEEP,)), "runstore",
                                     "perfmodel/plan", "perfmodel/model", "perfmodel/reports"])
def test_each_package_of_a_job_says_what_it_owns_and_holds_no_code(package):
    path = ROOT / package / "__init__.py"
    assert path.is_file(), f"{package}/ has no __init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.split()) >= 8, f"{path}: no docstring saying what the package owns"
    assert len(tree.body) == 1, f"{path}: code beside the docstring"


@pytest.mark.parametrize("old", sorted(SHIMS))
def test_the_paths_the_readme_named_stay_for_one_release(old):
    shim = importlib.import_module(old)
    for name, owner in SHIMS[old].items():
        assert getattr(shim, name) is getattr(importlib.import_module(owner), name)
    path = Path(shim.__file__)
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 10, f"{path}: a shim is a few lines"
    assert "until 0.2" in (shim.__doc__ or ""), f"{path}: says until when the name stays"


def test_nothing_of_the_project_imports_a_shim(graph):
    offenders = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if d in SHIMS and m not in SHIMS)
    assert not offenders, offenders
