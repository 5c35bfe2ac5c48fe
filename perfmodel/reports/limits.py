"""What limits each kernel, from the run's counters: its stall reasons (`stall_table`, each attributed to the
plan constraint it speaks to, perfmodel/plan/constraint_map.py), each constraint's measured gain against its claim
beside the most the counters say removing it could buy (`constraint_table`, Amdahl from one Nsight Compute pass),
and how close each kernel runs to the nearest ceiling (`roofline_table`). Conventions as perfmodel/reports/
analysis.py's: tidy DataFrames whose rows carry `run_id`, `impl` and the config; nothing filled in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kernels.hardware import HardwareError
from kernels.workload import AttentionConfig
from perfmodel.model.run_gpu import run_gpu
from perfmodel.plan.constraint_map import CONSTRAINT_EVIDENCE, REASON_TO_CONSTRAINT, amdahl_max_gain
from perfmodel.runs import Run, per_run
from runstore.schema import CONFIG_COLUMNS, PROBE_CONFIG_ID

from perfmodel.reports.analysis import (NAN, run_configs, as_float, _model, ok_timings, config_of, impl_kinds,
                                        stage_order)


# ---- stalls -------------------------------------------------------------------------------------------------
STALL_COLUMNS = ["run_id", *CONFIG_COLUMNS, "impl", "stage_order", "reason", "cycles_per_issue", "fraction",
                 "constraint"]


def _kernel_weights(run: Run) -> pd.DataFrame:
    """(impl, config_id, kernel_index) -> kernel duration in ns from ncu, to weight multi-kernel cases."""
    ncu = run.table("ncu_metrics")
    d = ncu[ncu["metric"] == "duration_ns"][["impl", "config_id", "kernel_index", "value"]]
    return d.rename(columns={"value": "weight"})


def stall_table(run: Run, model=None) -> pd.DataFrame:
    """Per implementation and config, each stall reason's cycles per issued instruction and its fraction of all
    stall cycles, aggregated over the case's kernels weighted by their duration (equal weights when ncu did not
    report durations), and the constraint the reason is attributed to (perfmodel/plan/constraint_map.py)."""
    model = _model(model)
    # the report and the gates each need it; keyed by the model object, which the entry keeps alive with it
    return per_run(run, f"stall_table {id(model)}", lambda r: (model, _stall_table(r, model)))[1].copy()


def _stall_table(run: Run, model) -> pd.DataFrame:
    order = stage_order(model)
    s = run.table("stalls")
    s = s[s["config_id"] != PROBE_CONFIG_ID] if not s.empty else s  # ceiling microbenchmarks, not attention
    if s.empty:
        return pd.DataFrame(columns=STALL_COLUMNS)
    s = s.copy()
    s["cycles_per_issue"] = pd.to_numeric(s["cycles_per_issue"], errors="coerce")
    w = _kernel_weights(run)
    if not w.empty:
        s = s.merge(w, on=["impl", "config_id", "kernel_index"], how="left")
        s["weight"] = pd.to_numeric(s["weight"], errors="coerce").fillna(1.0)
    else:
        s["weight"] = 1.0
    s["wcpi"] = s["cycles_per_issue"] * s["weight"]
    keys = ["run_id", *CONFIG_COLUMNS, "impl"]
    g = s.groupby([*keys, "reason"], dropna=False, sort=False)
    agg = (g["wcpi"].sum() / g["weight"].sum()).rename("cycles_per_issue").reset_index()
    totals = agg.groupby(keys, dropna=False)["cycles_per_issue"].transform("sum")
    agg["fraction"] = np.where(totals > 0, agg["cycles_per_issue"] / totals, np.nan)
    agg["stage_order"] = agg["impl"].map(order).fillna(100).astype(int)
    agg["constraint"] = agg["reason"].map(REASON_TO_CONSTRAINT).astype("Int64")
    return agg.reindex(columns=STALL_COLUMNS).sort_values(["config_id", "stage_order", "impl", "reason"]) \
        .reset_index(drop=True)


def _ncu_cases(run: Run) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The run's ncu_metrics split by (impl, config_id) into arrays (metric, kernel_index, value), split once per
    run object: the analyses look up a few metrics of every case, and filtering the whole table (tens of
    thousands of rows) once per lookup was most of their time."""
    def split(run: Run) -> dict:
        ncu = run.table("ncu_metrics")
        ncu["value"] = pd.to_numeric(ncu["value"], errors="coerce")
        return {key: (g["metric"].to_numpy(dtype=object), g["kernel_index"].to_numpy(), g["value"].to_numpy(float))
                for key, g in ncu.groupby(["impl", "config_id"], sort=False)}

    return per_run(run, "ncu_cases", split)


