"""A user's kernel, named by a SPEC or given as the function itself: parsed, recorded, loaded and registered.

A user's kernel is named by a SPEC, `package.module:function` or `path/to/file.py:function`: a function that takes
`(q, k, v, causal=..., sm_scale=...)` on [B, H, S, D] tensors and returns the [B, H, S, D] output (README, "Measure
your own kernel", shows a three-line adapter for other conventions). It gets there four ways:
- `--impl NAME=SPEC` on `perfmodel bench` / `perfmodel collect` (`register(name, spec)`);
- the function itself, from Python (`perfmodel.collect(impls={"mine": attention_fn})`, `register(name, fn)`):
  `callable_spec` turns it into its `module:qualname` SPEC when another process can import it by that name, and
  from there on it is that SPEC; one that cannot be imported so (defined in a notebook or `__main__`, a lambda, a
  nested function) is recorded as `<callable __main__.attention_fn, not importable>` and runs in this process only
  (`Impl.in_process_only`: the collector refuses it up front where a run needs another process, and nothing can
  load it again, e.g. `--resume`);
- an installed package's entry point in the group `perfmodel.implementations` (`name = "module:function"`);
- the environment variable PERFMODEL_IMPLS (JSON {name: spec}), which `register` sets so that the processes a run
  starts (the interpreter child, the Nsight Compute worker) resolve the same names to the same functions; beside
  it PERFMODEL_IMPL_PATH lists the sys.path folders this process imported those modules from (a notebook's
  folder, say) and the folder of each file SPEC (so that the file imports its neighbours, as a script run from
  there would), which every process adds to the end of its own sys.path before it imports a user's module.

A user's Impl (kernels/registry.py) is built once per process (`user_impl`), so pinning a variant and calling its
launcher meet in one object; nothing is imported before a name is resolved (kernels/lookup.py `get`). Errors in a
SPEC (no such module or file, no such function, a function that cannot take the arguments, a
torch.autograd.Function's `apply`, which takes whatever it is given and needs the README's adapter, switches it
cannot have) raise ImplError with one sentence naming the implementation; an import that fails for a known reason
(kernels.known_causes: a GPU-driver or torch.cuda query at import on a machine without either) says that reason
and its fix.
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

from kernels.importable import (FILE_MODULE_PREFIX, callable_spec, is_path, normalize, not_importable_name,
                                share_folder, share_import_folder, use_shared_import_folders)
from kernels.known_causes import known_cause
from kernels.registry import Impl, ImplError, Launcher

ENV_VAR = "PERFMODEL_IMPLS"
ENTRY_POINT_GROUP = "perfmodel.implementations"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

_LOADED: dict[str, Callable] = {}  # SPEC -> its function, loaded once per process


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


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ImplError(f"implementation name {name!r} must be letters, digits, '_', '.' or '-' (at most 64), "
                        "starting with a letter or '_'.")
    if name in builtin_names():
        raise ImplError(f"implementation name {name!r} is a stage or peer of the toolkit; choose another name.")


def register(name: str, target: str | Callable) -> str:
    """Make `name` resolve to `target`, here and in the processes this one starts; returns the SPEC as recorded.

    `target` is a SPEC (file paths made absolute; loaded now, so a bad one fails at once with one sentence) or the
    function itself: recorded as its `module:qualname` SPEC when another process can import it (callable_spec),
    from there on like that SPEC (this process keeps the object it was given); else as `<callable ..., not
    importable>`, known to this process only (`Impl.in_process_only`). A name this process registered may be
    registered again with another target, which replaces it (a notebook redefines its functions); one that the
    environment gave it (PERFMODEL_IMPLS from the shell, or from the process that started this one) may not. A
    module SPEC's folder on this process's sys.path goes to PERFMODEL_IMPL_PATH, so that the processes started
    from here find it too (a notebook's own folder is on its sys.path, not on theirs)."""
    _check_name(name)
    spec, why = callable_spec(target) if callable(target) else (normalize(str(target)), None)
    known = _environment()
    if known.get(name, spec) != spec and name not in _REGISTERED_HERE:
        raise ImplError(f"implementation {name!r} is already registered as {known[name]!r}, not {spec!r}.")
    if callable(target):
        _check_signature(name, not_importable_name(spec) or spec, target)
        impl = _function_impl(name, spec, target, in_process_only=why is not None)
    else:
        impl = user_impl(name, spec)
    _REGISTERED_HERE.add(name)
    if impl.in_process_only:
        _IN_PROCESS[name] = impl
        known.pop(name, None)
    else:
        _IN_PROCESS.pop(name, None)
        known[name] = spec
        module_name = spec.rpartition(":")[0]
        if not is_path(module_name):
            share_import_folder(module_name)
    os.environ[ENV_VAR] = json.dumps(known)
    return spec


def spec_of(name: str) -> str | None:
    """The SPEC a user implementation was registered with, or None for a stage, a peer or an unknown name."""
    if name in _IN_PROCESS:
        return _IN_PROCESS[name].spec
    return user_specs().get(name)


def _autograd_function(fn: Callable) -> type | None:
    """The torch.autograd.Function class whose `apply` `fn` is, or None (torch is not imported for this)."""
    owner = getattr(fn, "__self__", None)
    if not isinstance(owner, type) or getattr(fn, "__name__", None) != "apply":
        return None
    is_function = any(c.__name__ == "Function" and c.__module__ == "torch.autograd.function" for c in owner.__mro__)
    return owner if is_function else None


def _check_signature(name: str, what: str, fn: Callable) -> None:
    function = _autograd_function(fn)
    if function is not None:
        # apply(*args, **kwargs) binds anything, and hands it to forward(ctx, ...) as given: the tutorial's takes
        # (q, k, v, causal, sm_scale) and fails on perfmodel's sm_scale=None in every case
        try:
            forward = f"forward{inspect.signature(function.forward)}"
        except (TypeError, ValueError):
            forward = "forward"
        cls = function.__name__
        raise ImplError(
            f"{name}: {what} is {cls}.apply, a torch.autograd.Function, which passes its arguments to {forward} as "
            "they come, so perfmodel's call attention(q, k, v, causal=..., sm_scale=None) cannot be checked "
            f"against it; give perfmodel an adapter in your file instead: `def attention(q, k, v, causal=False, "
            f"sm_scale=None): return {cls}.apply(q, k, v, causal, q.shape[-1] ** -0.5 if sm_scale is None else "
            "sm_scale)` (README, 'Measure your own kernel').")
    try:
        inspect.signature(fn).bind(None, None, None, causal=False, sm_scale=None)
    except TypeError as exc:
        raise ImplError(f"{name}: {what} must take (q, k, v, causal=..., sm_scale=...) ({exc}); see the "
                        "README's 'Measure your own kernel' for an adapter.") from None
    except ValueError:  # no signature (a builtin or extension function): trust it, calls will tell
        pass


def load(name: str, spec: str) -> Callable:
    """The function SPEC names, imported once per process, checked to take (q, k, v, causal=, sm_scale=)."""
    if spec in _LOADED:
        return _LOADED[spec]
    if not_importable_name(spec):
        raise ImplError(f"{name} was {not_importable_name(spec)}, a function given to perfmodel.collect that no other "
                        "process can import, so it cannot be loaded again (e.g. by --resume); move it to the top "
                        "level of a module file and collect a new run with it.")
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not all(part.isidentifier() for part in func.split(".")):
        raise ImplError(f"{name}: SPEC {spec!r} must be 'package.module:function' or 'path/to/file.py:function'.")
    if is_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ImplError(f"{name}: {path} does not exist (from SPEC {spec!r}).")
        mod_name = f"{FILE_MODULE_PREFIX}{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(mod_name)
        if module is None:
            # the file imports its neighbours as a script run from its folder would: that folder goes on sys.path
            # here and, through PERFMODEL_IMPL_PATH, in the processes this one starts (which may run elsewhere)
            share_folder(str(path.parent))
            use_shared_import_folders()
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(mod_name, None)
                raise ImplError(known_cause(exc, name, importing=path) or
                                f"{name}: importing {path} failed: {type(exc).__name__}: {exc}".splitlines()[0]) \
                    from exc
    else:
        use_shared_import_folders()
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ImplError(known_cause(exc, name, importing=target.replace(".", "/") + ".py") or
                            f"{name}: cannot import module {target!r} ({type(exc).__name__}: {exc})"
                            .splitlines()[0]) from exc
    fn = module
    for part in func.split("."):
        fn = getattr(fn, part, None)
    if fn is None:
        raise ImplError(f"{name}: {target} has no function {func!r}.")
    if not callable(fn):
        raise ImplError(f"{name}: {target}:{func} is a {type(fn).__name__}, not a function.")
    _check_signature(name, f"{target}:{func}", fn)
    _LOADED[spec] = fn
    return fn


_USERS: dict[tuple[str, str], Impl] = {}
_IN_PROCESS: dict[str, Impl] = {}  # functions given as objects that no other process can import, by name
_REGISTERED_HERE: set[str] = set()  # the names `register` was called with in this process


def _function_impl(name: str, spec: str, fn: Callable, in_process_only: bool = False) -> Impl:
    """The Impl of a user kernel function, its switch declaration checked (one sentence naming it when it cannot
    work); kept for (name, SPEC) unless only this process can run it."""
    from kernels import FunctionSwitches

    try:
        declared = FunctionSwitches(fn) if getattr(fn, "switches", None) else None
    except ValueError as exc:
        raise ImplError(f"{name}: {exc}") from None
    impl = Impl(name, "user", Launcher(fn, declared), f"your kernel: {spec}", spec=spec,
                in_process_only=in_process_only)
    if not in_process_only:
        _LOADED[spec] = fn
        _USERS[(name, spec)] = impl
    return impl


def in_process(name: str) -> Impl | None:
    """The Impl of a function registered as an object no other process can import (`register`), or None."""
    return _IN_PROCESS.get(name)


def user_impl(name: str, spec: str) -> Impl:
    """The Impl of a user kernel, built once per (name, SPEC) in this process: the function loaded and its switch
    declaration checked (one sentence naming it when it cannot work)."""
    if (name, spec) not in _USERS:
        _function_impl(name, spec, load(name, spec))
    return _USERS[(name, spec)]
