"""The predictive model (v4): a stage's time from its compiled code and the GPU's ceilings, never from a timing.

Where the bound (perfmodel/model/bound.py) charges the work to each unit at its peak, this model reads what the
compiled sm_90 kernel issues per key-block iteration (perfmodel/model/instruction_mix.py: wgmma FLOPs and shapes, ex2,
every other instruction, shared-memory bytes, barriers, asynchronous wgmma waits, warps, registers, occupancy,
partitions, the grid) and charges it per SM. Constants come only from the hardware table (kernels/hardware.py:
datasheet rates, schedulers and shared-memory banks per SM, the per-SM limits) or from the ceilings the run measured
(fp16/bf16_mma_tflops, exp2_tops, hbm_tbps, launch_us, which replace the datasheet figures through
GpuSpec.with_measured), plus the host cost of launching the stage that a run's `launch` table measured (a host
cost, not a kernel timing). Nothing is fitted to attention timings.

Per SM, one iteration (one key block of every resident program) takes the largest of these terms (the binding
term is named per case):

    tensor  FLOPs of the resident programs' wgmmas / the per-SM tensor rate (dtype's TFLOP/s / SMs)
    mufu    ex2 per thread x threads / the per-SM exponential rate (exp TOP/s / SMs)
    issue   every instruction of the loop x warps / (schedulers per SM x clock): FMA/ALU issue slots, one warp
            instruction a clock per scheduler (the FP32 pipe takes one a clock too, INT32 one every two: a
            conservative reading charges every non-wgmma instruction one slot)
    smem    shared-memory bytes (ld/st.shared, ldmatrix, and the wgmma operands read from shared memory: B always,
            A unless it is in registers) / (128 bytes a clock)
    chain   the longest dependency chain of one math group: a group is the warps that run a math loop together
            (warp groups whose loop holds a bar.sync naming more than one warp group, or the whole CTA, run in
            lockstep and form one group; otherwise each warp group is its own). In a group the softmax (its issue
            or its ex2, whichever is longer) waits for QKᵀ, so matmul and softmax add: mma + softmax; wgmma left in
            flight across a `wgmma.wait_group N>=1` (the asynchronous P·V of a pipelined loop) overlaps the
            softmax: (mma - overlap) + max(overlap, softmax).

Overlapped pipes take the max, serialized ones add, and that structure comes from the instruction mix: a
non-warp-specialized kernel with synchronous waits has one chain per warp group that serializes its softmax after
its matmuls, and only other resident programs fill the gap; two ping-pong consumer groups are two chains, so one
group's softmax runs under the other's matmuls whenever the per-SM pipe sums allow it.

Around the iteration: the grid in key-block units (key blocks per work item from the launch's BLOCK_M/BLOCK_N,
causal tiles stopping at the diagonal) list-scheduled on SMs x resident programs (a non-persistent grid in launch
order, bound._makespan_units; a persistent one statically strided, heaviest first when causal), giving the steady
state and the tail; a per-work-item prologue and epilogue (the Q tile in, the O tile out, at the SM's share of HBM
bandwidth, hidden by the other resident programs: divided by their number); HBM as a whole-GPU floor (the bound's
HBM bytes); and the host launch, exposed where it is longer than the GPU time (runs are timed back to back).

Latencies (v3). When the GPU carries the micro-benchmarks of collectors/ceilings/microbench.py (the run's own, else a
bundled run's of the same SM: perfmodel.model.run_gpu.run_gpu), the chain term is not the v1 formula above but a
replay of one SM partition (perfmodel/model/critical_path.py `partition_seconds`): one warp of every math warp group of
every resident program (warp groups span the four partitions alike), each issuing its loop's PTX in order, waiting for
the registers it reads at the measured latencies (FMA, exp2, shuffle), the warps sharing the partition's issue port
(one instruction a clock), its MUFU (busy per ex2 at the measured exp2 rate) and its tensor core (each wgmma group
occupies it for its FLOPs at its shape's measured rate and completes its measured latency after its commit, at the
earliest); the lockstep warp groups of one consumer joined at their bar.syncs; bar.sync, ready mbarrier waits and
wgmma waits holding a warp at their measured cost. The tensor term charges each group at its shape's measured rate.
Without micro-benchmarks the chain is v1's and `unpriced` says which barrier counts went unpriced. What stays out:
a producer that falls behind (a ring running dry: the replay assumes every mbarrier wait finds its phase
complete), the order the stages' "turn" mbarriers impose between ping-pong groups (they run free, and started
together they stay in phase), SASS (PTX is replayed; ptxas' instruction count differs by about 10-15%), and both
sides of an in-loop branch replayed. (v2, frozen at 07d4ee7 and scored out of sample on
runs/20261202-053909-seed-nvidia-h200, replayed each math group's warp alone and took the larger of that and the
SM's pipe sums.)

v4 (docs/model-v4.md) adds, each from the compiled launch and the micro-benchmarks: the kernels' own work-item order
(`item_units`: L2 sections of heads sized for the GPU's L2, heaviest tile first when causal, kernels/schedule.py),
so the tail is the real static schedule's busiest program (persistent) or the list schedule of the launch order
(non-persistent); the producer (`_producer`): the `tma` iteration term (K and V of a key block at the measured TMA
rate from L2) and the Q load a consumer waits for at a work item's start (the measured TMA latency or the HBM
transfer, the longer) unless a second Q buffer (the tuned Q ring) lets the producer load it ahead. It still replays
PTX: the SASS experiment (`--loops sass`) now charges each SASS instruction its control word's stall clocks but
scores worse (docs/model-v4.md says why). Turn order and idle warps stay out (no time term: see that note).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from kernels.hardware import GpuSpec
from kernels.schedule import item_tiles, l2_budget, l2_group_heads
from kernels.workload import AttentionConfig
from perfmodel.model import bound

ITERATION_TERMS = ("tensor", "mufu", "issue", "smem", "chain", "tma")


@dataclass(frozen=True)
class ModelPrediction:
    """Every term of one prediction (times in ms unless named otherwise); `terms()` gives the stackable ones."""

    stage: int
    impl: str
    config_id: str
    gpu: str
    iteration_us: dict  # per-SM time of one iteration of the resident programs, per term (us)
    binding: str  # the term that sets the time: one of ITERATION_TERMS, "hbm" or "launch"
    programs_per_sm: int
    math_groups: int
    slots: int
    steady_ms: float  # the grid's key blocks / slots x the iteration time
    tail_ms: float  # the makespan beyond the average
    prologue_epilogue_ms: float
    hbm_ms: float
    launch_ms: float  # exposed host launch
    host_launch_us: float
    host_launch_source: str
    time_ms: float
    unpriced: dict = field(default_factory=dict)  # per-iteration counts left unpriced (no micro-benchmarks)
    latency_source: str = ""  # whose micro-benchmarks priced the chain ("" = none: v1's chain)
    inputs_hash: str = ""  # what this prediction read (inputs_hash)

    def terms(self) -> dict:
        """The additive terms of time_ms (they sum to it) and the binding term's name."""
        compute = self.steady_ms + self.tail_ms + self.prologue_epilogue_ms
        return {"steady_ms": self.steady_ms, "tail_ms": self.tail_ms,
                "prologue_epilogue_ms": self.prologue_epilogue_ms,
                "hbm_excess_ms": max(0.0, self.hbm_ms - compute), "launch_ms": self.launch_ms,
                "time_ms": self.time_ms, "binding": self.binding}


