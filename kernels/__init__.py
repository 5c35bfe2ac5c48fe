"""The staged attention kernels: an ordered registry of the six stages of the design document.

Stage 0 is the FlashAttention-2 baseline in Triton's `tl` front end; stages 1-5 are Gluon kernels
(`triton.experimental.gluon`, kernels/_gluon.py), which have no interpreter: under TRITON_INTERPRET=1 they raise
KernelUnsupported and are checked on the GPU instead. Triton's `tl` front end at its best is the `triton_tl` peer.

Each stage is a file `kernels/stageN_<name>.py` with one launcher `attention(q, k, v, causal=False,
sm_scale=None) -> Tensor`, registered below as a `kernels.registry.Impl` (the one descriptor of an implementation
the toolkit has, shared with the peers and the user's kernels). Importing this package imports no stage module (no
triton import, no compile): a stage's module is imported the first time its launcher is called or
`Impl.module()` is asked for.

`removes` lists the Einstein constraint ids (1 branching, 2 launch, 3 sync, 4 memory) that the design document's
stage table says each stage eliminates: stage 1 is "architecture only", stage 5 "All 4", of which #1 is the one
no earlier stage claims.

A stage may also declare its technique switches (`SWITCHES` in its module, a tuple of `Switch`): the field of its
config that turns one technique on or off, and the plan constraint(s) that technique removes; `NOT_ABLATABLE`
({constraint id: reason}) names the constraints the kernel cannot switch; `candidate_configs(S, D, causal)` the
configs an ablation compares, `config_from_report(text)` the config a run's report names and `PINNED_CONFIG` the
config to run instead of tuning. `perfmodel collect`'s ablation phase reads them through `Impl.switches()`,
`Impl.not_ablatable()`, `Impl.variants()` and `Impl.pinned()`; the mapping lives beside the kernel because which
technique a config field turns on is a fact about the kernel's code, while the plan's model file is the user's
document and does not know the kernel's fields. A user's kernel function declares the same as attributes
(`FunctionSwitches`: keyword arguments it takes, README "Measure your own kernel").
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from dataclasses import dataclass

from .registry import Impl, Launcher


@dataclass(frozen=True)
class Switch:
    """One technique a kernel can turn on and off: a field of the kernel's config, the value that means "on" and
    the one that means "off", the plan constraint ids it removes, and what it does in one line."""

    name: str
    on: object
    off: object
    removes: tuple[int, ...]
    technique: str
    # (field, value) pairs the rest of the config must have for this switch to change the kernel at all
    requires: tuple[tuple[str, object], ...] = ()

    def is_on(self, config) -> bool:
        return getattr(config, self.name) == self.on

    def no_effect(self, config) -> str | None:
        """Why flipping this switch leaves `config`'s kernel unchanged, or None when it changes it."""
        unmet = [f"{k}={getattr(config, k)}" for k, v in self.requires if getattr(config, k) != v]
        return f"{self.name} has no effect with {', '.join(unmet)}" if unmet else None

    def flipped(self, config):
        """`config` with this switch set the other way."""
        return dataclasses.replace(config, **{self.name: self.off if self.is_on(config) else self.on})


_SWITCH_KEYS = {"on", "off", "removes", "technique", "requires"}
_SWITCH_VALUE_TYPES = (bool, int, float, str)


