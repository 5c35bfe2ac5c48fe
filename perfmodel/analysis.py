"""Predicted vs measured, as DataFrames: what each stage reached, which constraint was real, what limits it now.

Every function takes a run (perfmodel.runs.load_run) and returns a tidy DataFrame whose rows carry `run_id`,
`impl` and the config columns where they are about a case; plotting lives in perfmodel/figures.py. Nothing is
filled in: a figure the run did not measure stays NaN.

Conventions:
- TFLOP/s use kernels.workload's FLOP count (4·B·H·S²·D, causal halved).
- A prediction's error is measured / predicted - 1 (+0.10 = the kernel ran 10% faster than predicted). For a
  band (the Einstein predictions are low–high ranges) the error is taken against the band's midpoint and
  `*_in_band` says whether the measurement fell inside it.
- Gains are fractions (0.25 = +25%): stage k against stage k-1, same config, same run.
- The bound (perfmodel/bound.py) uses the GPU named in the run with the ceilings the run measured
  (GpuSpec.with_measured); a run made without a GPU falls back to the H100 SXM datasheet, the plan's target,
  and says so in `bound_gpu`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from collectors.schema import CONFIG_COLUMNS, PROBE_CONFIG_ID
from kernels.hardware import HardwareError
from kernels.workload import AttentionConfig
from perfmodel.constraint_map import CONSTRAINT_EVIDENCE, REASON_TO_CONSTRAINT, amdahl_max_gain
from perfmodel.run_gpu import run_gpu
from perfmodel.runs import Run

NAN = float("nan")


# ---- shared helpers -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _shipped_model():
    from perfmodel.einstein import load_model

    return load_model()


def _model(model):
    """`model`, or the shipped Einstein model (read once per process)."""
    return model if model is not None else _shipped_model()


def config_of(row) -> AttentionConfig:
    """The AttentionConfig of a table row (a dict, namedtuple or Series with the config columns)."""
    get = row.get if hasattr(row, "get") else lambda k: getattr(row, k)
    return AttentionConfig(B=int(get("B")), H=int(get("H")), S=int(get("S")), D=int(get("D")),
                           causal=bool(get("causal")), dtype=str(get("dtype")))


def _f(x) -> float:
    """A float, NaN for None / missing / non-numeric."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NAN
    return v


def stage_order(model) -> dict[str, int]:
    """impl -> stage index for the model's stages."""
    return {s.impl: int(s.index) for s in model.stages}


def impl_kinds(run: Run, impls, order: dict[str, int]) -> list[str]:
    """The kind of each of `impls` as the run recorded it (run.json `impls`: "stage" | "peer" | "user", from
    kernels.registry.Impl.kind); for a name the run does not list, "stage" when it is one of `order`, else "peer"."""
    recorded = {i.get("name"): i.get("kind") for i in run.meta.get("impls") or [] if isinstance(i, dict)}
    return [recorded.get(i) or ("stage" if i in order else "peer") for i in impls]


def _ok_timings(run: Run) -> pd.DataFrame:
    t = run.table("timings")
    return t[t["status"] == "ok"].copy()


def _configs(run: Run) -> list[AttentionConfig]:
    """Every config the run's timings (or correctness, for runs without timings) mention, in first-seen order."""
    seen: dict[str, AttentionConfig] = {}
    for table in ("timings", "correctness"):
        df = run.table(table)
        for row in df.drop_duplicates("config_id").to_dict("records"):
            if row["config_id"] not in seen and row["B"] is not None and not pd.isna(row["B"]):
                seen[row["config_id"]] = config_of(row)
    return list(seen.values())


def _err(measured: float, predicted: float) -> float:
    if not (math.isfinite(measured) and math.isfinite(predicted)) or predicted <= 0:
        return NAN
    return measured / predicted - 1.0


def _in_band(measured: float, low: float, high: float):
    if not (math.isfinite(measured) and math.isfinite(low) and math.isfinite(high)):
        return None
    return bool(low <= measured <= high)