# The micro-benchmarks the replay needs (collectors/ceilings/microbench.py); without them (a run from before they
# existed and no reference run of the same SM, see perfmodel.model.run_gpu.run_gpu) the chain is v1's, from pipe
# rates only.
MICRO_NEEDED = ("fma_latency_ns", "exp2_latency_ns", "shfl_latency_ns", "bar_sync_ns", "mbarrier_wait_ready_ns")
_WGMMA_ROW = re.compile(r"^wgmma_(ss|rs)_n(\d+)_k(\d+)_latency_ns$")


def latencies(gpu: GpuSpec):
    """The replay's Latencies from `gpu`'s micro-benchmarks, or None when a needed one is missing."""
    from perfmodel.model.critical_path import Latencies

    m = dict(gpu.micro)
    shapes = {}
    for name, value in m.items():
        hit = _WGMMA_ROW.match(name)
        rate = m.get(name.replace("_latency_ns", "_tflops"))
        if hit and rate:
            shapes[(hit.group(1), int(hit.group(2)), int(hit.group(3)))] = (value * 1e-9, rate * 1e12 / gpu.sm_count)
    if not shapes or any(k not in m for k in MICRO_NEEDED):
        return None
    clock = gpu.boost_clock_mhz * 1e6
    partitions = gpu.sm_count * gpu.schedulers_per_sm
    smem_per_clock = (m["smem_tbps"] * 1e12 / (partitions * clock) if "smem_tbps" in m
                      else gpu.smem_bytes_per_clk / gpu.schedulers_per_sm)

    def group(kind: str, n: int, k_total: int, flops: float) -> tuple[float, float]:
        """(latency, time at the per-shape rate) of a wgmma group: the measured shape, else the nearest measured
        one of the same operand kind (then any kind) scaled by FLOPs."""
        same = [key for key in shapes if key[0] == kind] or list(shapes)
        key = min(same, key=lambda s: (s[1] != n, abs(s[2] - k_total), abs(s[1] - n)))
        latency, rate = shapes[key]
        return latency * flops / (2 * 64 * key[1] * key[2]), flops / rate

    return Latencies(clock_hz=clock, alu_s=m["fma_latency_ns"] * 1e-9,
                     ex2_s=max(m["exp2_latency_ns"] - m["fma_latency_ns"], m["fma_latency_ns"]) * 1e-9,
                     xbar_s=m["shfl_latency_ns"] * 1e-9, bar_sync_s=m["bar_sync_ns"] * 1e-9,
                     mbarrier_wait_s=max(m["mbarrier_wait_ready_ns"] - m["bar_sync_ns"], 0.0) * 1e-9,
                     mufu_clocks=32 * partitions * clock / (gpu.exp_tops * 1e12),
                     smem_bytes_per_clock=smem_per_clock, wgmma_group_s=group)


