"""The attention workload: one forward pass, its shape, and the arithmetic every other layer counts with.

This module is the single place for FLOP, exponential and byte counts. It lives in `kernels/` because the
kernels, the collectors and the models all describe the same problem and data flows one way
(kernels -> collectors -> run store -> perfmodel -> app): everyone downstream may import it, it imports nothing
of theirs.

FLOP convention (the FlashAttention papers', ANCHORS.md): a forward pass is two matrix products of
2·S·S·D FLOPs each per (batch, head), so 4·B·H·S²·D; a causal pass is counted as exactly half of that
(FlashAttention-2 §4.1 and FlashAttention-3 §4.1 use the same halving), not S·(S+1)/2 rows.
Exponentials: one per score element the softmax needs, B·H·S² (half for causal, same convention).
Minimum HBM traffic: read Q, K and V once and write O once, 4·B·H·S·D elements (the log-sum-exp that a training
forward also writes is B·H·S floats and is left out: our kernels are inference forwards). Q, K and V are in the
config's dtype and O in its output dtype (`OUTPUT_DTYPES`: bf16 for fp8 inputs), so an fp8 forward moves
3·1 + 2 = 5 bytes per element position, not 4.
The FLOP count is the same for every dtype (an fp8 forward does the same two products, on the fp8 tensor rate:
kernels/hardware.py `GpuSpec.mma_tflops`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

# Bytes per element of each dtype we accept, by the short name used on the CLI and in run tables.
DTYPE_BYTES: dict[str, int] = {"fp16": 2, "bf16": 2, "fp32": 4, "fp8": 1}
DTYPE_ALIASES: dict[str, str] = {
    "float16": "fp16", "half": "fp16", "fp16": "fp16",
    "bfloat16": "bf16", "bf16": "bf16",
    "float32": "fp32", "float": "fp32", "fp32": "fp32",
    "fp8": "fp8", "float8_e4m3fn": "fp8", "e4m3": "fp8",
}


# The dtype of O for inputs of each dtype that does not write its own: 8-bit inputs give a bf16 output, as
# FlashAttention-3's fp8 forward and this toolkit's kernels write (kernels/reference.py `output_dtype` says the same
# for torch dtypes; tests/test_workload.py checks the two agree).
OUTPUT_DTYPES: dict[str, str] = {"fp8": "bf16"}

# Input rotation for timing (collectors/timing/measure.py and the tuner's re-timing, kernels/tuner.py): the input
# sets rotated over should together exceed the L2 at least this many times over, so that LRU-like replacement has
# evicted a set by the time it comes round again...
L2_OVERSUBSCRIPTION = 2.0
# ...but never more than this many sets (tiny configs would otherwise need thousands); do_bench's own 256 MB cache
# flush before each repetition covers those.
MAX_ROTATION_SETS = 64


def rotation_sets(set_bytes: float, l2_bytes: int) -> int:
    """How many distinct input sets of `set_bytes` each (Q, K, V read and O written) to rotate over so that together
    they are at least L2_OVERSUBSCRIPTION x `l2_bytes`: at least 2 (consecutive repetitions never share inputs),
    at most MAX_ROTATION_SETS."""
    if l2_bytes <= 0:
        raise ValueError(f"L2 size must be positive, got {l2_bytes}.")
    need = math.ceil(L2_OVERSUBSCRIPTION * l2_bytes / max(set_bytes, 1.0))
    return max(2, min(MAX_ROTATION_SETS, need))


# The torch dtype of each short name (torch imported only when asked: this module must import without it).
TORCH_DTYPE_NAMES: dict[str, str] = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "fp8": "float8_e4m3fn"}


def torch_dtype(name: str):
    """The torch dtype of a short dtype name or alias ("fp16", "bfloat16", "e4m3", ...)."""
    import torch

    short = DTYPE_ALIASES.get(str(name).lower())
    if short is None:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {name!r}.")
    return getattr(torch, TORCH_DTYPE_NAMES[short])


class ConfigError(ValueError):
    """A workload description that cannot be a real attention problem; the message is one sentence."""


@dataclass(frozen=True)
class AttentionConfig:
    """One forward attention problem: Q, K, V and O are [B, H, S, D] tensors of `dtype`."""

    B: int
    H: int
    S: int
    D: int
    causal: bool = False
    dtype: str = "fp16"

    def __post_init__(self) -> None:
        for name in ("B", "H", "S", "D"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be a whole number, got {value!r}.")
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}.")
        if not isinstance(self.causal, bool):
            raise ConfigError(f"causal must be true or false, got {self.causal!r}.")
        dtype = DTYPE_ALIASES.get(str(self.dtype).lower())
        if dtype is None:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {self.dtype!r}.")
        object.__setattr__(self, "dtype", dtype)
        if self.D > 512:
            raise ConfigError(f"head dimension D={self.D} is larger than any attention kernel supports (512).")
        elements = self.B * self.H * self.S * self.D
        if elements > 2**34:
            raise ConfigError(
                f"B·H·S·D = {elements:,} elements per tensor will not fit in GPU memory; use a smaller config."
            )

    # ---- identity -------------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Stable id used in run tables and NVTX range names (no '/', which NVTX filters reserve)."""
        return f"B{self.B}-H{self.H}-S{self.S}-D{self.D}-{'causal' if self.causal else 'full'}-{self.dtype}"

    def with_(self, **changes) -> "AttentionConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return {"B": self.B, "H": self.H, "S": self.S, "D": self.D, "causal": self.causal, "dtype": self.dtype}

    # ---- counts ---------------------------------------------------------------------------------------------
    @property
    def flops(self) -> float:
        """Forward FLOPs, 4·B·H·S²·D, halved for causal (see module docstring)."""
        full = 4.0 * self.B * self.H * self.S * self.S * self.D
        return full / 2 if self.causal else full

    @property
    def exps(self) -> float:
        """Exponentials the softmax evaluates: B·H·S², halved for causal."""
        full = float(self.B) * self.H * self.S * self.S
        return full / 2 if self.causal else full

    @property
    def elem_bytes(self) -> int:
        """Bytes per element of Q, K and V (the config's dtype)."""
        return DTYPE_BYTES[self.dtype]

    @property
    def out_dtype(self) -> str:
        """The dtype of O: the config's own, bf16 for fp8 inputs (`OUTPUT_DTYPES`)."""
        return OUTPUT_DTYPES.get(self.dtype, self.dtype)

    @property
    def out_elem_bytes(self) -> int:
        """Bytes per element of O (`out_dtype`)."""
        return DTYPE_BYTES[self.out_dtype]

    @property
    def tensor_bytes(self) -> int:
        """Bytes of the problem's tensors, Q, K and V in the config's dtype and O in its output dtype, which a forward
        holds in GPU memory at once (the transposed copy of V that stage 5's fp8 path makes, kernels/_gluon.py, is
        the kernel's, not the problem's, and is not counted)."""
        return self.B * self.H * self.S * self.D * (3 * self.elem_bytes + self.out_elem_bytes)

    @property
    def min_hbm_bytes(self) -> float:
        """Fewest bytes a forward must move through HBM: Q, K, V read once and O written once (`tensor_bytes`)."""
        return float(self.tensor_bytes)

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of minimum HBM traffic."""
        return self.flops / self.min_hbm_bytes

    def tiles(self, block_m: int) -> int:
        """Work items of a one-program-per-(query tile, batch·head) grid."""
        if block_m < 1:
            raise ConfigError(f"BLOCK_M must be at least 1, got {block_m}.")
        return math.ceil(self.S / block_m) * self.B * self.H

    def waves(self, block_m: int, sm_count: int, programs_per_sm: int = 1) -> float:
        """Fractional waves of that grid over `sm_count` SMs each running `programs_per_sm` programs."""
        if sm_count < 1 or programs_per_sm < 1:
            raise ConfigError("SM count and programs per SM must be at least 1.")
        return self.tiles(block_m) / (sm_count * programs_per_sm)

    def tflops_at(self, time_ms: float) -> float:
        """Achieved TFLOP/s for a measured time in milliseconds."""
        return self.flops / (time_ms * 1e-3) / 1e12


_FLAGS = ("causal", "full", "noncausal", "non-causal")


def _items_run_together(item: str) -> bool:
    """Whether one comma-separated item holds several items separated by spaces (`B=1 H=2`, `D=64 causal`)."""
    words = re.sub(r"\s*=\s*", "=", item).split()
    return any("=" in w or w.lower() in _FLAGS or w.lower() in DTYPE_ALIASES for w in words[1:])


def parse_config(text: str) -> AttentionConfig:
    """Parse `B=16,H=16,S=2048,D=64,causal[,dtype=bf16]` (also `causal=0/1`, `full`) into a config."""
    if not text or not text.strip():
        raise ConfigError("empty config; expected something like B=16,H=16,S=2048,D=64,causal.")
    if any(_items_run_together(raw) for raw in text.split(",")):
        items = re.sub(r"\s*=\s*", "=", text).replace(",", " ").split()
        raise ConfigError(f"config {text!r} has items separated by spaces; separate items with commas, e.g. "
                          f"{','.join(items)}.")
    fields: dict = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if "=" not in part:
            flag = part.lower()
            if flag in _FLAGS:
                fields["causal"] = flag == "causal"
            elif flag in DTYPE_ALIASES:
                fields["dtype"] = flag
            else:
                raise ConfigError(f"unknown config item {part!r}; expected B=,H=,S=,D=, causal, or dtype=.")
            continue
        key, value = (s.strip() for s in part.split("=", 1))
        k = key.upper() if key.upper() in ("B", "H", "S", "D") else key.lower()
        if k in ("B", "H", "S", "D"):
            try:
                fields[k] = int(value)
            except ValueError:
                raise ConfigError(f"{k} must be a whole number, got {value!r}.") from None
        elif k == "causal":
            if value.lower() not in ("0", "1", "true", "false", "yes", "no"):
                raise ConfigError(f"causal must be true or false, got {value!r}.")
            fields["causal"] = value.lower() in ("1", "true", "yes")
        elif k == "dtype":
            fields["dtype"] = value
        else:
            raise ConfigError(f"unknown config key {key!r}; expected B, H, S, D, causal or dtype.")
    missing = [k for k in ("B", "H", "S", "D") if k not in fields]
    if missing:
        raise ConfigError(f"config {text!r} is missing {', '.join(missing)}.")
    return AttentionConfig(**fields)