# ---- stages -------------------------------------------------------------------------------------------------
STAGE_COLUMNS = [
    "run_id", *CONFIG_COLUMNS, "stage", "impl", "label", "removes", "status",
    "measured_tflops", "time_ms", "time_ms_p20", "time_ms_p80", "timing_method", "host_bound",
    "einstein_abs_low_tflops", "einstein_abs_high_tflops", "einstein_abs_err", "einstein_abs_in_band",
    "einstein_rel_low_tflops", "einstein_rel_high_tflops", "einstein_rel_err", "einstein_rel_in_band",
    "bound_tflops", "bound_err", "bound_time_ms", "tensor_ms", "exp_ms", "hbm_ms", "launch_ms", "wave_ms",
    "roofline_tflops", "roofline_frac", "bound_gpu",
]


def stage_table(run: Run, model=None) -> pd.DataFrame:
    """Per config and stage: measured TFLOP/s beside the Einstein absolute and relative bands (relative calibrated
    on this run's measured stage-0 TFLOP/s for the config), the stage's bound with its terms, the config's
    roofline, and each prediction's error."""
    from perfmodel.predictions import predict

    model = _model(model)
    gpu, gpu_source = run_gpu(run)
    t = run.table("timings")
    order = stage_order(model)
    methods = _methods(run)
    rows = []
    for cfg in _configs(run):
        tc = t[(t["config_id"] == cfg.id) & t["impl"].isin(list(order))].set_index("impl")
        base = NAN
        stage0 = model.stages[0].impl
        if stage0 in tc.index and tc.loc[stage0, "status"] == "ok":
            base = _f(tc.loc[stage0, "tflops"])
        pred = predict(cfg, gpu, model=model, baseline_tflops=base if math.isfinite(base) else None)
        for p in pred.to_dict("records"):
            impl = p["impl"]
            m = tc.loc[impl] if impl in tc.index else None
            status = str(m["status"]) if m is not None else "absent"
            ok = status == "ok"
            measured = _f(m["tflops"]) if ok else NAN
            row = {"run_id": run.run_id, **{"config_id": cfg.id, **cfg.as_dict()},
                   "stage": int(p["stage"]), "impl": impl, "label": p["label"], "removes": p["removes"],
                   "status": status, "measured_tflops": measured,
                   "time_ms": _f(m["time_ms"]) if ok else NAN,
                   "time_ms_p20": _f(m["time_ms_p20"]) if ok else NAN,
                   "time_ms_p80": _f(m["time_ms_p80"]) if ok else NAN,
                   **(methods.get((impl, cfg.id), _NO_METHOD) if ok else _NO_METHOD)}
            for kind in ("abs", "rel"):
                lo, hi = _f(p[f"einstein_{kind}_low_tflops"]), _f(p[f"einstein_{kind}_high_tflops"])
                row[f"einstein_{kind}_low_tflops"], row[f"einstein_{kind}_high_tflops"] = lo, hi
                row[f"einstein_{kind}_err"] = _err(measured, (lo + hi) / 2)
                row[f"einstein_{kind}_in_band"] = _in_band(measured, lo, hi)
            for c in ("bound_tflops", "bound_time_ms", "tensor_ms", "exp_ms", "hbm_ms", "launch_ms",
                      "wave_ms", "roofline_tflops"):
                row[c] = _f(p[c])
            row["bound_err"] = _err(measured, row["bound_tflops"])
            bound = row["roofline_tflops"]
            row["roofline_frac"] = measured / bound if math.isfinite(measured) and bound > 0 else NAN
            row["bound_gpu"] = gpu_source
            rows.append(row)
    return pd.DataFrame(rows, columns=STAGE_COLUMNS)


PEER_COLUMNS = ["run_id", *CONFIG_COLUMNS, "impl", "status", "measured_tflops", "time_ms", "time_ms_p20",
                "time_ms_p80", "timing_method", "host_bound", "error"]


def _methods(run: Run) -> dict:
    """(impl, config_id) -> {timing_method, host_bound} of every case timed ok (perfmodel.timing_view: a run of
    schema version 1 timed by the host loop, host_bound from its launch table)."""
    from perfmodel.timing_view import case_methods

    cases = case_methods(run)
    return {(i, c): {"timing_method": m, "host_bound": None if b is None or b != b else bool(b)}
            for i, c, m, b in zip(cases["impl"], cases["config_id"], cases["timing_method"], cases["host_bound"])}