def _per_program_groups(mix, gpu: GpuSpec, config: AttentionConfig) -> list[dict]:
    """Per math group of one program: its per-iteration pipe demands and dependency chain, in seconds."""
    from perfmodel.model.critical_path import wgmma_groups

    clock_hz = gpu.boost_clock_mhz * 1e6
    tensor_rate = gpu.mma_tflops(config.dtype) * 1e12 / gpu.sm_count  # FLOP/s per SM
    mufu_rate = gpu.exp_tops * 1e12 / gpu.sm_count  # ex2/s per SM
    smem_rate = gpu.smem_bytes_per_clk * clock_hz  # bytes/s per SM
    sched = gpu.schedulers_per_sm
    lat = latencies(gpu)
    groups = []
    for lp in mix.kernel.math_loops:
        wg = mix.warpgroups_per_loop
        lockstep = wg > 1 and any(t == 0 or t > 128 for t in lp.bar_threads)
        n_groups, wg_per_group = (1, wg) if lockstep or wg != round(wg) else (int(round(wg)), 1.0)
        warps = 4 * wg_per_group
        if lat is not None and lp.path:
            # the tensor pipe at the per-shape rates measured; the chain: the SM partition's warps replayed
            # together (_joint_chain), set on the groups by predict_stage
            mma = wg_per_group * sum(lat.wgmma_group_s(*g)[1] for g in wgmma_groups(lp.path))
            chain = 0.0
        else:
            mma = lp.wgmma_flops * wg_per_group / tensor_rate
            chain = None
        overlap = lp.overlap_flops * wg_per_group / tensor_rate
        mufu = lp.ex2 * 32 * warps / mufu_rate
        issue_total = lp.instructions * warps / (sched * clock_hz)  # the SM's schedulers' time
        issue_own = max(1.0, warps / sched) * lp.instructions / clock_hz  # the group's warps on their schedulers
        smem = (lp.smem_bytes * 32 * warps + lp.wgmma_smem_bytes * wg_per_group) / smem_rate
        if chain is None:
            softmax = max(issue_own, mufu)
            chain = (mma - overlap) + max(overlap, softmax)
        for _ in range(n_groups):
            groups.append({"tensor": mma, "mufu": mufu, "issue": issue_total, "smem": smem, "chain": chain,
                           "bar_sync": lp.bar_sync, "mbarrier_wait": lp.mbarrier_wait})
    return groups


_JOINT: dict = {}


