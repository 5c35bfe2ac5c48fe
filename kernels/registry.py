"""Every implementation the toolkit can measure, by name, each described by one `Impl`: the stages (`STAGES` in
kernels/__init__.py), the peers (`PEERS` in kernels/peers.py) and the user's own kernels. Each is registered once,
where it is defined, and bench, collect, the census, the ablation and the Nsight Compute worker read its traits:

    name, kind      "stage" | "peer" | "user"
    launcher        `attention(q, k, v, causal=False, sm_scale=None)`: a `Launcher` imports a stage's module on its
                    first call, so nothing is imported, compiled or touched on the GPU at registration
    description     one line
    index           the plan stage it stands for (0-5), None for a peer or a user kernel; a stage's `removes`
                    (plan constraint ids) and `adds` (the stage-5 switches whose techniques it adds)
    switches()      its technique switches for the ablation, with not_ablatable(), variants(config),
                    config_from_report(text) and pinned(text): a stage module's SWITCHES, NOT_ABLATABLE,
                    candidate_configs, config_from_report and PINNED_CONFIG, or a user function's `switches` and
                    `not_ablatable` attributes (kernels.FunctionSwitches); a peer has none
    triton          whether it launches Triton kernels, for the census: True for a stage (a census that captures
                    none failed), None for a user kernel (detected when captured; none gives "no census: not a
                    Triton kernel"), False for a peer (never censused, even where its kernels are Triton's)
    unavailable()   why it cannot run here, or None (`available()`: the same as (ok, reason))

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

`get(name)` gives the Impl of any of them (a user's is built once per process, so pinning a variant and calling
its launcher meet in one object); nothing is imported before a name is resolved. Errors in a SPEC (no such module
or file, no such function, a function that cannot take the arguments, a torch.autograd.Function's `apply`, which
takes whatever it is given and needs the README's adapter, switches it cannot have) raise ImplError with one
sentence naming the implementation; an import that fails for a known reason (kernels.known_causes: a GPU-driver or
torch.cuda query at import on a machine without either) says that reason and its fix.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from kernels.known_causes import known_cause

ENV_VAR = "PERFMODEL_IMPLS"
PATH_VAR = "PERFMODEL_IMPL_PATH"
ENTRY_POINT_GROUP = "perfmodel.implementations"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_LOADED: dict[str, Callable] = {}
# what a function no other process can import is recorded as (callable_spec), and what `load` refuses to load
_NOT_IMPORTABLE = re.compile(r"^<callable (?P<where>.*), not importable>$")
_FILE_MODULE_PREFIX = "perfmodel_user_"  # the module name `load` gives a file SPEC's module
KINDS = ("stage", "peer", "user")


class ImplError(ValueError):
    """A user implementation that cannot be used, in one sentence naming it."""


class Launcher:
    """An implementation's callable: `module:function`, imported on the first call (or a function already loaded),
    called as (q, k, v, causal=, sm_scale=) plus, for a function that declares switches (`declared`, a
    kernels.FunctionSwitches), the keyword arguments of the variant pinned there."""

    def __init__(self, target: str | Callable, declared=None) -> None:
        if callable(target):
            self._fn = target
            self.module_name = getattr(target, "__module__", None) or "__main__"  # a partial has none
            self.function_name = getattr(target, "__name__", "attention")
        else:
            self._fn = None
            self.module_name, _, self.function_name = target.partition(":")
        self.__module__ = self.module_name  # where the function lives, as for a plain function
        self.declared = declared

    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    def function(self) -> Callable:
        return self._fn if self._fn is not None else getattr(self.module(), self.function_name)

    def __call__(self, q, k, v, causal: bool = False, sm_scale: float | None = None):
        extra = self.declared.kwargs() if self.declared is not None else {}
        return self.function()(q, k, v, causal=causal, sm_scale=sm_scale, **extra)

    def __repr__(self) -> str:
        return f"<launcher {self.module_name}.{self.function_name}>"


def _runs_anywhere() -> str | None:
    return None


@dataclass(frozen=True)
class Impl:
    """One implementation (a stage, a peer or a user kernel) and its traits; see the module docstring."""

    name: str
    kind: str  # "stage" | "peer" | "user"
    launcher: Callable
    description: str
    index: int | None = None  # the plan stage it stands for
    removes: tuple[int, ...] = ()  # a stage's plan constraint ids (the plan's stage table)
    adds: tuple[str, ...] = ()  # the switches of stage 5 whose techniques a stage adds to the stage before it
    triton: bool | None = None  # launches Triton kernels: True always, None detected by the census, False: no census
    why_unavailable: Callable[[], str | None] = _runs_anywhere  # the reason it cannot run here, or None
    spec: str | None = None  # a user implementation's SPEC as registered
    in_process_only: bool = False  # a function given as an object that no other process can import (callable_spec)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}.")

    def unavailable(self) -> str | None:
        """Why the implementation cannot run here, or None when it can."""
        return self.why_unavailable()

    def available(self) -> tuple[bool, str]:
        """(True, "") when it can run here, else (False, one-line reason)."""
        reason = self.unavailable()
        return reason is None, reason or ""

    def module(self) -> ModuleType:
        """The module its function lives in (a stage's kernel module, imported now if it was not yet)."""
        module = getattr(self.launcher, "module", None)
        return module() if callable(module) else importlib.import_module(self.launcher.__module__)

    def _declarations(self):
        """What declares the technique switches: a stage's module, a user function's FunctionSwitches, or None."""
        if self.kind == "stage":
            return self.module()
        return getattr(self.launcher, "declared", None) if self.kind == "user" else None

    def switches(self) -> tuple:
        """Its technique switches (kernels.Switch); () for an implementation without any."""
        return tuple(getattr(self._declarations(), "SWITCHES", ()))

    def not_ablatable(self) -> dict[int, str]:
        """{constraint id: why no switch of it removes that constraint}."""
        return dict(getattr(self._declarations(), "NOT_ABLATABLE", {}))

    def variants(self, config) -> list:
        """The kernel configs an ablation compares for an AttentionConfig (a tuner's candidates)."""
        candidates = getattr(self._declarations(), "candidate_configs", None)
        return list(candidates(config.S, config.D, config.causal)) if callable(candidates) else []

    def config_from_report(self, text: str | None):
        """The kernel config a run's `tuned_config` report names (for a user kernel with switches, its defaults
        when the report names none: what the sweep called); None where it has no such configs."""
        parse = getattr(self._declarations(), "config_from_report", None)
        return parse(text) if callable(parse) else None

    @contextmanager
    def pinned(self, tuned_config: str | None):
        """Within the block, the launcher runs the kernel config `tuned_config` names instead of tuning (how a
        later process runs exactly the kernel a run timed, and how the ablation runs a variant); a no-op, yielding
        None, for an empty report or one it cannot read."""
        owner = self._declarations()
        cfg = self.config_from_report(tuned_config) if tuned_config else None
        if cfg is None or not hasattr(owner, "PINNED_CONFIG"):
            yield None
            return
        saved = owner.PINNED_CONFIG
        owner.PINNED_CONFIG = cfg
        try:
            yield cfg
        finally:
            owner.PINNED_CONFIG = saved


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
    if module_name.startswith(_FILE_MODULE_PREFIX) and getattr(module, "__file__", None):
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


def _where(spec: str) -> str | None:
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
    return (f"{name}: {needed_by} imports its implementations by name and cannot import {_where(spec)}, because "
            f"{why}; {importable_fix(fn)}{alternative}.")


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
        _check_signature(name, _where(spec) or spec, target)
        impl = _function_impl(name, spec, target, in_process_only=why is not None)
    else:
        impl = _user_impl(name, spec)
    _REGISTERED_HERE.add(name)
    if impl.in_process_only:
        _IN_PROCESS[name] = impl
        known.pop(name, None)
    else:
        _IN_PROCESS.pop(name, None)
        known[name] = spec
        module_name = spec.rpartition(":")[0]
        if not _is_path(module_name):
            _share_import_folder(module_name)
    os.environ[ENV_VAR] = json.dumps(known)
    return spec


def _import_folder(module_name: str) -> str | None:
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


def _share_import_folder(module_name: str) -> None:
    _share_folder(_import_folder(module_name))


def _share_folder(folder: str | None) -> None:
    """Add `folder` to PERFMODEL_IMPL_PATH, which this process and those it starts append to their sys.path."""
    shared = [p for p in os.environ.get(PATH_VAR, "").split(os.pathsep) if p]
    if folder is not None and folder not in shared:
        os.environ[PATH_VAR] = os.pathsep.join([*shared, folder])


def _use_shared_import_folders() -> None:
    """Append PERFMODEL_IMPL_PATH's folders to sys.path (after this process's own entries, so nothing of its own is
    shadowed): where the process that started this one imported its users' modules from."""
    for folder in os.environ.get(PATH_VAR, "").split(os.pathsep):
        if folder and folder not in sys.path:
            sys.path.append(folder)


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
    if _where(spec):
        raise ImplError(f"{name} was {_where(spec)}, a function given to perfmodel.collect that no other "
                        "process can import, so it cannot be loaded again (e.g. by --resume); move it to the top "
                        "level of a module file and collect a new run with it.")
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not all(part.isidentifier() for part in func.split(".")):
        raise ImplError(f"{name}: SPEC {spec!r} must be 'package.module:function' or 'path/to/file.py:function'.")
    if _is_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ImplError(f"{name}: {path} does not exist (from SPEC {spec!r}).")
        mod_name = f"{_FILE_MODULE_PREFIX}{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(mod_name)
        if module is None:
            # the file imports its neighbours as a script run from its folder would: that folder goes on sys.path
            # here and, through PERFMODEL_IMPL_PATH, in the processes this one starts (which may run elsewhere)
            _share_folder(str(path.parent))
            _use_shared_import_folders()
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
        _use_shared_import_folders()
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


def _user_impl(name: str, spec: str) -> Impl:
    """The Impl of a user kernel, built once per (name, SPEC) in this process: the function loaded and its switch
    declaration checked (one sentence naming it when it cannot work)."""
    if (name, spec) not in _USERS:
        _function_impl(name, spec, load(name, spec))
    return _USERS[(name, spec)]


def did_you_mean(name: str, known) -> str:
    """` (did you mean X?)` for the known name closest to a misspelt `name`, else ''."""
    near = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


def get(name: str) -> Impl:
    """The Impl of a stage, peer or user implementation name (ImplError for a name none of them has)."""
    import kernels
    from kernels.peers import PEERS

    if name in kernels.stage_names():
        return kernels.get_stage(name)
    if name in PEERS:
        return PEERS[name]
    if name in _IN_PROCESS:
        return _IN_PROCESS[name]
    spec = spec_of(name)
    if spec is None:
        raise ImplError(f"unknown implementation {name!r}{did_you_mean(name, builtin_names())}; stages and peers: "
                        f"{', '.join(builtin_names())}; a kernel of your own: --impl NAME=SPEC.")
    return _user_impl(name, spec)


def resolve(name: str) -> tuple[Callable, str | None]:
    """(launcher, why it cannot run here or None) of a stage, peer or user implementation name."""
    impl = get(name)
    return impl.launcher, impl.unavailable()