_NO_METHOD = {"timing_method": None, "host_bound": None}


def peer_table(run: Run, model=None) -> pd.DataFrame:
    """The peers' (SDPA, cuDNN, flex, FA3 ...) timings in the run, one row per peer and config."""
    order = stage_order(_model(model))
    t = run.table("timings")
    peers = t[~t["impl"].isin(list(order))].copy()
    peers["measured_tflops"] = [(_f(v) if s == "ok" else NAN) for v, s in zip(peers["tflops"], peers["status"])]
    methods = _methods(run)
    found = [methods.get((i, c), _NO_METHOD) for i, c in zip(peers["impl"], peers["config_id"])]
    peers["timing_method"] = [x["timing_method"] for x in found]
    peers["host_bound"] = [x["host_bound"] for x in found]
    return peers.reindex(columns=PEER_COLUMNS).reset_index(drop=True)


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
    report durations), and the constraint the reason is attributed to (perfmodel/constraint_map.py)."""
    model = _model(model)
    memo = run.__dict__.setdefault("_analysis_stall_tables", {})  # the report and the gates each need it
    if id(model) not in memo:
        memo[id(model)] = (model, _stall_table(run, model))
    return memo[id(model)][1].copy()


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
    memo = run.__dict__
    if "_analysis_ncu_cases" not in memo:
        ncu = run.table("ncu_metrics")
        ncu["value"] = pd.to_numeric(ncu["value"], errors="coerce")
        memo["_analysis_ncu_cases"] = {
            key: (g["metric"].to_numpy(dtype=object), g["kernel_index"].to_numpy(), g["value"].to_numpy(float))
            for key, g in ncu.groupby(["impl", "config_id"], sort=False)}
    return memo["_analysis_ncu_cases"]


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
    (perfmodel/constraint_map.py says how), NaN when the run has no counters for it."""
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
        share = _f(lrow["launch_share"].iloc[0]) if not lrow.empty else NAN
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
        if not c.empty and math.isfinite(_f(c["bar_sync"].iloc[0])):
            notes.append(f"bar.sync in PTX {int(_f(c['bar_sync'].iloc[0]))}")
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
    constraint accounts for (perfmodel/constraint_map.py)."""
    model = _model(model)
    t = _ok_timings(run)
    stalls = stall_table(run, model)
    rows = []
    for cfg in _configs(run):
        tc = t[t["config_id"] == cfg.id].set_index("impl")["tflops"]
        for c in model.constraints:
            cid = int(c.id)
            impl, before = _stage_impl(model, c.removed_by_stage)
            gain = NAN
            if impl in tc.index and before in tc.index:
                gain = _f(tc[impl]) / _f(tc[before]) - 1.0
            f, evidence = (attributable_fraction(run, cid, before, cfg, stalls) if before
                           else (NAN, "no stage before the removing stage"))
            bound = amdahl_max_gain(f)
            low, high = _f(c.gain_low), _f(c.gain_high)
            rows.append({"run_id": run.run_id, "config_id": cfg.id, **cfg.as_dict(), "constraint": cid,
                         "name": c.name, "removed_by": impl, "before": before, "claimed_gain_low": low,
                         "claimed_gain_high": high, "measured_gain": gain, "attributable_fraction": f,
                         "amdahl_max_gain": bound, "evidence": evidence,
                         "verdict": _verdict(gain, low, high, bound)})
    return pd.DataFrame(rows, columns=CONSTRAINT_COLUMNS)


# ---- batching -----------------------------------------------------------------------------------------------
BATCHING_COLUMNS = ["run_id", "impl", "H", "S", "D", "causal", "dtype", "B", "config_id", "time_ms", "per_seq_ms",
                    "speedup_vs_b1"]


def batching_table(run: Run) -> pd.DataFrame:
    """Per implementation and batch size: kernel time, time per sequence, and speed-up per sequence over B=1."""
    b = run.table("batching")
    if b.empty:
        return pd.DataFrame(columns=BATCHING_COLUMNS)
    b = b.copy()
    for c in ("time_ms", "per_seq_ms", "speedup_vs_b1"):
        b[c] = pd.to_numeric(b[c], errors="coerce")
    b["B"] = b["B"].astype(int)
    return b.reindex(columns=BATCHING_COLUMNS).sort_values(["impl", "H", "S", "D", "causal", "dtype", "B"]) \
        .reset_index(drop=True)


def batching_summary(run: Run, threshold: float = 5.0) -> pd.DataFrame:
    """Per implementation and shape: per-sequence speed-up from the smallest to the largest batch measured."""
    b = batching_table(run).dropna(subset=["per_seq_ms"])
    rows = []
    for key, g in b.groupby(["impl", "H", "S", "D", "causal", "dtype"], sort=False):
        g = g.sort_values("B")
        lo, hi = g.iloc[0], g.iloc[-1]
        speedup = lo["per_seq_ms"] / hi["per_seq_ms"] if hi["per_seq_ms"] > 0 else NAN
        rows.append({"impl": key[0], "H": key[1], "S": key[2], "D": key[3], "causal": key[4], "dtype": key[5],
                     "B_from": int(lo["B"]), "B_to": int(hi["B"]), "speedup": speedup, "threshold": threshold,
                     "meets": bool(speedup >= threshold) if math.isfinite(speedup) else None})
    return pd.DataFrame(rows, columns=["impl", "H", "S", "D", "causal", "dtype", "B_from", "B_to", "speedup",
                                       "threshold", "meets"])


# ---- roofline -----------------------------------------------------------------------------------------------
ROOFLINE_COLUMNS = [
    "run_id", *CONFIG_COLUMNS, "impl", "kind", "arithmetic_intensity", "measured_ai", "measured_tflops",
    "tensor_tflops", "exp_ceiling_tflops", "hbm_tbps", "memory_ceiling_tflops", "roof_tflops", "limiter",
    "attainment",
]


def _tensor_tflops(gpu, dtype: str) -> float:
    try:
        return _f(gpu.mma_tflops(dtype))
    except HardwareError:  # no tensor cores for this dtype on this GPU
        return NAN


def roofline_table(run: Run, model=None) -> pd.DataFrame:
    """Per measured case: arithmetic intensity (minimum HBM traffic; also from ncu's DRAM bytes when counted),
    measured TFLOP/s, and the three ceilings: tensor cores, the exponential unit as a FLOP-equivalent ceiling
    (exp rate x FLOPs per exponential, which is 4·D for attention), and memory (HBM bandwidth x intensity)."""
    order = stage_order(_model(model))
    gpu, _ = run_gpu(run)
    t = _ok_timings(run)
    ncu = _ncu_cases(run)
    hbm = _f(gpu.hbm_tbps)
    exp_rate = _f(gpu.exp_tops)
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
        measured = _f(r["tflops"])
        rows.append({"run_id": run.run_id, "config_id": cfg.id, **cfg.as_dict(), "impl": r["impl"],
                     "kind": kind, "arithmetic_intensity": ai,
                     "measured_ai": cfg.flops / dram if math.isfinite(dram) and dram > 0 else NAN,
                     "measured_tflops": measured, "tensor_tflops": tensor, "exp_ceiling_tflops": exp_ceiling,
                     "hbm_tbps": hbm, "memory_ceiling_tflops": mem_ceiling, "roof_tflops": roof,
                     "limiter": limiter, "attainment": measured / roof if roof and math.isfinite(roof) else NAN})
    return pd.DataFrame(rows, columns=ROOFLINE_COLUMNS)


# ---- headlines ----------------------------------------------------------------------------------------------
def headlines(stages: pd.DataFrame, peers: pd.DataFrame, constraints: pd.DataFrame,
              evidence: pd.DataFrame | None = None) -> list[str]:
    """A few one-sentence verdicts for the top of the report and the dashboard's overview; with `evidence`
    (perfmodel.ablation.constraint_evidence) the constraint lines give the ablation, else the stage chain."""
    out = []
    measured = stages.dropna(subset=["measured_tflops"])
    if measured.empty:
        out.append("No stage was timed in this run (made without a GPU, or every stage failed): only predictions "
                   "and correctness are shown.")
        return out
    for cid, g in measured.groupby("config_id", sort=False):
        best = g.loc[g["measured_tflops"].idxmax()]
        line = f"{cid}: best stage {best['impl']} at {best['measured_tflops']:.0f} TFLOP/s"
        p = peers[(peers["config_id"] == cid)].dropna(subset=["measured_tflops"])
        if not p.empty:
            top = p.loc[p["measured_tflops"].idxmax()]
            line += (f", {best['measured_tflops'] / top['measured_tflops']:.2f}× the best peer "
                     f"({top['impl']} {top['measured_tflops']:.0f})")
        band = _band_counts(g)
        if band:
            line += f"; against the plan's target band: {band}"
        out.append(line + ".")
    claimed = "vs claimed {0.claimed_gain_low:+.0%}…{0.claimed_gain_high:+.0%}".format
    if evidence is not None and not evidence.empty and (evidence["ablation_status"] != "not_measured").any():
        for row in evidence.itertuples():  # every constraint and switch gets a line, whatever was measured of it
            head = f"Constraint #{row.constraint} ({row.name})" + (f", switch {row.switch}" if isinstance(
                row.switch, str) and row.switch else "") + f" at {row.config_id}: "
            if row.ablation_status == "ok":
                out.append(head + f"ablation {row.ablation_gain:+.1%} [{row.ablation_ci_low:+.1%}, "
                           f"{row.ablation_ci_high:+.1%}] {claimed(row)}: {row.verdict}.")
            elif row.ablation_status == "not_ablatable":
                out.append(head + f"not ablatable ({row.reason}).")
            elif row.flip_status == "ok":
                out.append(head + f"flip at the tuned config {row.flip_gain:+.1%} [{row.flip_ci_low:+.1%}, "
                           f"{row.flip_ci_high:+.1%}] {claimed(row)}; best with vs best without not measured "
                           f"({row.reason}).")
            else:
                out.append(head + f"ablation not measured ({row.reason}).")
        return out
    status = stages.set_index(["config_id", "impl"])["status"].to_dict() if not stages.empty else {}
    for row in constraints.itertuples():
        if math.isfinite(row.measured_gain):
            out.append(f"Constraint #{row.constraint} ({row.name}) at {row.config_id}: stage chain "
                       f"{row.measured_gain:+.1%} {claimed(row)}"
                       + (f", Amdahl bound {row.amdahl_max_gain:+.1%}" if math.isfinite(row.amdahl_max_gain) else "")
                       + ".")
            continue
        untimed = [f"{i} {status.get((row.config_id, i), 'absent')}" for i in (row.before, row.removed_by)
                   if status.get((row.config_id, i)) != "ok"]
        out.append(f"Constraint #{row.constraint} ({row.name}) at {row.config_id}: stage chain not measured "
                   f"({row.removed_by} vs {row.before}; not timed ok: {', '.join(untimed) or 'no time'}).")
    return out


def _band_counts(g: pd.DataFrame) -> str:
    """How a config's measured stages sit against the plan's target band: '5 above', '2 above, 1 inside, 2 below'."""
    m, lo, hi = (pd.to_numeric(g[c], errors="coerce") for c in ("measured_tflops", "einstein_abs_low_tflops",
                                                                  "einstein_abs_high_tflops"))
    ok = m.notna() & lo.notna() & hi.notna()  # a stage the plan gives no target, or not timed, is in none
    counts = {"above": int((ok & (m > hi)).sum()), "inside": int((ok & (m >= lo) & (m <= hi)).sum()),
              "below": int((ok & (m < lo)).sum())}
    every = [(k, n) for k, n in counts.items() if n]
    if len(every) == 1 and every[0][1] > 1:
        return f"all {every[0][1]} stages {every[0][0]}"
    return ", ".join(f"{n} {k}" for k, n in every)