def _joint_chain(mix, lat, gpu: GpuSpec, resident: int) -> float:
    """One SM partition's warps replayed together (perfmodel.model.critical_path.partition_seconds): one warp of each
    math warp group of each resident program, the lockstep warp groups of one consumer joined at their bar.syncs.
    Cached per kernel, residency and micro-benchmarks."""
    from perfmodel.model.replay_cache import partition_seconds  # critical_path's, kept on disk

    key = (mix.kernel.hash, mix.kernel.loops_source, resident, gpu.micro, gpu.boost_clock_mhz, gpu.exp_tops,
           gpu.schedulers_per_sm)  # one kernel hash has a PTX and a SASS mix
    if key not in _JOINT:
        streams = []
        for program in range(resident):
            for n, lp in enumerate(mix.kernel.math_loops):
                wg = mix.warpgroups_per_loop
                lockstep = wg > 1 and any(t == 0 or t > 128 for t in lp.bar_threads)
                count = max(1, int(round(wg)))
                for g in range(count):
                    streams.append((lp.path, (program, n) if lockstep else (program, n, g)))
        # the latencies' wgmma function is made from the GPU's micro-benchmarks and SM count (`latencies`)
        _JOINT[key] = partition_seconds(streams, lat, made_from=(gpu.micro, gpu.sm_count, gpu.boost_clock_mhz,
                                                                 gpu.exp_tops, gpu.schedulers_per_sm,
                                                                 gpu.smem_bytes_per_clk))
    return _JOINT[key]


def _producer(mix, gpu: GpuSpec, config: AttentionConfig) -> tuple[float, float | None]:
    """(seconds a program's K and V of one key block take at the measured TMA rate from L2, the Q load a consumer
    waits for at a work item's start) of a kernel with a TMA producer partition (v4); (0, None) without one or
    without the TMA micro-benchmarks (collectors/ceilings/microbench.py tma_l2_tbps, tma_latency_ns).

    The producer can fall behind two ways. Per iteration, it moves 2 x BLOCK_N x D elements (K and V) at the SM's
    share of the measured TMA rate: the `tma` iteration term. At a work item's start, the consumer waits for its Q
    tile for the measured TMA latency (or its transfer at the SM's HBM share, the longer, see price) where the
    producer could not load it ahead: a fresh program (a non-persistent grid), or a persistent one with one Q
    buffer (the producer waits for the consumer to release it at the item's end, and issues the next item's K and
    V after it). With two or more Q buffers (stage 5's tuned `Q_RING`), the producer loads the next item's Q and
    its first K/V blocks during the current item: 0, hidden."""
    micro = dict(gpu.micro)
    # warp-specialized (setmaxnreg budgets or a TMA-only loop): the producer partition. Not producer_loops alone:
    # the census' loop finder counts stage 4's and 5's producer loop inside a consumer's (the partitions' switch)
    if not mix.warp_specialized or "tma_l2_tbps" not in micro or "tma_latency_ns" not in micro:
        return 0.0, None
    kv_bytes = 2 * mix.block_n * config.D * config.elem_bytes
    per_iteration = kv_bytes / (micro["tma_l2_tbps"] * 1e12 / gpu.sm_count)
    q_ring = int(mix.launch_meta.get("Q_RING", 1))
    hidden = mix.persistent and q_ring >= 2
    return per_iteration, 0.0 if hidden else micro["tma_latency_ns"] * 1e-9


def item_units(mix, gpu: GpuSpec) -> list[int]:
    """Key blocks of every work item in the order the kernel numbers them (v4): a kernel taking an L2 group orders
    them in L2 sections of heads sized for `gpu`'s L2, heaviest tile first when causal (kernels/schedule.py, the
    host mirror of kernels/_gluon.py `work_item`); any other grid runs query tiles, then heads."""
    units, c = list(mix.iterations), mix.config
    if not mix.l2_sections:
        return units * (c.B * c.H)
    group = l2_group_heads(c.B, c.H, c.S, c.D, c.elem_bytes, l2_budget(gpu.l2_bytes))
    return [units[m] for m in item_tiles(len(units), c.B, c.H, group, c.causal)]


