"""The staged attention kernels: an ordered registry of the six stages of the design document.

Stage 0 is the FlashAttention-2 baseline in Triton's `tl` front end; stages 1-5 are Gluon kernels
(`triton.experimental.gluon`, kernels/_gluon.py), which have no interpreter: under TRITON_INTERPRET=1 they raise
KernelUnsupported and are checked on the GPU instead. Triton's `tl` front end at its best is the `triton_tl` peer.

Each stage is a file `kernels/stageN_<name>.py` with one launcher `attention(q, k, v, causal=False,
sm_scale=None) -> Tensor`. Importing this package imports no stage module (no triton import, no compile): a
stage's module is imported the first time its launcher is called or `StageInfo.module()` is asked for.

`removes` lists the Einstein constraint ids (1 branching, 2 launch, 3 sync, 4 memory) that the design document's
stage table says each stage eliminates: stage 1 is "architecture only", stage 5 "All 4", of which #1 is the one
no earlier stage claims.

A stage may also declare its technique switches (`SWITCHES` in its module, a tuple of `Switch`): the field of its
config that turns one technique on or off, and the plan constraint(s) that technique removes; `NOT_ABLATABLE`
({constraint id: reason}) names the constraints the kernel cannot switch. `perfmodel collect`'s ablation phase
reads them through `StageInfo.switches()` / `StageInfo.not_ablatable()`; the mapping lives beside the kernel
because which technique a config field turns on is a fact about the kernel's code, while the plan's model file
is the user's document and does not know the kernel's fields.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable


class _LazyLauncher:
    """Calls `kernels.<module>.attention`, importing the module on first use."""

    def __init__(self, module: str) -> None:
        self.module_name = f"{__name__}.{module}"
        self.__module__ = self.module_name  # where the launcher lives, as for a plain function

    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    def __call__(self, q, k, v, causal: bool = False, sm_scale: float | None = None):
        return self.module().attention(q, k, v, causal=causal, sm_scale=sm_scale)

    def __repr__(self) -> str:
        return f"<launcher {self.module_name}.attention>"


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
        import dataclasses

        return dataclasses.replace(config, **{self.name: self.off if self.is_on(config) else self.on})


@dataclass(frozen=True)
class StageInfo:
    """One stage: its position, registry name, launcher, one-line description and the constraints it removes."""

    index: int
    name: str
    launcher: Callable
    description: str
    removes: tuple[int, ...]
    # the switches of stage 5 (its SWITCHES' names) whose techniques this stage adds to the stage before it: what
    # the ablation says about a stage-to-stage change
    adds: tuple[str, ...] = ()

    def module(self) -> ModuleType:
        """The stage's kernel module (imported now if it was not yet)."""
        return self.launcher.module()

    def switches(self) -> tuple[Switch, ...]:
        """The technique switches the stage's module declares (`SWITCHES`); () for a stage without any."""
        return tuple(getattr(self.module(), "SWITCHES", ()))

    def not_ablatable(self) -> dict[int, str]:
        """{constraint id: why no switch of this stage removes it} (`NOT_ABLATABLE` in the stage's module)."""
        return dict(getattr(self.module(), "NOT_ABLATABLE", {}))

    def variants(self, config) -> list:
        """The kernel configs an ablation compares for an AttentionConfig: the module's tuner candidates."""
        candidates = getattr(self.module(), "candidate_configs", None)
        return list(candidates(config.S, config.D, config.causal)) if callable(candidates) else []


STAGES: tuple[StageInfo, ...] = (
    StageInfo(0, "stage0_baseline", _LazyLauncher("stage0_baseline"),
              "FA2 online softmax in Triton tl, pointer loads, one program per (query tile, batch-head), tl.where "
              "mask every iteration, fixed config", ()),
    StageInfo(1, "stage1_warpspec", _LazyLauncher("stage1_warpspec"),
              "Gluon: TMA producer warp (24 registers) filling a 2-deep K/V ring through mbarriers, 8-warp wgmma "
              "consumer (240 registers); K and V handed over separately, every block masked", ()),
    StageInfo(2, "stage2_reduced_sync", _LazyLauncher("stage2_reduced_sync"),
              "one mbarrier hand-off per K/V slot; masks only on the diagonal and tail key blocks", (3,),
              ("masked_loop",)),
    StageInfo(3, "stage3_persistent", _LazyLauncher("stage3_persistent"),
              "persistent grid of one program per SM walking (tile, batch, head) work items, causal heaviest first",
              (2,), ("persistent",)),
    StageInfo(4, "stage4_overlap", _LazyLauncher("stage4_overlap"),
              "two consumer warp groups in ping-pong, P·V of one block in flight during the next softmax "
              "(async wgmma), 3-deep K/V ring", (4,), ("pingpong", "overlap")),
    StageInfo(5, "stage5_full", _LazyLauncher("stage5_full"),
              "stage 4 with every technique a switch, tuned per (S, D, causal, dtype, B·H): block sizes, ring depth, "
              "consumer groups and their register split; chosen config reported", (1,)),
)

# Stages written in Gluon (triton.experimental.gluon): no interpreter, so their correctness is checked on the GPU.
GLUON_STAGES = frozenset(s.name for s in STAGES if s.index >= 1)

_BY_NAME = {s.name: s for s in STAGES}


def get_stage(name_or_index: str | int) -> StageInfo:
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


def pinned_config(name: str, tuned_config: str | None):
    """The config object a tuning stage's `tuned_config` report names (a run's timings column), or None.

    None for a stage without a tuner, an empty report or one the stage cannot read: the caller then lets the stage
    choose as usual."""
    if not tuned_config or name not in _BY_NAME:
        return None
    parse = getattr(get_stage(name).module(), "config_from_report", None)
    return parse(tuned_config) if callable(parse) else None


@contextlib.contextmanager
def pinned(name: str, tuned_config: str | None):
    """Within the block, stage `name` runs the config its `tuned_config` report names instead of tuning.

    How a later process runs exactly the kernel a run timed (the Nsight Compute worker); a no-op where
    `pinned_config` gives None."""
    cfg = pinned_config(name, tuned_config)
    if cfg is None:
        yield None
        return
    module = get_stage(name).module()
    saved = module.PINNED_CONFIG
    module.PINNED_CONFIG = cfg
    try:
        yield cfg
    finally:
        module.PINNED_CONFIG = saved