class FunctionSwitches:
    """The technique switches a kernel function declares as attributes, offered under a stage module's names.

    A function `attention(q, k, v, causal=False, sm_scale=None, *, persistent=True, ...)` may carry

        attention.switches = {"persistent": {"on": True, "off": False, "removes": [2],
                                             "technique": "one program per SM walking the tiles"}}
        attention.not_ablatable = {1: "why no switch removes constraint #1"}

    (`on` / `off` default to True / False, `removes` to none, `technique` to the name, `requires` to {}: the other
    switches' values this one needs to change the kernel; a sequence of `Switch` works too). Each switch is a
    keyword argument the function takes, with a default that is its `on` or its `off` value: the defaults are what
    the sweep times. Values are bools, numbers or strings without spaces (run.json records them).

    As a stage module does, this gives SWITCHES, NOT_ABLATABLE, `Config` (one field per switch),
    `candidate_configs` (every on/off combination, the defaults first, with at most MAX_COMBINED switches; else the
    defaults and each switch flipped alone), `config_from_report` and PINNED_CONFIG (the Config the launcher
    passes as keyword arguments, `kwargs()`; None: the function's own defaults). Raises ValueError with one
    sentence for a declaration that cannot work.
    """

    MAX_COMBINED = 4

    def __init__(self, fn) -> None:
        raw = getattr(fn, "switches", None)
        items = raw.items() if isinstance(raw, dict) else [(getattr(s, "name", None), s) for s in raw or ()]
        self.SWITCHES = tuple(self._switch(fn, name, decl) for name, decl in items)
        names = [s.name for s in self.SWITCHES]
        if len(set(names)) != len(names):
            raise ValueError(f"switches names a keyword twice ({', '.join(names)}).")
        for s in self.SWITCHES:
            if any(k not in names or k == s.name for k, _ in s.requires):
                raise ValueError(f"switch {s.name!r} requires {dict(s.requires)}, which names no other switch.")
        try:
            self.NOT_ABLATABLE = {int(k): str(v) for k, v in dict(getattr(fn, "not_ablatable", None) or {}).items()}
        except (TypeError, ValueError):
            raise ValueError("not_ablatable must be {constraint id: reason}.") from None
        params = _parameters(fn)
        fields = [(s.name, object, dataclasses.field(default=params[s.name].default)) for s in self.SWITCHES]
        self.Config = dataclasses.make_dataclass("Config", fields, frozen=True, namespace={"__str__": _config_text})
        self.PINNED_CONFIG = None

    @staticmethod
    def _switch(fn, name, decl) -> Switch:
        if isinstance(decl, Switch):
            switch = decl
        elif isinstance(decl, dict) and set(decl) <= _SWITCH_KEYS:
            try:
                switch = Switch(name, decl.get("on", True), decl.get("off", False),
                                tuple(int(c) for c in decl.get("removes", ())), str(decl.get("technique", name)),
                                tuple(dict(decl.get("requires", {})).items()))
            except (TypeError, ValueError):
                raise ValueError(f"switch {name!r}: removes must list constraint ids and requires be "
                                 "{switch: value}.") from None
        else:
            raise ValueError(f"switch {name!r} must be a Switch or a dict with keys among "
                             f"{', '.join(sorted(_SWITCH_KEYS))}.")
        param = _parameters(fn).get(switch.name)
        if not str(switch.name).isidentifier() or param is None or param.default is inspect.Parameter.empty:
            raise ValueError(f"switch {switch.name!r} must be a keyword argument of the function, with a default.")
        values = (switch.on, switch.off)
        if not all(isinstance(v, _SWITCH_VALUE_TYPES) and " " not in repr(v) for v in values) or \
                switch.on == switch.off:
            raise ValueError(f"switch {switch.name!r}: on and off must be two different bools, numbers or strings "
                             "without spaces.")
        if param.default not in values:
            raise ValueError(f"switch {switch.name!r}: the default {param.default!r} is neither its on "
                             f"({switch.on!r}) nor its off ({switch.off!r}) value.")
        return switch

    def kwargs(self) -> dict:
        """The keyword arguments of the pinned variant ({} when none is pinned)."""
        return dataclasses.asdict(self.PINNED_CONFIG) if self.PINNED_CONFIG is not None else {}

    def candidate_configs(self, S: int, D: int, causal: bool) -> list:
        """The variants an ablation compares (the same for every key: the switches are the only choices)."""
        default = self.Config()
        sides = [(getattr(default, s.name), s.off if s.is_on(default) else s.on) for s in self.SWITCHES]
        if len(sides) <= self.MAX_COMBINED:
            combos = [self.Config(**dict(zip((s.name for s in self.SWITCHES), values)))
                      for values in itertools.product(*sides)]
        else:
            combos = [default] + [s.flipped(default) for s in self.SWITCHES]
        # a switch that cannot change the kernel (its `requires` unmet) stays at its default: no duplicate kernels
        return [c for c in combos
                if all(s.no_effect(c) is None or getattr(c, s.name) == getattr(default, s.name) for s in self.SWITCHES)]

    def config_from_report(self, text: str | None):
        """The Config a `str(Config)` report names; switches it does not name keep their defaults."""
        tokens = set((text or "").split())
        default = self.Config()
        values = {s.name: next((v for v in (s.on, s.off) if f"{s.name}={v!r}" in tokens), getattr(default, s.name))
                  for s in self.SWITCHES}
        return self.Config(**values)


