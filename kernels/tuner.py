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

Fidelity (`retime_top`, on by default): every candidate is first timed by do_bench on the one input set it was
given, one call per repetition, which is not how a case is timed (collectors/timing: back-to-back calls rotating over
input sets that together exceed the L2, kernels.workload.rotation_sets, the GPU's time per call). Before choosing,
the `retime_top` fastest are timed again that way (`rotated_gpu_ms`: copies of the inputs, as many as the rotation
rule asks for, calls queued back to back behind a GPU sleep so the host's launch path stays hidden, CUDA events
around them), and the fastest of those is chosen; `report()` and the timings table (collectors.timing.bench) keep
both figures of the chosen config and the config the first timings alone would have picked. It is a declared
option of the Tuner, not a technique Switch (kernels.Switch): a Switch is a field of the kernel's config that
changes the compiled kernel and is ablated by pinning variants, which bypasses the tuner; this changes which kernel
config is picked, never a kernel, and its effect is read from those figures (the warm pick's rotated time against
the chosen one's). `Tuner.timer` replaces both timings (a test's fake timer).

The module exposes the hooks the rest of the toolkit reads: `PINNED_CONFIG`, `CENSUS_CONFIG`, `config_from_report`
of its own, and its Tuner's `last_tuned_config`, `chosen_config`, `tuned_config_for` and `report` (as
`tuning_report`) bound to module names. The census and the Nsight Compute worker pin a module to the config a run
timed by setting `module.PINNED_CONFIG`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ._launch import KernelUnsupported, interpreting, is_compiler_refusal
from .hardware import DEFAULT_GPU, GPUS
from .workload import TORCH_DTYPE_NAMES, rotation_sets

# do_bench settings for tuning (ms): short, since a key times a dozen candidates.
TUNE_WARMUP_MS = 5
TUNE_REP_MS = 40
# Fidelity: how many of the fastest candidates are re-timed on rotated inputs before the choice (0: none, the
# tuning timings alone choose). Three: the candidates within a few percent of the fastest, where an L2-warm or
# host-bound figure can reorder them, are rarely more.
RETIME_TOP = 3
# The rotated re-timing: batches of back-to-back calls of at least this much GPU time (ms), at least this many
# batches, and the host time one queued call may take (us; stage 5's full launch path is 130-283 us a call,
# ANCHORS.md), which the GPU sleep ahead of a batch covers.
RETIME_BATCH_MS = 2.0
RETIME_MIN_BATCHES = 5
RETIME_HOST_US_PER_CALL = 400.0
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


def _do_bench_ms(fn: Callable[[int], Any], n_inputs: int) -> float:
    """The tuning timing: do_bench's median of `fn(0)` (n_inputs == 1), or `rotated_gpu_ms` over n_inputs sets."""
    if n_inputs > 1:
        return rotated_gpu_ms(fn, n_inputs)
    import triton

    return triton.testing.do_bench(lambda: fn(0), warmup=TUNE_WARMUP_MS, rep=TUNE_REP_MS, return_mode="median")


def rotated_gpu_ms(fn: Callable[[int], Any], n_inputs: int, rep_ms: float = TUNE_REP_MS) -> float:
    """The GPU's median time per call of `fn(i)` with i rotating over range(n_inputs), calls back to back: each batch
    (a multiple of n_inputs calls, at least RETIME_BATCH_MS) is queued behind a GPU sleep long enough for the host to
    enqueue it (so no host time lands between calls) and timed with two CUDA events."""
    import torch

    for i in range(n_inputs):  # compiled and run once each, untimed
        fn(i)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(n_inputs):
        fn(i)
    end.record()
    end.synchronize()
    estimate_ms = max(start.elapsed_time(end) / n_inputs, 1e-4)
    calls = n_inputs * max(1, math.ceil(RETIME_BATCH_MS / (estimate_ms * n_inputs)))
    clock_hz = GPUS[DEFAULT_GPU].boost_clock_mhz * 1e6
    samples: list[float] = []
    deadline = time.monotonic() + rep_ms / 1e3
    while len(samples) < RETIME_MIN_BATCHES or time.monotonic() < deadline:
        torch.cuda._sleep(int(calls * RETIME_HOST_US_PER_CALL * 1e-6 * clock_hz))
        start.record()
        for j in range(calls):
            fn(j % n_inputs)
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / calls)
    return float(statistics.median(samples))


