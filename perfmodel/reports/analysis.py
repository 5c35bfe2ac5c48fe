"""Predicted vs measured, as DataFrames: what each stage and peer reached against the plan and the bound, the
batching speed-up, and the headline verdicts. Which constraint was real and what limits each kernel now (stalls,
constraints, roofline, from the counters) is perfmodel/reports/limits.py, under the same conventions.

Every function takes a run (perfmodel.runs.load_run) and returns a tidy DataFrame whose rows carry `run_id`,
`impl` and the config columns where they are about a case; plotting lives in perfmodel/reports/figures.py. Nothing is
filled in: a figure the run did not measure stays NaN.

Conventions:
- TFLOP/s use kernels.workload's FLOP count (4·B·H·S²·D, causal halved).
- A prediction's error is measured / predicted - 1 (+0.10 = the kernel ran 10% faster than predicted). For a
  band (the Einstein predictions are low–high ranges) the error is taken against the band's midpoint and
  `*_in_band` says whether the measurement fell inside it.
- Gains are fractions (0.25 = +25%): stage k against stage k-1, same config, same run.
- The bound (perfmodel/model/bound.py) uses the GPU named in the run with the ceilings the run measured
  (GpuSpec.with_measured); a run made without a GPU falls back to the H100 SXM datasheet, the plan's target,
  and says so in `bound_gpu`.
"""

from __future__ import annotations

import functools
import math

import pandas as pd

from kernels.workload import AttentionConfig
from perfmodel.model.run_gpu import run_gpu
from perfmodel.runs import Run, per_run
from runstore.schema import CONFIG_COLUMNS

NAN = float("nan")


# ---- shared helpers -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _shipped_model():
    from perfmodel.plan.einstein_file import load_model

    return load_model()


def _model(model):
    """`model`, or the shipped Einstein model (read once per process)."""
    return model if model is not None else _shipped_model()


def config_of(row) -> AttentionConfig:
    """The AttentionConfig of a table row (a dict, namedtuple or Series with the config columns)."""
    get = row.get if hasattr(row, "get") else lambda k: getattr(row, k)
    return AttentionConfig(B=int(get("B")), H=int(get("H")), S=int(get("S")), D=int(get("D")),
                           causal=bool(get("causal")), dtype=str(get("dtype")))


def as_float(x) -> float:
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


def ok_timings(run: Run) -> pd.DataFrame:
    t = run.table("timings")
    return t[t["status"] == "ok"].copy()


def run_configs(run: Run) -> list[AttentionConfig]:
    """Every config the run's timings (or correctness, for runs without timings) mention, in first-seen order."""
    return list(per_run(run, "run_configs", _run_configs))  # most tables of the report loop over them


def _run_configs(run: Run) -> list[AttentionConfig]:
    seen: dict[str, AttentionConfig] = {}
    for table in ("timings", "correctness"):
        df = run.table(table)
        for row in df.drop_duplicates("config_id").to_dict("records"):
            if row["config_id"] not in seen and row["B"] is not None and not pd.isna(row["B"]):
                seen[row["config_id"]] = config_of(row)
    return list(seen.values())


def error_of(measured: float, predicted: float) -> float:
    if not (math.isfinite(measured) and math.isfinite(predicted)) or predicted <= 0:
        return NAN
    return measured / predicted - 1.0