def _parameters(fn) -> dict:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # no signature (a builtin): no keyword arguments to switch
        return {}


def _config_text(config) -> str:
    return " ".join(f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config))


# Why stages 1-4 run no fp8 (what their launchers say: kernels/_launch.py check_inputs without fp8=True); bench and
# collect record their fp8 cases as not run with it (Impl.refusal). tests/test_fp8.py checks each launcher agrees.
_NO_FP8_GLUON = ("its launcher takes fp16 and bf16 only (kernels/_launch.py check_inputs without fp8=True): the 8-bit "
                 "path, V transposed for wgmma's K-major 8-bit operand and P rounded to e4m3, is built in stage 5 alone")


def _stage(index: int, name: str, description: str, removes: tuple[int, ...] = (), adds: tuple[str, ...] = (),
           fp8: bool = False):
    # a stage launches Triton kernels: a census that captures none is a failure
    return Impl(name, "stage", Launcher(f"{__name__}.{name}:attention"), description, index=index, removes=removes,
                adds=adds, triton=True, refuses=() if fp8 else (("fp8", _NO_FP8_GLUON),))


# `adds`: the switches of stage 5 (its SWITCHES' names) whose techniques the stage adds to the stage before it:
# what the ablation says about a stage-to-stage change
STAGES: tuple[Impl, ...] = (
    _stage(0, "stage0_baseline",
           "FA2 online softmax in Triton tl, pointer loads, one program per (query tile, batch-head), tl.where "
           "mask every iteration, fixed config; fp8 (e4m3) too, P rounded to e4m3, bf16 output", fp8=True),
    _stage(1, "stage1_warpspec",
           "Gluon: TMA producer warp (24 registers) filling a 2-deep K/V ring through mbarriers, 8-warp wgmma "
           "consumer (240 registers); K and V handed over separately, every block masked"),
    _stage(2, "stage2_reduced_sync",
           "one mbarrier hand-off per K/V slot; masks only on the diagonal and tail key blocks", (3,),
           ("masked_loop",)),
    _stage(3, "stage3_persistent",
           "persistent grid of one program per SM walking (tile, batch, head) work items in L2 sections of heads, "
           "causal heaviest first",
           (2,), ("persistent",)),
    _stage(4, "stage4_overlap",
           "two consumer warp groups in ping-pong, P·V of one block in flight during the next softmax "
           "(async wgmma), 3-deep K/V ring", (4,), ("pingpong", "overlap")),
    _stage(5, "stage5_full",
           "stage 4 with every technique a switch, tuned per (S, D, causal, dtype, B·H): block sizes, K/V and Q ring "
           "depths, consumer groups and their register split, a dynamic tile schedule, the lean softmax and lazy "
           "rescale; fp8 (e4m3) too; chosen config reported", (1,), ("dynamic", "lean_softmax", "lazy_rescale",
                                                                      "BLOCK_M"), fp8=True),
)

# Stages written in Gluon (triton.experimental.gluon): no interpreter, so their correctness is checked on the GPU.
GLUON_STAGES = frozenset(s.name for s in STAGES if s.index >= 1)

_BY_NAME = {s.name: s for s in STAGES}


def get_stage(name_or_index: str | int) -> Impl:
    """The stage with this registry name (e.g. "stage2_reduced_sync") or index (0-5)."""
    if isinstance(name_or_index, bool):
        raise KeyError(f"unknown stage {name_or_index!r}; known stages: {', '.join(_BY_NAME)}.")
    if isinstance(name_or_index, int):
        if 0 <= name_or_index < len(STAGES):
            return STAGES[name_or_index]
        raise KeyError(f"unknown stage index {name_or_index}; stages are numbered 0 to {len(STAGES) - 1}.")
    key = str(name_or_index).strip()
    if key.isdigit():
        return get_stage(int(key))
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise KeyError(f"unknown stage {name_or_index!r}; known stages: {', '.join(_BY_NAME)}.")


def stage_names() -> list[str]:
    """Registry names in stage order."""
    return [s.name for s in STAGES]


def last_tuned_config() -> str:
    """The config stage 5 ran with on its last call ('' before any call); imports stage 5 if needed."""
    return get_stage(5).module().last_tuned_config()
