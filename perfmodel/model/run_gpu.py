"""Which GPU figures a run is predicted with: its GPU's hardware-table entry, the ceilings it measured in place of the
datasheet's, and the micro-benchmarks the predictive model's replay prices latencies with (the run's own, else the
newest bundled run's on a GPU with the same SM: the H100 SXM and the H200). Shared by the report's tables
(perfmodel/reports/analysis.py) and the scorer (perfmodel/model/score_sources.py), so both predict a run from the same
figures.
"""

from __future__ import annotations

import functools

from kernels.hardware import DEFAULT_GPU, HardwareError
from perfmodel.runs import Run, gpu_name, load_run

# the GPU a run without one (an --interpret run) is predicted for: the one the census compiles for
FALLBACK_GPU = DEFAULT_GPU


def measured_ceilings(run: Run) -> dict[str, float]:
    """The ceilings and micro-benchmarks this run measured ({name: value}), e.g. fp16_mma_tflops, hbm_tbps,
    exp2_tops, launch_us, wgmma_ss_n128_k64_latency_ns; a run measured on several GPUs (--devices, merged shards)
    has one row per GPU and name, and gives the median (collectors.sweep.merge.ceiling_values)."""
    from collectors.sweep.merge import ceiling_values

    return ceiling_values(run.table("ceilings"))


def _same_sm(a, b) -> bool:
    """Two hardware-table GPUs with the same SM (count, clock, tensor and exponential rates): the H100 SXM and
    the H200, whose micro-benchmarks then stand for each other."""
    return (a.sm_count, a.boost_clock_mhz, a.fp16_tflops, a.exp_tops) == (b.sm_count, b.boost_clock_mhz,
                                                                        b.fp16_tflops, b.exp_tops)


def reference_micro(gpu) -> tuple[dict[str, float], str]:
    """({name: value}, where from) of the micro-benchmarks of the newest bundled run (perfmodel/bundled/) on a GPU
    with `gpu`'s SM, for a run or a bench table that measured none; ({}, "") when no bundled run has them."""
    for run_id, ref_gpu, micro in _bundled_micro():
        if _same_sm(ref_gpu, gpu):
            return dict(micro), f"micro-benchmarks of bundled run {run_id} ({ref_gpu.key}, the same SM)"
    return {}, ""


@functools.lru_cache(maxsize=1)
def _bundled_micro() -> tuple:
    """(run id, GpuSpec, micro-benchmark pairs) of every bundled run that measured micro-benchmarks, newest first:
    read once per process (the package's runs do not change under it; the scorer asks once per source)."""
    from kernels.hardware import CEILING_FIELDS, get_gpu

    from perfmodel.runs import bundled_run_dirs

    out = []
    for d in reversed(bundled_run_dirs()):
        try:
            ref = load_run(d)
            ref_gpu = get_gpu(gpu_name(ref))
        except Exception:  # a bundled run without a GPU the table knows cannot stand for any
            continue
        micro = tuple(sorted((k, v) for k, v in measured_ceilings(ref).items() if k not in CEILING_FIELDS))
        if micro:
            out.append((ref.run_id, ref_gpu, micro))
    return tuple(out)


def with_micro(gpu, micro: dict[str, float], own: str):
    """`gpu` carrying `micro` (said to come from `own`), else the bundled reference's, else none."""
    if micro:
        return gpu.with_micro(micro, own)
    ref, source = reference_micro(gpu)
    return gpu.with_micro(ref, source) if ref else gpu


def run_gpu(run: Run):
    """(GpuSpec of the run's GPU with the ceilings and micro-benchmarks the run measured, a sentence saying where
    they came from). A run without micro-benchmarks borrows a bundled run's of the same SM (`reference_micro`)."""
    from kernels.hardware import CEILING_FIELDS, get_gpu

    name = gpu_name(run)
    try:
        gpu = get_gpu(name) if name else None
    except HardwareError:  # a GPU the hardware table does not know: fall back below and say so
        gpu = None
    if gpu is None:
        why = f"run GPU {name!r} is not in the hardware table" if name else "the run had no GPU"
        return get_gpu(FALLBACK_GPU), f"{FALLBACK_GPU} datasheet ({why})"
    ceilings = measured_ceilings(run)
    measured = {k: v for k, v in ceilings.items() if k in CEILING_FIELDS}
    gpu = with_micro(gpu.with_measured(measured) if measured else gpu,
                     {k: v for k, v in ceilings.items() if k not in CEILING_FIELDS},
                     f"micro-benchmarks of run {run.run_id}")
    how = f"{gpu.key} with measured {', '.join(sorted(measured))}" if measured else f"{gpu.key} datasheet"
    return gpu, how + (f"; {gpu.micro_source}" if gpu.micro_source else "; no micro-benchmarks")
