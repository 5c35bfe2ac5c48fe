"""The bound of each stage: the fastest it could run if every unit it uses ran at its ceiling.

This is a speed-of-light bound, not a prediction: it charges the work each stage executes to the tensor cores,
the exponential unit and HBM at their peak rates (the hardware table, kernels/hardware.py, or the ceilings a run
measured), with the overlap each technique is supposed to buy, the grid's tail and the exposed host launch. It has
no occupancy, latency, issue or per-instruction term, so a kernel that is latency- or issue-bound runs slower than
it (`perfmodel model score` says by how much). It never sees a kernel timing.

For a config, a stage and a GPU, `predict_stage` returns separate terms (all in ms) and how they combine:

    tensor_ms   executed MMA FLOPs / dense tensor-core rate of the dtype
    exp_ms      executed exponentials / SFU rate (ex2.approx)
    hbm_ms      HBM bytes / HBM bandwidth
    compute_ms  the steady state of the whole GPU: how the three terms overlap in this stage (see below)
    wave_ms     the tail: the last work items finishing while other SMs idle (list scheduling of the grid)
    launch_ms   the part of one host launch not hidden behind GPU work
    time_ms     = compute_ms + wave_ms + launch_ms;  tflops = config.flops / time_ms (the FLOP convention)

Assumptions (each one stated, none tuned to match a measurement):

1. Work is counted at tile granularity, as the kernels execute it. A program owns BLOCK_M query rows of one
   (batch, head) and walks BLOCK_N-wide key blocks: all of them (non-causal), or up to the block holding its last
   row (causal), so diagonal blocks are computed in full and masked, and a tail tile computes BLOCK_M padded
   rows. Each executed score element costs 4·D MMA FLOPs (QKᵀ and PV) and one exponential (masked elements are
   exponentiated too: `tl.where` then `exp2` over the whole block). The reported TFLOP/s still use the
   convention FLOPs (kernels/workload.py), so tile padding shows up as lost TFLOP/s, as it does on the GPU.
2. Only the exponentials are charged to the softmax. The other fp32 work per score (scale-and-subtract, max,
   sum, convert; the causal compare-and-select) issues on the FMA/ALU pipes at 128 lanes/clk/SM against the
   SFU's 16/clk/SM, fits in the issue slots the SFU leaves, and is the same in every stage; leaving it out makes
   every stage equally optimistic.
3. HBM traffic is the minimum: Q, K, V read once, O written once. Programs of one (batch, head) re-read its K
   and V, but they run at about the same time and K+V of one head (2·S·D·bytes: 512 KB at S=2048, D=64 fp16) is
   small next to the L2 (50 MB on H100), so re-reads hit the L2.
4. One program per SM at a time, running at the whole SM's rate; a grid is dispatched in launch order
   (tile index fastest, as `program_id(0)` is the query tile) to whichever SM frees first. Persistent stages
   take work items heavy-first (longest causal tiles first) from a shared queue, so their tail shrinks to the
   granularity of the last items (longest-processing-time list scheduling). Above 1,000,000 work items the tail
   is charged as one largest item (Graham's bound for list scheduling) instead of being simulated.
5. Launch: FA2, FA3 and Triton kernels launch ONE kernel for the whole batch (ANCHORS.md); the document's "one
   launch per batch element" is not what they do. Times are per call in a back-to-back loop (how do_bench and
   the document's own script time): a host launch hides behind the previous kernel unless the kernel is shorter,
   so only max(0, launch - GPU time) is exposed. The per-program (CTA) scheduling cost inside a grid is not
   modelled: no measured figure exists for it.
6. The stages (the overlap each technique is supposed to buy):
   0 baseline:   softmax serialized with the MMAs in the same warps: tensor + exp; loads issued by those warps
                 and software-pipelined (num_stages), so HBM traffic hides behind compute in the steady state
                 and only shows where it is larger: max(tensor + exp, hbm).
   1 warpspec:   a producer warp issues the loads: the same max(tensor + exp, hbm). Where the steady state is
                 compute bound (any causal S=2048 config: arithmetic intensity ~512 FLOP/B against a ridge of
                 ~295) the bound has no gain.
   2 reduced sync: no modelled gain. A CTA barrier where the warps arrive together costs tens of cycles against
                 ~1000 cycles of MMA and exp per key block, and the mask's compare-and-select fits in free issue
                 slots (assumption 2). The measured barrier stalls say whether this is wrong.
   3 persistent: one program per SM looping over heavy-first work items: the tail shrinks (assumption 4).
   4 overlap:    softmax overlapped with the MMAs (ping-pong between warpgroups): max(tensor, exp, hbm).
   5 full:       stage 4's overlap and persistent tail, with BLOCK_M chosen by the bound from (64, 128) as the
                 autotuner would.
`roofline_tflops` is the config's roofline: convention FLOPs over max(tensor, exp, hbm) of the minimum work, with
perfect overlap, no tail and no launch. Every stage's bound is at or below it.
"""

