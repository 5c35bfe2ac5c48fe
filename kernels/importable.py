"""Whether, and how, another process imports the same function: the interpreter's child, the Nsight Compute worker
and `perfmodel collect --resume` import a user's kernel by its SPEC, never receive the object.

`callable_spec(fn)` gives a function's `module:qualname` SPEC when the import system finds it by that name, or the
record `<callable module.qualname, not importable>` and why not (defined in a notebook or `__main__`, a lambda, a
nested function, a module made in memory); `not_importable_problem` turns that into the one sentence a run that
needs another process refuses it with. A SPEC's file path is made absolute (`normalize`). PERFMODEL_IMPL_PATH
carries the sys.path folders this process imported its users' modules from (a notebook's folder, a file SPEC's
folder) to the processes it starts, which append them to their own sys.path (`use_shared_import_folders`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable

PATH_VAR = "PERFMODEL_IMPL_PATH"
# what a function no other process can import is recorded as (callable_spec), and what `load` refuses to load
_NOT_IMPORTABLE = re.compile(r"^<callable (?P<where>.*), not importable>$")
FILE_MODULE_PREFIX = "perfmodel_user_"  # the module name kernels.user_kernels.load gives a file SPEC's module


def is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def normalize(spec: str) -> str:
    """SPEC with a file path made absolute, so that processes started in another folder (the interpreter child, the
    Nsight Compute worker) find the same file."""
    target, sep, func = spec.rpartition(":")
    if sep and target and is_path(target):
        return f"{Path(target).expanduser().resolve()}:{func}"
    return spec


def callable_spec(fn: Callable) -> tuple[str, str | None]:
    """The SPEC of a function given as an object (`perfmodel.collect(impls={"mine": attention_fn})`) and why no
    other process could import it, or None when one can: (`module:qualname`, None) for a function of a module the
    import system finds by its name, which `qualname` names there; else (`<callable module.qualname, not
    importable>`, why: defined in a notebook or `__main__`, a lambda, nested in a function, an object without a
    qualified name, a module made in memory or loaded by hand, a name now bound to another object). A function of
    a file SPEC's module gets that file's SPEC back."""
    module_name, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    record = f"<callable {qualified_name(fn)}, not importable>"
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return record, "it is an object without a module and a qualified name (a functools.partial, an instance)"
    if module_name == "__main__":
        return record, "it is defined in __main__ (a notebook or the script being run)"
    if "<lambda>" in qualname:
        return record, "it is a lambda"
    if "<locals>" in qualname:
        return record, "it is defined inside another function"
    module = sys.modules.get(module_name)
    if module_name.startswith(FILE_MODULE_PREFIX) and getattr(module, "__file__", None):
        module_spec = f"{Path(module.__file__).resolve()}:{qualname}"
    elif module is not None and getattr(module, "__spec__", None) is not None and _findable(module_name):
        module_spec = f"{module_name}:{qualname}"
    else:
        return record, f"its module {module_name} was not imported by that name (made in memory, or loaded by hand)"
    found = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not fn:
        return record, f"{module_name}.{qualname} is another object now (the name was rebound or wrapped)"
    return module_spec, None


def _findable(module_name: str) -> bool:
    """Whether the import system finds the top-level package of `module_name` afresh, as another process would
    (the finders of sys.meta_path, not sys.modules: a module loaded by hand under a name of its own is not)."""
    top = module_name.partition(".")[0]
    for finder in sys.meta_path:
        try:
            if getattr(finder, "find_spec", None) is not None and finder.find_spec(top, None) is not None:
                return True
        except Exception:  # a finder that cannot answer for this name
            continue
    return False


def qualified_name(fn: Callable) -> str:
    """`module.qualname` of a function (of its type, `... object`, for a callable without them)."""
    module_name, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if isinstance(module_name, str) and isinstance(qualname, str):
        return f"{module_name}.{qualname}"
    return f"{type(fn).__module__}.{type(fn).__qualname__} object"


def not_importable_name(spec: str) -> str | None:
    """`module.qualname` of a `<callable ..., not importable>` record, None for a SPEC."""
    m = _NOT_IMPORTABLE.match(spec)
    return m["where"] if m else None


def as_spec(target: str | Callable) -> str:
    """What a run records for an implementation given as a SPEC (itself, file paths made absolute) or as a function
    (callable_spec)."""
    return callable_spec(target)[0] if callable(target) else normalize(str(target))


def importable_fix(fn: Callable) -> str:
    """The clause that tells how to make `fn` importable, naming it."""
    short = getattr(fn, "__name__", None)
    short = short if isinstance(short, str) and short.isidentifier() else "attention"
    return (f"move `{short}` to the top level of a module file and pass it, or pass "
            f"'path/to/file.py:{short}'")


def not_importable_problem(name: str, fn: Callable, needed_by: str, alternative: str = "") -> str | None:
    """One sentence refusing `fn` (implementation `name`) where `needed_by`, another process, must import it, or
    None when it can (callable_spec)."""
    spec, why = callable_spec(fn)
    if why is None:
        return None
    return (f"{name}: {needed_by} imports its implementations by name and cannot import {not_importable_name(spec)}, "
            f"because {why}; {importable_fix(fn)}{alternative}.")


def import_folder(module_name: str) -> str | None:
    """The sys.path folder this process imported `module_name`'s top-level package (or module) from; None for one
    found otherwise (built in, frozen, by an import hook such as an editable install's)."""
    top = sys.modules.get(module_name.partition(".")[0])
    spec = getattr(top, "__spec__", None)
    if spec is None:
        return None
    places = list(spec.submodule_search_locations or ()) or ([spec.origin] if spec.has_location else [])
    on_path = {str(Path(p or os.curdir).resolve()) for p in sys.path if isinstance(p, str)}
    for place in places:
        folder = str(Path(place).resolve().parent)
        if folder in on_path:
            return folder
    return None


def share_import_folder(module_name: str) -> None:
    share_folder(import_folder(module_name))


def share_folder(folder: str | None) -> None:
    """Add `folder` to PERFMODEL_IMPL_PATH, which this process and those it starts append to their sys.path."""
    shared = [p for p in os.environ.get(PATH_VAR, "").split(os.pathsep) if p]
    if folder is not None and folder not in shared:
        os.environ[PATH_VAR] = os.pathsep.join([*shared, folder])


def use_shared_import_folders() -> None:
    """Append PERFMODEL_IMPL_PATH's folders to sys.path (after this process's own entries, so nothing of its own is
    shadowed): where the process that started this one imported its users' modules from."""
    for folder in os.environ.get(PATH_VAR, "").split(os.pathsep):
        if folder and folder not in sys.path:
            sys.path.append(folder)