def in_band(measured: float, low: float, high: float):
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
    from perfmodel.plan.predictions import predict

    model = _model(model)
    gpu, gpu_source = run_gpu(run)
    t = run.table("timings")
    order = stage_order(model)
    methods = _methods(run)
    rows = []
    for cfg in run_configs(run):
        tc = t[(t["config_id"] == cfg.id) & t["impl"].isin(list(order))].set_index("impl")
        base = NAN
        stage0 = model.stages[0].impl
        if stage0 in tc.index and tc.loc[stage0, "status"] == "ok":
            base = as_float(tc.loc[stage0, "tflops"])
        pred = predict(cfg, gpu, model=model, baseline_tflops=base if math.isfinite(base) else None)
        for p in pred.to_dict("records"):
            impl = p["impl"]
            m = tc.loc[impl] if impl in tc.index else None
            status = str(m["status"]) if m is not None else "absent"
            ok = status == "ok"
            measured = as_float(m["tflops"]) if ok else NAN
            row = {"run_id": run.run_id, **{"config_id": cfg.id, **cfg.as_dict()},
                   "stage": int(p["stage"]), "impl": impl, "label": p["label"], "removes": p["removes"],
                   "status": status, "measured_tflops": measured,
                   "time_ms": as_float(m["time_ms"]) if ok else NAN,
                   "time_ms_p20": as_float(m["time_ms_p20"]) if ok else NAN,
                   "time_ms_p80": as_float(m["time_ms_p80"]) if ok else NAN,
                   **(methods.get((impl, cfg.id), _NO_METHOD) if ok else _NO_METHOD)}
            for kind in ("abs", "rel"):
                lo, hi = as_float(p[f"einstein_{kind}_low_tflops"]), as_float(p[f"einstein_{kind}_high_tflops"])
                row[f"einstein_{kind}_low_tflops"], row[f"einstein_{kind}_high_tflops"] = lo, hi
                row[f"einstein_{kind}_err"] = error_of(measured, (lo + hi) / 2)
                row[f"einstein_{kind}_in_band"] = in_band(measured, lo, hi)
            for c in ("bound_tflops", "bound_time_ms", "tensor_ms", "exp_ms", "hbm_ms", "launch_ms",
                      "wave_ms", "roofline_tflops"):
                row[c] = as_float(p[c])
            row["bound_err"] = error_of(measured, row["bound_tflops"])
            bound = row["roofline_tflops"]
            row["roofline_frac"] = measured / bound if math.isfinite(measured) and bound > 0 else NAN
            row["bound_gpu"] = gpu_source
            rows.append(row)
    return pd.DataFrame(rows, columns=STAGE_COLUMNS)


PEER_COLUMNS = ["run_id", *CONFIG_COLUMNS, "impl", "status", "measured_tflops", "time_ms", "time_ms_p20",
                "time_ms_p80", "timing_method", "host_bound", "error"]


def _methods(run: Run) -> dict:
    """(impl, config_id) -> {timing_method, host_bound} of every case timed ok (perfmodel.reports.timing_view: a run of
    schema version 1 timed by the host loop, host_bound from its launch table)."""
    from perfmodel.reports.timing_view import case_methods

    cases = case_methods(run)
    return {(i, c): {"timing_method": m, "host_bound": None if b is None or b != b else bool(b)}
            for i, c, m, b in zip(cases["impl"], cases["config_id"], cases["timing_method"], cases["host_bound"])}


_NO_METHOD = {"timing_method": None, "host_bound": None}


def peer_table(run: Run, model=None) -> pd.DataFrame:
    """The peers' (SDPA, cuDNN, flex, FA3 ...) timings in the run, one row per peer and config."""
    order = stage_order(_model(model))
    t = run.table("timings")
    peers = t[~t["impl"].isin(list(order))].copy()
    peers["measured_tflops"] = [(as_float(v) if s == "ok" else NAN) for v, s in zip(peers["tflops"], peers["status"])]
    methods = _methods(run)
    found = [methods.get((i, c), _NO_METHOD) for i, c in zip(peers["impl"], peers["config_id"])]
    peers["timing_method"] = [x["timing_method"] for x in found]
    peers["host_bound"] = [x["host_bound"] for x in found]
    return peers.reindex(columns=PEER_COLUMNS).reset_index(drop=True)


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


# ---- headlines ----------------------------------------------------------------------------------------------
def headlines(stages: pd.DataFrame, peers: pd.DataFrame, constraints: pd.DataFrame,
              evidence: pd.DataFrame | None = None) -> list[str]:
    """A few one-sentence verdicts for the top of the report and the dashboard's overview; with `evidence`
    (perfmodel.reports.ablation.constraint_evidence) the constraint lines give the ablation, else the stage chain."""
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