def _rotated_sets(q, k, v, o) -> list[tuple]:
    """(q, k, v, o) and copies of it, as many sets as kernels.workload.rotation_sets asks for this GPU's L2."""
    import torch

    l2 = GPUS[DEFAULT_GPU].l2_bytes
    if q.device.type == "cuda":
        l2 = int(getattr(torch.cuda.get_device_properties(q.device), "L2_cache_size", 0)) or l2
    n = rotation_sets(sum(t.numel() * t.element_size() for t in (q, k, v, o)), l2)
    return [(q, k, v, o)] + [tuple(t.clone() for t in (q, k, v, o)) for _ in range(n - 1)]


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
    retime_top: int = RETIME_TOP  # the fastest candidates re-timed on rotated inputs before the choice (0: none)
    # timer(fn, n_inputs) -> ms of one call of fn(i): n_inputs == 1 the tuning timing, more the rotated re-timing
    timer: Callable[[Callable[[int], Any], int], float] = _do_bench_ms
    tuned: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    retimed: dict = field(default_factory=dict)  # key -> {"sets": n, "ms": [(config, warm ms, rotated ms)], ...}
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
            cfg, how = self.tuned[key], self._how(key)
        self.last_run[:] = [(key, cfg, how)]
        return cfg

    def _tune(self, key: tuple, q, k, v, o, sm_scale: float, causal: bool):
        S, D = key[0], key[1]
        ref = self.reference(q, k, v, causal=causal, sm_scale=sm_scale).float()
        scale = ref.abs().max().item() or 1.0
        timings: list[tuple[str, float]] = []
        skipped: list[tuple[str, str]] = []
        ranked: list[tuple[float, int, Any]] = []  # (ms, candidate order, config)
        for cfg in self.candidates(S, D, causal):
            try:
                o.fill_(float("nan"))
                self.launch(cfg, q, k, v, o, sm_scale, causal)
                diff = (o.float() - ref).abs().max().item()
                limit = self.max_rel_diff if q.element_size() > 1 else MAX_REL_DIFF_8BIT
                if not diff <= limit * scale:  # NaN (an unwritten or broken output) fails too
                    skipped.append((str(cfg), f"wrong result: max |out - reference| = {diff:.3g}"))
                    continue
                ms = self.timer(lambda _i: self.launch(cfg, q, k, v, o, sm_scale, causal), 1)
            except Exception as exc:  # a refused candidate is skipped and recorded, anything else is a bug
                if not (isinstance(exc, KernelUnsupported) or is_compiler_refusal(exc)):
                    raise
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                skipped.append((str(cfg), f"{type(exc).__name__}: {first[:200]}"))
                continue
            timings.append((str(cfg), ms))
            ranked.append((ms, len(ranked), cfg))
        self.timings[key] = timings
        self.skipped[key] = skipped
        if not ranked:
            raise KernelUnsupported(f"{self.name}: every candidate config was refused or wrong for this case "
                                    f"({len(skipped)} skipped: {skipped[0][1] if skipped else 'none'}); no other "
                                    "stage was run in its place.")
        ranked.sort(key=lambda r: r[:2])
        return self._retime(key, ranked[:max(0, self.retime_top)], q, k, v, o, sm_scale, causal) or ranked[0][2]

    def _retime(self, key: tuple, top: list, q, k, v, o, sm_scale: float, causal: bool):
        """The fastest of the `top` (warm ms, order, config) candidates re-timed on rotated inputs, recorded in
        `retimed[key]`; None when there is nothing to re-time."""
        if not top:
            return None
        sets = _rotated_sets(q, k, v, o)
        n_sets = len(sets)
        figures = []
        for warm_ms, _, cfg in top:
            rotated = self.timer(lambda i, cfg=cfg: self.launch(cfg, *sets[i % n_sets], sm_scale, causal), n_sets)
            figures.append((str(cfg), warm_ms, rotated))
        del sets
        best = min(range(len(top)), key=lambda i: (figures[i][2], i))
        self.retimed[key] = {"sets": n_sets, "ms": figures, "warm_pick": figures[0][0], "chosen": figures[best][0]}
        return top[best][2]

    def _how(self, key: tuple) -> str:
        """How a tuned key's config was chosen, as its report says: "tuned", with the re-timing when there was one
        (no figures: the text names the kernel a run timed, and the same choice reads the same in every run)."""
        r = self.retimed.get(key)
        return f"tuned; fastest {len(r['ms'])} re-timed on {r['sets']} rotated input sets" if r else "tuned"

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
        retimed = self.retimed.get(key) or {}
        return {"key": key, "chosen": str(chosen) if chosen else None,
                "timings_ms": list(self.timings.get(key, [])), "skipped": list(self.skipped.get(key, [])),
                # the fastest candidates re-timed on rotated inputs: (config, tuning ms, rotated ms), and the config
                # the tuning timings alone picked; empty / None without a re-timing
                "retimed_ms": list(retimed.get("ms", [])), "rotated_sets": retimed.get("sets"),
                "warm_pick": retimed.get("warm_pick")}

    def fidelity(self, key: tuple | None = None) -> dict:
        """The re-timing figures of the chosen config of `key` (default: the last call's, when it was tuned): its
        tuning time (one input set) and its rotated time, and the config the tuning timings alone picked with its
        rotated time; {} without a re-timing (pinned, untuned, or retime_top 0). What collectors.timing.bench
        stores in the timings table (runstore/schema.py, `tuner_*`)."""
        if key is None:
            if not self.last_run or not self.last_run[-1][2].startswith("tuned"):
                return {}
            key = self.last_run[-1][0]
        r = self.retimed.get(key)
        if not r:
            return {}
        by_config = {c: (warm, rotated) for c, warm, rotated in r["ms"]}
        warm, rotated = by_config[r["chosen"]]
        return {"tuner_warm_ms": warm, "tuner_rotated_ms": rotated, "tuner_retimed": len(r["ms"]),
                "tuner_warm_pick": "" if r["warm_pick"] == r["chosen"] else r["warm_pick"],
                "tuner_warm_pick_rotated_ms": by_config[r["warm_pick"]][1]}