def _metric(ncu_cases: dict, impl: str, config_id: str, metric: str) -> float:
    """A case's metric value; over several kernels, the duration-weighted mean (plain mean without durations).
    `ncu_cases` is `_ncu_cases(run)`."""
    case = ncu_cases.get((impl, config_id))
    if case is None:
        return NAN
    names, kernels, values = case
    mask = names == metric
    if not mask.any():
        return NAN
    v = values[mask]
    is_dur = names == "duration_ns"
    dur = dict(zip(kernels[is_dur].tolist(), values[is_dur].tolist()))
    weights = np.array([dur.get(k, NAN) for k in kernels[mask].tolist()], dtype=float)
    if len(dur) == int(is_dur.sum()) and not np.isnan(weights).any() and weights.sum() > 0:
        return float((v * weights).sum() / weights.sum())
    return float(np.nanmean(v)) if not np.isnan(v).all() else NAN


# ---- constraints --------------------------------------------------------------------------------------------
CONSTRAINT_COLUMNS = [
    "run_id", *CONFIG_COLUMNS, "constraint", "name", "removed_by", "before", "claimed_gain_low",
    "claimed_gain_high", "measured_gain", "attributable_fraction", "amdahl_max_gain", "evidence", "verdict",
]


def _stage_impl(model, ref) -> tuple[str | None, str | None]:
    """(impl of the stage that removes, impl of the stage before it) for a removed_by_stage reference."""
    stages = sorted(model.stages, key=lambda s: int(s.index))
    idx = None
    if ref is None:
        return None, None
    for i, s in enumerate(stages):
        if ref == s.impl or (not isinstance(ref, str) and int(ref) == int(s.index)):
            idx = i
    if idx is None or idx == 0:
        return (stages[idx].impl if idx is not None else None), None
    return stages[idx].impl, stages[idx - 1].impl


def attributable_fraction(run: Run, constraint_id: int, impl: str, config: AttentionConfig,
                          stalls: pd.DataFrame | None = None) -> tuple[float, str]:
    """(f, evidence text): the share of `impl`'s time at `config` that constraint `constraint_id` can account for
    (perfmodel/plan/constraint_map.py says how), NaN when the run has no counters for it."""
    ev = CONSTRAINT_EVIDENCE[constraint_id]
    ncu = _ncu_cases(run)
    notes = []
    for metric in ev.evidence_metrics:
        v = _metric(ncu, impl, config.id, metric)
        if metric == "branch_uniformity_pct" and math.isfinite(v):
            notes.append("no branches (uniformity n/a)" if v == 0 else f"non-uniform branches {100 - v:.1f}%")
        elif math.isfinite(v):
            notes.append(f"{metric} {v:.3g}")
    if ev.basis == "time":
        launch = run.table("launch")
        lrow = launch[(launch["impl"] == impl) & (launch["config_id"] == config.id)]
        share = as_float(lrow["launch_share"].iloc[0]) if not lrow.empty else NAN
        waves = _metric(ncu, impl, config.id, "waves_per_sm")
        tail = (math.ceil(waves) - waves) / math.ceil(waves) if math.isfinite(waves) and waves > 0 else NAN
        if math.isfinite(share):
            notes.append(f"launch share {share:.1%}")
        if math.isfinite(tail):
            notes.append(f"wave tail idle {tail:.1%}")
        if not (math.isfinite(share) or math.isfinite(tail)):
            return NAN, "; ".join(notes) or "no launch or wave measurements"
        share = share if math.isfinite(share) else 0.0
        tail = tail if math.isfinite(tail) else 0.0
        return (share + tail) / (1.0 + share), "; ".join(notes)
    if stalls is None:
        stalls = stall_table(run)
    sub = stalls[(stalls["impl"] == impl) & (stalls["config_id"] == config.id)]
    if sub.empty:
        return NAN, "; ".join(notes) or "no stall counters"
    parts = sub[sub["reason"].isin(ev.stall_reasons)]
    f = float(parts["fraction"].sum())
    detail = ", ".join(f"{r} {v:.1%}" for r, v in zip(parts["reason"], parts["fraction"]))
    notes.insert(0, detail or f"{'/'.join(ev.stall_reasons)} 0%")
    if constraint_id == 3:
        census = run.table("census")
        c = census[(census["impl"] == impl) & (census["config_id"] == config.id)]
        if not c.empty and math.isfinite(as_float(c["bar_sync"].iloc[0])):
            notes.append(f"bar.sync in PTX {int(as_float(c['bar_sync'].iloc[0]))}")
    return f, "; ".join(notes)


def _verdict(measured: float, low: float, high: float, bound: float) -> str:
    """One phrase on the claim against the bound and on the measurement against the claim and the bound."""
    parts = []
    if math.isfinite(bound) and math.isfinite(low) and low > bound:
        parts.append("claim exceeds the Amdahl bound")
    if not math.isfinite(measured):
        parts.append("gain not measured")
    else:
        if math.isfinite(low) and measured < low:
            parts.append("measured below the claim")
        elif math.isfinite(high) and measured > high:
            parts.append("measured above the claim")
        elif math.isfinite(low):
            parts.append("measured as claimed")
        if math.isfinite(bound) and measured > bound + 0.01:
            parts.append("gain beyond what this constraint explains (it came from elsewhere)")
    return "; ".join(parts)


