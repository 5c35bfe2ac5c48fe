"""The one descriptor of an implementation the toolkit can measure: `Impl`, shared by the stages (`STAGES` in
kernels/__init__.py), the peers (`PEERS` in kernels/peers.py) and the user's own kernels (kernels/user_kernels.py).
Each is registered once, where it is defined, and bench, collect, the census, the ablation and the Nsight Compute
worker read its traits:

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
    refuses         the dtypes it does not run, each with its own reason ((dtype, why) pairs, kernels.workload's
                    short names, e.g. ("fp8", "...")); `refusal(config)` says why a config of such a dtype is not
                    run. bench and collect record that case as `unavailable` with the reason, without calling it
                    (never a failure, never silently left out); a dtype it does not name is tried by calling it

Any name is turned into its Impl by kernels/lookup.py (`get`); this module imports nothing of the package, so the
stages' registry (kernels/__init__.py), the peers and the user's kernels all stand on it.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

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
    refuses: tuple[tuple[str, str], ...] = ()  # (dtype, why) for each dtype it does not run (see the module docstring)

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

    def refusal(self, config) -> str | None:
        """Why it does not run `config` (an AttentionConfig, or a dtype's short name): one sentence naming the dtype
        and its own reason; None when it runs it (or may: a dtype it does not refuse is tried)."""
        dtype = getattr(config, "dtype", config)
        why = dict(self.refuses).get(dtype)
        return f"{self.name} does not run {dtype} inputs: {why}; not run" if why else None

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