def _makespan(mix, slots: int, gpu: GpuSpec) -> float:
    """Finish time of the grid in key-block units on `slots` equal program slots: a non-persistent grid
    list-scheduled in the kernel's item order (the hardware starts programs in launch order as slots free), a
    persistent one statically strided (program p runs items p, p + grid, ...), its busiest program's load; one that
    takes its items from a counter (the dynamic schedule) list-scheduled in the kernel's order on its programs."""
    order = item_units(mix, gpu)
    if not mix.persistent:
        return bound._makespan_units(order, 1, slots, heavy_first=False)
    if mix.dynamic_schedule:
        return bound._makespan_units(order, 1, min(mix.grid_programs, slots), heavy_first=False)
    order = np.array(order, dtype=np.int64)
    grid = mix.grid_programs
    rows = math.ceil(order.size / grid)
    padded = np.zeros(rows * grid, dtype=np.int64)
    padded[: order.size] = order
    loads = padded.reshape(rows, grid).sum(axis=0)  # program p walks items p, p + grid, ...
    return float(loads.max())


def predict_stage(config: AttentionConfig, stage: int, gpu: GpuSpec, host_launch_us: float | None = None,
                  tuned_config: str | None = None, loops: str = "ptx") -> ModelPrediction:
    """The model's prediction for `stage` at `config` on `gpu` (raises perfmodel.model.instruction_mix.MixError when
    the stage cannot be compiled for sm_90 there). `host_launch_us`: the host cost of one launch of this stage
    that a run measured (its `launch` table); else the GPU's `launch_us` (an empty Triton launch).
    `tuned_config`: for a tuning stage, the kernel config the measured run reported it ran; the model compiles
    that one (else the census' default, see collectors/census/census.py). `loops`: where the math loops are read,
    "ptx" (the model's) or "sass" (perfmodel/model/sass_mix.py; `perfmodel model score --loops sass`, an experiment
    that is not model v3)."""
    from perfmodel.model.mix_cache import instruction_mix

    impl = bound.STAGE_IMPLS[stage]
    mix = instruction_mix(impl, config, gpu.sm_count, tuned_config, loops)
    return price(mix, config, stage, gpu, host_launch_us, tuned_config)


def price(mix, config: AttentionConfig, stage: int, gpu: GpuSpec, host_launch_us: float | None = None,
          tuned_config: str | None = None) -> ModelPrediction:
    """The model's prediction for a compiled stage: `mix` is its instruction mix at `config` (predict_stage
    compiles it, or reads it from the caches; the golden test hands a stored one)."""
    impl = bound.STAGE_IMPLS[stage]
    groups = _per_program_groups(mix, gpu, config)
    resident = max(1, min(mix.programs_per_sm, math.ceil(mix.grid_programs / gpu.sm_count)))
    per_iter = {t: resident * sum(g[t] for g in groups) for t in ("tensor", "mufu", "issue", "smem")}
    tma_s, q_wait_s = _producer(mix, gpu, config)
    per_iter["tma"] = resident * tma_s
    lat = latencies(gpu)
    if lat is not None and all(lp.path for lp in mix.kernel.math_loops):
        per_iter["chain"] = _joint_chain(mix, lat, gpu, resident)
    else:
        per_iter["chain"] = max(g["chain"] for g in groups)
    iteration_s = max(per_iter.values())
    binding = max(per_iter, key=per_iter.get)

    slots = gpu.sm_count * resident
    total_units = sum(mix.iterations) * config.B * config.H
    makespan = _makespan(mix, slots, gpu)
    steady_ms = total_units / slots * iteration_s * 1e3
    tail_ms = max(0.0, makespan - total_units / slots) * iteration_s * 1e3

    q_bytes = mix.block_m * config.D * config.elem_bytes  # the Q tile in
    o_bytes = mix.block_m * config.D * config.out_elem_bytes  # the O tile out (bf16 for 8-bit inputs)
    per_sm_hbm = gpu.hbm_tbps * 1e12 / gpu.sm_count
    items_per_slot = math.ceil(mix.work_items / slots)
    q_in_s = q_bytes / per_sm_hbm
    if q_wait_s is not None:  # v4: a TMA producer's Q load, see _producer
        q_in_s = max(q_in_s, q_wait_s) if q_wait_s > 0 else 0.0
    pe_ms = items_per_slot * (q_in_s + o_bytes / per_sm_hbm) / resident * 1e3

    hbm_ms = bound.predict_stage(config, stage, gpu).hbm_ms
    compute_ms = steady_ms + tail_ms + pe_ms
    gpu_ms = max(compute_ms, hbm_ms)
    if hbm_ms > compute_ms:
        binding = "hbm"
    measured_host = host_launch_us is not None and math.isfinite(host_launch_us) and host_launch_us > 0
    host_us = float(host_launch_us) if measured_host else gpu.launch_us
    launch_ms = max(0.0, host_us * 1e-3 - gpu_ms)
    if launch_ms > 0:
        binding = "launch"
    return ModelPrediction(
        stage=stage, impl=impl, config_id=config.id, gpu=gpu.key,
        iteration_us={t: v * 1e6 for t, v in per_iter.items()}, binding=binding, programs_per_sm=resident,
        math_groups=len(groups), slots=slots, steady_ms=steady_ms, tail_ms=tail_ms, prologue_epilogue_ms=pe_ms,
        hbm_ms=hbm_ms, launch_ms=launch_ms, host_launch_us=host_us,
        host_launch_source="the run's launch table" if measured_host else "launch_us (empty Triton launch)",
        time_ms=gpu_ms + launch_ms,
        unpriced={} if latencies(gpu) is not None else {
            "bar_sync": max(g["bar_sync"] for g in groups), "mbarrier_wait": max(g["mbarrier_wait"] for g in groups)},
        latency_source=gpu.micro_source if latencies(gpu) is not None else "",
        inputs_hash=inputs_hash(config, stage, gpu, mix, host_launch_us, tuned_config))