def constraint_table(run: Run, model=None) -> pd.DataFrame:
    """Per constraint and config: the plan's claimed gain band, the gain measured when the stage that removes it
    lands (stage k vs k-1), and the Amdahl bound 1/(1-f) - 1 from the share f of stage k-1's time the
    constraint accounts for (perfmodel/plan/constraint_map.py)."""
    model = _model(model)
    t = ok_timings(run)
    stalls = stall_table(run, model)
    rows = []
    for cfg in run_configs(run):
        tc = t[t["config_id"] == cfg.id].set_index("impl")["tflops"]
        for c in model.constraints:
            cid = int(c.id)
            impl, before = _stage_impl(model, c.removed_by_stage)
            gain = NAN
            if impl in tc.index and before in tc.index:
                gain = as_float(tc[impl]) / as_float(tc[before]) - 1.0
            f, evidence = (attributable_fraction(run, cid, before, cfg, stalls) if before
                           else (NAN, "no stage before the removing stage"))
            bound = amdahl_max_gain(f)
            low, high = as_float(c.gain_low), as_float(c.gain_high)
            rows.append({"run_id": run.run_id, "config_id": cfg.id, **cfg.as_dict(), "constraint": cid,
                         "name": c.name, "removed_by": impl, "before": before, "claimed_gain_low": low,
                         "claimed_gain_high": high, "measured_gain": gain, "attributable_fraction": f,
                         "amdahl_max_gain": bound, "evidence": evidence,
                         "verdict": _verdict(gain, low, high, bound)})
    return pd.DataFrame(rows, columns=CONSTRAINT_COLUMNS)


# ---- roofline -----------------------------------------------------------------------------------------------
ROOFLINE_COLUMNS = [
    "run_id", *CONFIG_COLUMNS, "impl", "kind", "arithmetic_intensity", "measured_ai", "measured_tflops",
    "tensor_tflops", "exp_ceiling_tflops", "hbm_tbps", "memory_ceiling_tflops", "roof_tflops", "limiter",
    "attainment",
]


def _tensor_tflops(gpu, dtype: str) -> float:
    try:
        return as_float(gpu.mma_tflops(dtype))
    except HardwareError:  # no tensor cores for this dtype on this GPU
        return NAN


def roofline_table(run: Run, model=None) -> pd.DataFrame:
    """Per measured case: arithmetic intensity (minimum HBM traffic; also from ncu's DRAM bytes when counted),
    measured TFLOP/s, and the three ceilings: tensor cores, the exponential unit as a FLOP-equivalent ceiling
    (exp rate x FLOPs per exponential, which is 4·D for attention), and memory (HBM bandwidth x intensity)."""
    order = stage_order(_model(model))
    gpu, _ = run_gpu(run)
    t = ok_timings(run)
    ncu = _ncu_cases(run)
    hbm = as_float(gpu.hbm_tbps)
    exp_rate = as_float(gpu.exp_tops)
    rows = []
    records = t.to_dict("records")
    kinds = impl_kinds(run, [r["impl"] for r in records], order)
    for r, kind in zip(records, kinds):
        cfg = config_of(r)
        ai = cfg.arithmetic_intensity
        dram = _metric(ncu, r["impl"], cfg.id, "dram_read_bytes") + _metric(ncu, r["impl"], cfg.id,
                                                                            "dram_write_bytes")
        tensor = _tensor_tflops(gpu, cfg.dtype)
        exp_ceiling = exp_rate * cfg.flops / cfg.exps
        mem_ceiling = hbm * ai
        ceilings = {"tensor": tensor, "exp unit": exp_ceiling, "memory": mem_ceiling}
        finite = {k: v for k, v in ceilings.items() if math.isfinite(v)}
        limiter = min(finite, key=finite.get) if finite else None
        roof = finite[limiter] if limiter else NAN
        measured = as_float(r["tflops"])
        rows.append({"run_id": run.run_id, "config_id": cfg.id, **cfg.as_dict(), "impl": r["impl"],
                     "kind": kind, "arithmetic_intensity": ai,
                     "measured_ai": cfg.flops / dram if math.isfinite(dram) and dram > 0 else NAN,
                     "measured_tflops": measured, "tensor_tflops": tensor, "exp_ceiling_tflops": exp_ceiling,
                     "hbm_tbps": hbm, "memory_ceiling_tflops": mem_ceiling, "roof_tflops": roof,
                     "limiter": limiter, "attainment": measured / roof if roof and math.isfinite(roof) else NAN})
    return pd.DataFrame(rows, columns=ROOFLINE_COLUMNS)
