"""Every implementation the toolkit can measure, by name: the stages, the peers and the user's own kernels.

A user's kernel is named by a SPEC, `package.module:function` or `path/to/file.py:function`: a function that takes
`(q, k, v, causal=..., sm_scale=...)` on [B, H, S, D] tensors and returns the [B, H, S, D] output (README, "Measure
your own kernel", shows a three-line adapter for other conventions). It gets there three ways:
- `--impl NAME=SPEC` on `perfmodel bench` / `perfmodel collect` (`register(name, spec)`);
- an installed package's entry point in the group `perfmodel.implementations` (`name = "module:function"`);
- the environment variable PERFMODEL_IMPLS (JSON {name: spec}), which `register` sets so that the processes a run
  starts (the interpreter child, the Nsight Compute worker) resolve the same names to the same functions.

`resolve(name)` gives (launcher, reason it cannot run here or None) for any of them; nothing is imported before
a name is resolved. Errors in a SPEC (no such module or file, no such function, a function that cannot take the
arguments) raise ImplError with one sentence naming the implementation.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Callable

ENV_VAR = "PERFMODEL_IMPLS"
ENTRY_POINT_GROUP = "perfmodel.implementations"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_LOADED: dict[str, Callable] = {}


class ImplError(ValueError):
    """A user implementation that cannot be used, in one sentence naming it."""


def builtin_names() -> list[str]:
    """Stage and peer names, which a user implementation may not reuse."""
    import kernels
    from kernels.peers import PEERS

    return kernels.stage_names() + list(PEERS)


def parse_impl_arg(text: str) -> tuple[str, str]:
    """`NAME=SPEC` from the command line -> (name, spec)."""
    name, sep, spec = (text or "").partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise ImplError(f"--impl {text!r} must be NAME=SPEC, e.g. myattn=path/to/attn.py:attention or "
                        "myattn=mypackage.attn:attention.")
    return name, spec


def parse_impl_args(texts) -> dict[str, str]:
    """Repeated `--impl NAME=SPEC` arguments as {name: spec}; a malformed one or a name given two SPECs is one
    sentence (ImplError)."""
    out: dict[str, str] = {}
    for text in texts or []:
        name, spec = parse_impl_arg(text)
        if name in out and out[name] != spec:
            raise ImplError(f"--impl {name} is given twice, as {out[name]!r} and {spec!r}.")
        out[name] = spec
    return out


def _environment() -> dict[str, str]:
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImplError(f"{ENV_VAR} must be a JSON object {{name: spec}}, got {raw[:80]!r} ({exc.msg}).") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ImplError(f"{ENV_VAR} must be a JSON object of strings {{name: spec}}, got {raw[:80]!r}.")
    return value


def entry_points() -> dict[str, str]:
    """{name: spec} of the implementations installed packages declare (entry point group perfmodel.implementations)."""
    from importlib.metadata import entry_points as eps

    return {ep.name: ep.value for ep in eps(group=ENTRY_POINT_GROUP)}


def user_specs() -> dict[str, str]:
    """Every user implementation known in this process: entry points, then PERFMODEL_IMPLS (which wins)."""
    return {**entry_points(), **_environment()}


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def normalize(spec: str) -> str:
    """SPEC with a file path made absolute, so that processes started in another folder (the interpreter child, the
    Nsight Compute worker) find the same file."""
    target, sep, func = spec.rpartition(":")
    if sep and target and _is_path(target):
        return f"{Path(target).expanduser().resolve()}:{func}"
    return spec


def register(name: str, spec: str) -> str:
    """Make `name` resolve to the function SPEC names, here and in the processes this one starts; returns the SPEC
    as recorded (file paths made absolute). The SPEC is loaded now, so a bad one fails at once with one sentence."""
    spec = normalize(spec)
    if not _NAME.match(name):
        raise ImplError(f"implementation name {name!r} must be letters, digits, '_', '.' or '-' (at most 64), "
                        "starting with a letter or '_'.")
    if name in builtin_names():
        raise ImplError(f"implementation name {name!r} is a stage or peer of the toolkit; choose another name.")
    known = _environment()
    if known.get(name, spec) != spec:
        raise ImplError(f"implementation {name!r} is already registered as {known[name]!r}, not {spec!r}.")
    load(name, spec)
    known[name] = spec
    os.environ[ENV_VAR] = json.dumps(known)
    return spec


def spec_of(name: str) -> str | None:
    """The SPEC a user implementation was registered with, or None for a stage, a peer or an unknown name."""
    return user_specs().get(name)


def load(name: str, spec: str) -> Callable:
    """The function SPEC names, imported once per process, checked to take (q, k, v, causal=, sm_scale=)."""
    if spec in _LOADED:
        return _LOADED[spec]
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not func.isidentifier():
        raise ImplError(f"{name}: SPEC {spec!r} must be 'package.module:function' or 'path/to/file.py:function'.")
    if _is_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ImplError(f"{name}: {path} does not exist (from SPEC {spec!r}).")
        mod_name = f"perfmodel_user_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(mod_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(mod_name, None)
                raise ImplError(f"{name}: importing {path} failed: {type(exc).__name__}: {exc}".splitlines()[0]) \
                    from exc
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ImplError(f"{name}: cannot import module {target!r} ({type(exc).__name__}: {exc})"
                            .splitlines()[0]) from exc
    fn = getattr(module, func, None)
    if fn is None:
        raise ImplError(f"{name}: {target} has no function {func!r}.")
    if not callable(fn):
        raise ImplError(f"{name}: {target}:{func} is a {type(fn).__name__}, not a function.")
    try:
        inspect.signature(fn).bind(None, None, None, causal=False, sm_scale=None)
    except TypeError as exc:
        raise ImplError(f"{name}: {target}:{func} must take (q, k, v, causal=..., sm_scale=...) ({exc}); see the "
                        "README's 'Measure your own kernel' for an adapter.") from None
    except ValueError:  # no signature (a builtin or extension function): trust it, calls will tell
        pass
    _LOADED[spec] = fn
    return fn


def resolve(name: str) -> tuple[Callable, str | None]:
    """(launcher, why it cannot run here or None) of a stage, peer or user implementation name."""
    import kernels
    from kernels.peers import PEERS

    if name in kernels.stage_names():
        return kernels.get_stage(name).launcher, None
    if name in PEERS:
        ok, reason = PEERS[name].available()
        return PEERS[name].launcher, (None if ok else reason)
    spec = spec_of(name)
    if spec is None:
        raise ImplError(f"unknown implementation {name!r}; stages and peers: {', '.join(builtin_names())}; a kernel "
                        "of your own: --impl NAME=SPEC.")
    return load(name, spec), None