from __future__ import annotations

import functools
import heapq
import math
from dataclasses import dataclass

from kernels import stage_names
from kernels.hardware import GpuSpec
from kernels.workload import AttentionConfig, ConfigError

STAGE_IMPLS = tuple(stage_names())  # the registry's stages (kernels/__init__.py), in order
DEFAULT_BLOCK_M = 128  # the project's kernels' query tile (ANCHORS: BLOCK_M 128, BLOCK_N 64)
BLOCK_N = 64
STAGE5_BLOCK_M = (64, 128)  # the query tiles stage 5's autotuner chooses from
SIMULATE_MAX_ITEMS = 1_000_000

OVERLAP = {
    0: "softmax serialized with MMA (tensor+exp); loads software-pipelined: max(tensor+exp, hbm); in-order grid tail",
    1: "warp-specialized loads: max(tensor+exp, hbm), no gain where compute bound; in-order grid tail",
    2: "sync reduced: no modelled gain (barrier and mask cost fit in idle issue slots); in-order grid tail",
    3: "persistent grid: max(tensor+exp, hbm); heavy-first queue shrinks the tail",
    4: "softmax overlapped with MMA: max(tensor, exp, hbm); heavy-first persistent tail",
    5: "stage 4 with BLOCK_M chosen from 64/128: max(tensor, exp, hbm); heavy-first persistent tail",
}


@dataclass(frozen=True)
class BoundPrediction:
    stage: int
    impl: str
    config_id: str
    gpu: str
    block_m: int
    block_n: int
    work_items: int
    waves: float
    persistent: bool
    tensor_ms: float
    exp_ms: float
    hbm_ms: float
    compute_ms: float
    wave_ms: float
    launch_ms: float
    host_launch_ms: float
    time_ms: float
    tflops: float
    roofline_tflops: float
    overlap: str


def _item_units(config: AttentionConfig, block_m: int, block_n: int) -> list[int]:
    """Key blocks each query tile of one (batch, head) walks, in tile order."""
    n_tiles = math.ceil(config.S / block_m)
    if not config.causal:
        return [math.ceil(config.S / block_n)] * n_tiles
    return [math.ceil(min(config.S, (i + 1) * block_m) / block_n) for i in range(n_tiles)]


def _makespan_units(units: list[int], repeats: int, slots: int, heavy_first: bool) -> float:
    """Finish time, in key-block units, of `repeats` copies of `units` list-scheduled on `slots` equal SMs."""
    n = len(units) * repeats
    total = sum(units) * repeats
    if n <= slots:
        return float(max(units))
    if len(set(units)) == 1:  # equal items: whole waves
        return float(math.ceil(n / slots) * units[0])
    if n > SIMULATE_MAX_ITEMS:  # Graham: list scheduling finishes within one item of the average load
        return total / slots + max(units)
    return _list_schedule(tuple(units), repeats, slots, heavy_first)