def predict_ms(config: AttentionConfig, stage: int, gpu: GpuSpec, host_launch_us: float | None = None,
               tuned_config: str | None = None) -> float:
    """time_ms of `predict_stage`, or NaN where the stage does not compile for sm_90 at `config`."""
    from perfmodel.model.instruction_mix import MixError

    try:
        return predict_stage(config, stage, gpu, host_launch_us, tuned_config).time_ms
    except MixError:
        return math.nan


# The model's version. Bump it with any change to what the model or the bound predicts from the same inputs: a
# term, a constant, a rule (tests/test_model_golden.py holds this version's predictions for fixed inputs and fails
# until the version is bumped and its golden file written: scripts/model_golden.py). Moving or splitting code changes
# nothing. `perfmodel collect` stores the version with each prediction before it times anything, and `perfmodel
# model score` uses a stored prediction ("stored, out of sample") while its version is today's.
MODEL_VERSION = 4

# The commit each version was frozen at, before the GPU measurements that score it out of sample (None: not frozen
# yet, so every figure of it on a committed run or table is in sample). Set it when the version's commit is made.
FROZEN_AT = {2: "07d4ee7", 3: "466fdf8", 4: "31d711d"}

# Predictions stored before the version existed carry `model_hash`, a hash of the model's source files and GPU
# figures; this is the one table of which model each such hash was (from the commit its run names).
LEGACY_MODEL_HASHES = {
    "ed5930b9c9cd": 2,  # runs/20261202-053909-seed-nvidia-h200, made at 07d4ee7 (model v2 frozen)
    "b0b6e06efb04": 3,  # runs/20261202-060607-seed-nvidia-h200, made at 466fdf8 (model v3 frozen)
}


def inputs_hash(config: AttentionConfig, stage: int, gpu: GpuSpec, mix=None, host_launch_us: float | None = None,
                tuned_config: str | None = None) -> str:
    """12 hex digits of SHA-256 over what one prediction read: the config and stage, every figure of `gpu` (the
    datasheet's, or measured ones, and the micro-benchmarks it carries), the instruction mix (its serialized
    record, perfmodel/model/mix_cache.py: so the compiled code it priced), the host launch cost and the tuned config.
    Stored beside each prediction: two predictions with the same hash and MODEL_VERSION are the same number."""
    import dataclasses
    import hashlib
    import json

    figures = {k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in dataclasses.asdict(gpu).items()}
    doc = {"config": config.as_dict(), "stage": stage, "gpu": figures, "host_launch_us": host_launch_us,
           "tuned_config": tuned_config or None}
    if mix is not None:
        from perfmodel.model.mix_cache import kernel_to_dict, mix_to_dict

        doc["mix"] = {"case": mix_to_dict(mix), "kernel": kernel_to_dict(mix.kernel)}
    text = json.dumps(doc, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
