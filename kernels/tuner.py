"""The tuner of the tuning kernels (stage 5 and the `triton_tl` peer): per key, time every candidate config, keep
the fastest whose output agrees with a trusted kernel's.

A kernel module that tunes builds one `Tuner` from three functions of its own (the protocol, all explicit):

    candidates(S, D, causal) -> list[Config]          the configs to try for a key, in a stable order
    launch(cfg, q, k, v, o, sm_scale, causal) -> Any  run the kernel of one config, writing o
    parse(text) -> Config | None                      the Config a `str(cfg)` report names (inverse of str)

and a `reference(q, k, v, causal, sm_scale) -> Tensor` it trusts (stage 0, the FlashAttention-2 baseline): a
candidate whose output differs from the reference's by more than `max_rel_diff` of its largest value is rejected
as a miscompile, as is one Triton refuses to build (both recorded with their reason). The key is (S, D, causal,
dtype, device, B·H rounded down to a power of two): the best config at B=1 (a fraction of a wave) is not the best
at B=32 (measured on the H100, 2026-11-24).

Why a hand-written tuner instead of `@triton.autotune`: Triton's autotuner lets a crashing compiler pass abort the
whole tuning and never checks outputs, and a persistent candidate's grid depends on the device.

The module exposes the hooks the rest of the toolkit reads: `PINNED_CONFIG`, `CENSUS_CONFIG`, `config_from_report`
of its own, and its Tuner's `last_tuned_config`, `chosen_config`, `tuned_config_for` and `report` (as
`tuning_report`) bound to module names. The census and the Nsight Compute worker pin a module to the config a run
timed by setting `module.PINNED_CONFIG`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ._launch import KernelUnsupported, interpreting, is_compiler_refusal
from .workload import TORCH_DTYPE_NAMES

# do_bench settings for tuning (ms): short, since a key times a dozen candidates.
TUNE_WARMUP_MS = 5
TUNE_REP_MS = 40
# Correct configs differ from the reference by rounding only (~1e-3 of the largest output in fp16; with 8-bit
# inputs P is rounded to e4m3, 3 mantissa bits, for P·V: a few 1e-2). A config off by more is broken, not tuned.
MAX_REL_DIFF = 2e-2
MAX_REL_DIFF_8BIT = 1e-1


def config_from_report(cls, text: str | None, aliases: dict | None = None):
    """The `cls` config (a dataclass of bool and int fields) that a `str(cfg)` report names (a run's `tuned_config`
    column: what lets a later process run exactly the config a run timed), fields the report leaves out at their
    defaults; None when it names none or a value does not parse. `aliases` maps a name the report spells another
    way to (field, parse), e.g. {"loads": ("use_tma", lambda v: v == "tma")}."""
    aliases = aliases or {}
    names = [f.name for f in dataclasses.fields(cls)] + list(aliases)
    found = dict(re.findall(r"\b(" + "|".join(map(re.escape, names)) + r")=(\S+)", text or ""))
    if not found:
        return None
    try:
        kw = {f.name: (found[f.name] == "True") if f.type in (bool, "bool") else int(found[f.name])
              for f in dataclasses.fields(cls) if f.name in found}
        kw.update({name: parse(found[alias]) for alias, (name, parse) in aliases.items() if alias in found})
        return cls(**kw)
    except (TypeError, ValueError):
        return None


def tune_key(q, causal: bool) -> tuple:
    B, H, S, D = q.shape
    return (S, D, causal, q.dtype, q.device, 1 << (B * H).bit_length() - 1)


@dataclass
class Tuner:
    name: str
    candidates: Callable[[int, int, bool], list]
    launch: Callable[..., Any]
    parse: Callable[[str | None], Any]
    reference: Callable[..., Any]
    max_rel_diff: float = MAX_REL_DIFF
    tuned: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    last_run: list = field(default_factory=list)  # [(key, config, "tuned" | "pinned" | "untuned: ...")]

    def choose(self, q, k, v, o, sm_scale: float, causal: bool, pinned=None):
        """The config to run for these inputs: `pinned` if given, else the tuned one (tuning the key if new)."""
        key = tune_key(q, causal)
        if pinned is not None:
            cfg, how = pinned, "pinned"
        elif interpreting():
            # nothing can be timed on the CPU: the interpreter runs the first candidate, untuned
            cfg, how = self.candidates(key[0], key[1], causal)[0], "untuned: interpreter"
        else:
            if key not in self.tuned:
                self.tuned[key] = self._tune(key, q, k, v, o, sm_scale, causal)
            cfg, how = self.tuned[key], "tuned"
        self.last_run[:] = [(key, cfg, how)]
        return cfg

    def _tune(self, key: tuple, q, k, v, o, sm_scale: float, causal: bool):
        import triton

        S, D = key[0], key[1]
        ref = self.reference(q, k, v, causal=causal, sm_scale=sm_scale).float()
        scale = ref.abs().max().item() or 1.0
        timings: list[tuple[str, float]] = []
        skipped: list[tuple[str, str]] = []
        best = None
        for cfg in self.candidates(S, D, causal):
            try:
                o.fill_(float("nan"))
                self.launch(cfg, q, k, v, o, sm_scale, causal)
                diff = (o.float() - ref).abs().max().item()
                limit = self.max_rel_diff if q.element_size() > 1 else MAX_REL_DIFF_8BIT
                if not diff <= limit * scale:  # NaN (an unwritten or broken output) fails too
                    skipped.append((str(cfg), f"wrong result: max |out - reference| = {diff:.3g}"))
                    continue
                ms = triton.testing.do_bench(lambda: self.launch(cfg, q, k, v, o, sm_scale, causal),
                                             warmup=TUNE_WARMUP_MS, rep=TUNE_REP_MS, return_mode="median")
            except Exception as exc:  # a refused candidate is skipped and recorded, anything else is a bug
                if not (isinstance(exc, KernelUnsupported) or is_compiler_refusal(exc)):
                    raise
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                skipped.append((str(cfg), f"{type(exc).__name__}: {first[:200]}"))
                continue
            timings.append((str(cfg), ms))
            if best is None or ms < best[0]:
                best = (ms, cfg)
        self.timings[key] = timings
        self.skipped[key] = skipped
        if best is None:
            raise KernelUnsupported(f"{self.name}: every candidate config was refused or wrong for this case "
                                    f"({len(skipped)} skipped: {skipped[0][1] if skipped else 'none'}); no other "
                                    "stage was run in its place.")
        return best[1]

    # ---- reports ------------------------------------------------------------------------------------------------
    def last_tuned_config(self) -> str:
        """The config of the last call (tuned, or pinned), with its key; '' before any call."""
        if not self.last_run:
            return ""
        key, cfg, how = self.last_run[-1]
        S, D, causal, dtype, _device, bh = key
        return f"S={S} D={D} causal={causal} dtype={str(dtype).replace('torch.', '')} B*H~{bh}: {cfg} ({how})"

    def chosen_config(self) -> str | None:
        """`last_tuned_config()`, or None before any call (the name the bench collector looks for)."""
        return self.last_tuned_config() or None

    def tuned_config_for(self, config):
        """The config tuned in this process for an AttentionConfig's key, on any device; None if not tuned."""
        bh = 1 << (config.B * config.H).bit_length() - 1
        dtype = TORCH_DTYPE_NAMES.get(config.dtype, config.dtype)
        for (S, D, causal, tdtype, _device, bucket), cfg in self.tuned.items():
            if (S, D, causal, bucket) == (config.S, config.D, config.causal, bh) and str(tdtype).endswith(dtype):
                return cfg
        return None

    def report(self, key: tuple | None = None) -> dict:
        """Timings (ms) of every candidate and the skipped ones with their reason, for `key` (default: last)."""
        if key is None:
            if not self.last_run:
                return {}
            key = self.last_run[-1][0]
        chosen = self.tuned.get(key)
        return {"key": key, "chosen": str(chosen) if chosen else None,
                "timings_ms": list(self.timings.get(key, [])), "skipped": list(self.skipped.get(key, []))}
