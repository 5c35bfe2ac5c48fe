"""How a run's times were measured, for the report, the dashboard and `perfmodel collect`'s summary.

Per case (the `timings` table): the method behind `time_ms` (collectors/timing/measure.py: the GPU's time by CUDA-graph
replay, or, for a call that could not be captured, the host loop's, with the reason), the host loop's time beside
it, the host launch path, and `host_bound` (the launch path is at least the GPU time, so a host loop would measure
the host). A run of schema version 1 timed everything by the host loop and says so.

The cross-check: where Nsight Compute profiled a case, its `gpu__time_duration` (short name `duration_ns`,
collectors/ncu/metrics.py) summed over the kernels one call launched is the GPU's time of that call without gaps
between launches; `ncu_agreement` gives time_ms / that per case, and `timing_lines` its median per method.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from perfmodel.runs import Run, per_run
from runstore.schema import TIMING_GRAPH, TIMING_HOST_LOOP, V1_TIMING_METHOD

METHOD_LABELS = {TIMING_GRAPH: "GPU time (CUDA graph)", TIMING_HOST_LOOP: "host loop"}
CASE_COLUMNS = ["impl", "config_id", "time_ms", "timing_method", "graph_fallback", "host_loop_ms",
                "host_launch_us", "host_bound"]


def _table(run: Run, name: str) -> pd.DataFrame | None:
    return run.table(name) if name in run.tables() else None


def case_methods(run: Run) -> pd.DataFrame:
    """One row per case timed ok: CASE_COLUMNS (a column the run predates is filled as that run measured it:
    timing_method host loop, the rest null; host_bound from the launch table where the run has one)."""
    return per_run(run, "case_methods", _case_methods).copy()  # the stage and peer tables and the header read it


def _case_methods(run: Run) -> pd.DataFrame:
    t = _table(run, "timings")
    if t is None or not len(t):
        return pd.DataFrame(columns=CASE_COLUMNS)
    t = t[t["status"] == "ok"].copy()
    for col in CASE_COLUMNS:
        if col not in t.columns:
            t[col] = None
    t["timing_method"] = t["timing_method"].where(t["timing_method"].notna(), V1_TIMING_METHOD)
    launch = _table(run, "launch")
    if launch is not None and {"impl", "config_id", "host_launch_us", "status"} <= set(launch.columns):
        ok = launch[launch["status"] == "ok"].set_index(["impl", "config_id"])["host_launch_us"]
        keys = list(zip(t["impl"], t["config_id"]))
        missing = t["host_launch_us"].isna()
        t.loc[missing, "host_launch_us"] = [ok.get(k, math.nan) for k, m in zip(keys, missing) if m]
        unknown = t["host_bound"].isna()
        t.loc[unknown, "host_bound"] = [
            bool(us * 1e-3 >= ms) if pd.notna(us) else None
            for us, ms in zip(t.loc[unknown, "host_launch_us"], t.loc[unknown, "time_ms"])]
    return t[CASE_COLUMNS].reset_index(drop=True)


def method_phrase(runs: list[Run], impls, config_ids) -> str:
    """How the times of `impls` at `config_ids` in `runs` were measured, as a clause for a figure built from them
    ("timed by GPU time (CUDA graph)", "timed by host loop for 3 of 8 cases", plus the host-bound count); "" when
    none of those cases was timed ok."""
    impls, config_ids = set(impls), set(config_ids)
    parts = [c[c["impl"].isin(impls) & c["config_id"].isin(config_ids)] for c in map(case_methods, runs)]
    cases = pd.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else None
    if cases is None:
        return ""
    counts = cases["timing_method"].value_counts()
    n = len(cases)
    text = "timed by " + ", ".join(METHOD_LABELS.get(m, m) + ("" if k == n else f" for {k} of {n} cases")
                                   for m, k in counts.items())
    bound = int(cases["host_bound"].map(lambda v: v is True).sum())
    if bound:
        text += f"; {bound} of {n} host-bound (the host launch path is at least the GPU time)"
    return text


def ncu_agreement(run: Run) -> pd.DataFrame:
    """Per case both timed ok and profiled: time_ms, ncu_ms (the kernels' gpu__time_duration summed) and their
    ratio, with the case's timing method."""
    cases = case_methods(run)
    ncu = _table(run, "ncu_metrics")
    cols = ["impl", "config_id", "timing_method", "time_ms", "ncu_ms", "ratio"]
    if ncu is None or not len(ncu) or not len(cases):
        return pd.DataFrame(columns=cols)
    d = ncu[ncu["metric"] == "duration_ns"]
    per_call = (pd.to_numeric(d["value"], errors="coerce").groupby([d["impl"], d["config_id"]]).sum() / 1e6)
    out = cases.assign(ncu_ms=[per_call.get((i, c), math.nan) for i, c in zip(cases["impl"], cases["config_id"])])
    out = out[np.isfinite(out["ncu_ms"].astype(float)) & (out["ncu_ms"] > 0)]
    out = out.assign(ratio=out["time_ms"].astype(float) / out["ncu_ms"].astype(float))
    return out[cols].reset_index(drop=True)


def timing_lines(run: Run) -> list[str]:
    """What a reader must know about how the run's times were measured, one sentence each."""
    cases = case_methods(run)
    if not len(cases):
        return []
    counts = cases["timing_method"].value_counts()
    parts = [f"{METHOD_LABELS.get(m, m)} for {n}" for m, n in counts.items()]
    lines = [f"times: {', '.join(parts)} of {len(cases)} cases" + (
        " (a run of schema version 1: every time is the host loop's, which measures the host's launch path "
        "wherever that is longer than the kernel)" if set(counts.index) == {TIMING_HOST_LOOP}
        and run.meta.get("schema_version", 1) < 2 else "") + "."]
    fallback = cases[cases["graph_fallback"].notna()]
    for r in fallback.to_dict("records"):
        lines.append(f"{r['impl']} at {r['config_id']}: {r['graph_fallback']}.")
    bound = cases[cases["host_bound"].map(lambda v: v is True)]
    if len(bound):
        names = ", ".join(f"{r['impl']} {r['config_id']}" for r in bound.to_dict("records")[:6])
        more = f" and {len(bound) - 6} more" if len(bound) > 6 else ""
        lines.append(f"host-bound (the host launch path is at least the GPU time): {len(bound)} case(s), {names}{more}.")
    agree = ncu_agreement(run)
    for method, g in agree.groupby("timing_method"):
        lines.append(f"{METHOD_LABELS.get(method, method)} against Nsight Compute's gpu__time_duration: median "
                     f"ratio {g['ratio'].median():.3f} over {len(g)} profiled case(s) "
                     f"(range {g['ratio'].min():.3f}-{g['ratio'].max():.3f}).")
    return lines