@functools.lru_cache(maxsize=256)  # the bound and the model ask for the same schedules (a report: 17 asks, 6 kinds)
def _list_schedule(units: tuple[int, ...], repeats: int, slots: int, heavy_first: bool) -> float:
    order = sorted(units * repeats, reverse=True) if heavy_first else units * repeats
    free = [0] * slots
    for u in order:
        heapq.heapreplace(free, free[0] + u)
    return float(max(free))


def _rates(config: AttentionConfig, gpu: GpuSpec) -> tuple[float, float, float]:
    return gpu.mma_tflops(config.dtype) * 1e12, gpu.exp_tops * 1e12, gpu.hbm_tbps * 1e12


def roofline_tflops(config: AttentionConfig, gpu: GpuSpec) -> float:
    """The roofline: convention FLOPs / max(tensor, exp, hbm) of the minimum work, perfect overlap."""
    mma, exp, hbm = _rates(config, gpu)
    seconds = max(config.flops / mma, config.exps / exp, config.min_hbm_bytes / hbm)
    return config.flops / seconds / 1e12


def predict_stage(config: AttentionConfig, stage: int, gpu: GpuSpec, block_m: int | None = None) -> BoundPrediction:
    """The bound on the time of `stage` (0..5) on `gpu` for `config`, term by term (see the module docstring)."""
    if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < len(STAGE_IMPLS):
        raise ConfigError(f"stage must be 0..{len(STAGE_IMPLS) - 1}, got {stage!r}.")
    if block_m is not None and (isinstance(block_m, bool) or not isinstance(block_m, int) or block_m < 16):
        raise ConfigError(f"BLOCK_M must be a whole number of at least 16, got {block_m!r}.")
    if stage == 5 and block_m is None:
        candidates = [predict_stage(config, 5, gpu, bm) for bm in STAGE5_BLOCK_M]
        return min(candidates, key=lambda p: p.time_ms)
    bm = block_m or DEFAULT_BLOCK_M

    mma, exp, hbm = _rates(config, gpu)
    units = _item_units(config, bm, BLOCK_N)
    bh = config.B * config.H
    executed = float(sum(units)) * bm * BLOCK_N * bh  # score elements computed, padding and masked ones included
    tensor_ms = executed * 4 * config.D / mma * 1e3
    exp_ms = executed / exp * 1e3
    hbm_ms = config.min_hbm_bytes / hbm * 1e3

    if stage <= 3:
        compute_ms = max(tensor_ms + exp_ms, hbm_ms)
    else:
        compute_ms = max(tensor_ms, exp_ms, hbm_ms)

    persistent = stage >= 3
    slots = gpu.sm_count
    total_units = sum(units) * bh
    unit_ms = compute_ms * slots / total_units  # one key block on one SM
    makespan_ms = _makespan_units(units, bh, slots, heavy_first=persistent) * unit_ms
    wave_ms = max(0.0, makespan_ms - compute_ms)

    gpu_ms = compute_ms + wave_ms
    host_launch_ms = gpu.launch_us * 1e-3
    launch_ms = max(0.0, host_launch_ms - gpu_ms)
    time_ms = gpu_ms + launch_ms
    items = len(units) * bh
    return BoundPrediction(
        stage=stage, impl=STAGE_IMPLS[stage], config_id=config.id, gpu=gpu.key, block_m=bm, block_n=BLOCK_N,
        work_items=items, waves=items / slots, persistent=persistent,
        tensor_ms=tensor_ms, exp_ms=exp_ms, hbm_ms=hbm_ms, compute_ms=compute_ms, wave_ms=wave_ms,
        launch_ms=launch_ms, host_launch_ms=host_launch_ms, time_ms=time_ms,
        tflops=config.flops / (time_ms * 1e-3) / 1e12, roofline_tflops=roofline_tflops(config, gpu),
        overlap=OVERLAP[stage],
    )


def predict_all(config: AttentionConfig, gpu: GpuSpec, block_m: int | None = None) -> list[BoundPrediction]:
    """`predict_stage` for every stage."""
    return [predict_stage(config, s, gpu, block_m) for s in range(len(STAGE_IMPLS))]
