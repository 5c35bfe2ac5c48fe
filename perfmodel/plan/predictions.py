"""The plan and the bound side by side, per stage, as one tidy DataFrame (what `perfmodel predict`, reports and the
dashboard read).

Columns of `predict(...)` (one row per stage, in stage order; units in the names):

    stage                      stage index (0..5)
    impl                       implementation name (stage0_baseline ... stage5_full)
    label                      the document's label ("Baseline", "Stage 2 (warp-sync)", ...)
    removes                    ids of the Einstein constraints the stage removes, comma-separated ("" for none)
    einstein_abs_low_tflops    the document's target for the stage, low end (NaN where it gives none: "Any")
    einstein_abs_high_tflops   ... high end
    einstein_rel_low_tflops    measured baseline x the claimed gains removed so far, low (NaN without a baseline)
    einstein_rel_high_tflops   ... high
    bound_tflops               the stage's speed-of-light bound (perfmodel/model/bound.py), convention FLOPs / time
    bound_time_ms              its time per call (ms)
    tensor_ms, exp_ms, hbm_ms  its unit terms (ms), before overlap
    launch_ms                  exposed host launch (ms)
    wave_ms                    grid tail (ms)
    roofline_tflops            the config's roofline on the GPU: minimum work, perfect overlap (same on every row)
    no_kernel                  why no kernel of the toolkit runs this stage at this config (head dim, dtype), else
                               "": such a row's bound columns describe a kernel that does not exist

The Einstein absolute targets are for the document's setting (H100 SXM, fp16, S=2048, the FA3 figure at B=16);
they are printed as written whatever config is asked, and `perfmodel model check` says where that matters.
"""

from __future__ import annotations

import math

import pandas as pd

from kernels import STAGES
from kernels.hardware import GpuSpec
from kernels.workload import AttentionConfig
from perfmodel.model import bound
from perfmodel.plan.einstein import EinsteinModel, absolute_band, relative_band
from perfmodel.plan.einstein_file import load_model

COLUMNS = [
    "stage", "impl", "label", "removes",
    "einstein_abs_low_tflops", "einstein_abs_high_tflops", "einstein_rel_low_tflops", "einstein_rel_high_tflops",
    "bound_tflops", "bound_time_ms", "tensor_ms", "exp_ms", "hbm_ms", "launch_ms", "wave_ms", "roofline_tflops",
    "no_kernel",
]

# What the stages' kernels run on the GPU: kernels/_launch.py's SUPPORTED_HEAD_DIMS and GPU_DTYPES, written here
# because predictions run without torch, which kernels/_launch.py imports (tests/test_hardening.py checks the two
# agree), and fp8 e4m3 in the stages that do not refuse it (the registry's Impl.refusal: stages 0 and 5).
KERNEL_HEAD_DIMS = (64, 128)
KERNEL_DTYPES: dict[str, tuple[str, ...] | None] = {
    "fp16": None, "bf16": None, "fp8": tuple(s.name for s in STAGES if s.refusal("fp8") is None)}


def no_kernel_reason(config: AttentionConfig, impl: str) -> str:
    """Why no kernel of the toolkit runs stage `impl` at `config` ("" when one does)."""
    if config.D not in KERNEL_HEAD_DIMS:
        dims = " and ".join(map(str, KERNEL_HEAD_DIMS))
        return f"no kernel: head dim {config.D} (the kernels run {dims})"
    if config.dtype not in KERNEL_DTYPES:
        return f"no kernel: {config.dtype} (the kernels run {', '.join(KERNEL_DTYPES)})"
    only = KERNEL_DTYPES[config.dtype]
    if only is not None and impl not in only:
        return f"no kernel: {config.dtype} runs only in {', '.join(only)}"
    return ""


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def predict(
    config: AttentionConfig,
    gpu: GpuSpec,
    model: EinsteinModel | None = None,
    baseline_tflops: float | None = None,
) -> pd.DataFrame:
    """One row per stage of `model` (the shipped Einstein model by default): the plan's bands and the bound."""
    model = model or load_model()
    rows = []
    for stage in model.stages:
        abs_low, abs_high = absolute_band(model, stage.index)
        if baseline_tflops is None:
            rel_low = rel_high = math.nan
        else:
            rel_low, rel_high = relative_band(model, stage.index, baseline_tflops)
        if stage.index < len(bound.STAGE_IMPLS):
            a = bound.predict_stage(config, stage.index, gpu)
            terms = dict(bound_tflops=a.tflops, bound_time_ms=a.time_ms, tensor_ms=a.tensor_ms,
                         exp_ms=a.exp_ms, hbm_ms=a.hbm_ms, launch_ms=a.launch_ms, wave_ms=a.wave_ms)
        else:  # a user's model with more stages than the bound knows
            terms = dict.fromkeys(["bound_tflops", "bound_time_ms", "tensor_ms", "exp_ms", "hbm_ms",
                                   "launch_ms", "wave_ms"], math.nan)
        rows.append({
            "stage": stage.index, "impl": stage.impl, "label": stage.label, "removes": stage.removes_text,
            "einstein_abs_low_tflops": _nan(abs_low), "einstein_abs_high_tflops": _nan(abs_high),
            "einstein_rel_low_tflops": float(rel_low), "einstein_rel_high_tflops": float(rel_high),
            **terms, "roofline_tflops": bound.roofline_tflops(config, gpu),
            "no_kernel": no_kernel_reason(config, stage.impl),
        })
    return pd.DataFrame(rows, columns=COLUMNS)
