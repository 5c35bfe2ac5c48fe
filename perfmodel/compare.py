"""Two runs compared case by case: change in kernel time and in key counters, regressions flagged beyond noise.

Noise is each run's own: a case is a regression only when the new run's 20th-percentile time is above the
baseline's 80th percentile (the two runs' p20–p80 intervals do not overlap and the new one is slower), and an
improvement in the mirror case. A case without percentiles (older runs) falls back to the collector's stability
threshold (collectors/timing.py: a spread under 2% of the median counts as stable) around each median.
"""

from __future__ import annotations

import math

import pandas as pd

from collectors.schema import CONFIG_COLUMNS
from collectors.timing import STABLE_SPREAD_PCT  # a run's own "stable" spread, when it has no p20/p80
from perfmodel.runs import Run

# Counters shown beside the time change (short names of collectors/metrics.py).
KEY_COUNTERS = ("tensor_gmma_pipe_pct", "tensor_pipe_pct", "dram_throughput_pct", "warp_cycles_per_issue",
                "achieved_occupancy_pct", "registers_per_thread", "sm_clock_hz")

COMPARE_COLUMNS = ["impl", *CONFIG_COLUMNS, "status_base", "status_new", "time_ms_base", "time_ms_new",
                   "time_change_pct", "noise_pct", "verdict", "tflops_base", "tflops_new"] + \
                  [f"{c}_{side}" for c in KEY_COUNTERS for side in ("base", "new")]


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _interval(row, suffix: str) -> tuple[float, float, float]:
    med = _f(row[f"time_ms{suffix}"])
    p20, p80 = _f(row[f"time_ms_p20{suffix}"]), _f(row[f"time_ms_p80{suffix}"])
    if not (math.isfinite(p20) and math.isfinite(p80)):
        half = med * STABLE_SPREAD_PCT / 200
        p20, p80 = med - half, med + half
    return med, p20, p80


def _counters(run: Run) -> pd.DataFrame:
    ncu = run.table("ncu_metrics")
    ncu = ncu[ncu["metric"].isin(KEY_COUNTERS)]
    if ncu.empty:
        return pd.DataFrame(columns=["impl", "config_id", *KEY_COUNTERS])
    ncu = ncu.assign(value=pd.to_numeric(ncu["value"], errors="coerce"))
    wide = ncu.pivot_table(index=["impl", "config_id"], columns="metric", values="value", aggfunc="mean")
    return wide.reindex(columns=list(KEY_COUNTERS)).reset_index()


def compare_runs(run: Run, baseline: Run) -> pd.DataFrame:
    """One row per (impl, config) timed in either run: both times, the change, the verdict
    (regression | improvement | within noise | not comparable) and key counters of both runs."""
    keys = ["impl", *CONFIG_COLUMNS]
    cols = ["status", "time_ms", "time_ms_p20", "time_ms_p80", "tflops"]
    new = run.table("timings")[keys + cols]
    base = baseline.table("timings")[keys + cols]
    m = base.merge(new, on=keys, how="outer", suffixes=("_base", "_new"))
    rows = []
    for r in m.to_dict("records"):
        both_ok = r["status_base"] == "ok" and r["status_new"] == "ok"
        row = {k: r[k] for k in keys}
        row.update({"status_base": r["status_base"], "status_new": r["status_new"],
                    "time_ms_base": _f(r["time_ms_base"]), "time_ms_new": _f(r["time_ms_new"]),
                    "tflops_base": _f(r["tflops_base"]), "tflops_new": _f(r["tflops_new"])})
        if not both_ok:
            row.update(time_change_pct=float("nan"), noise_pct=float("nan"), verdict="not comparable")
        else:
            mb, lb, hb = _interval(r, "_base")
            mn, ln, hn = _interval(r, "_new")
            row["time_change_pct"] = (mn / mb - 1) * 100
            row["noise_pct"] = max((hb - lb) / mb, (hn - ln) / mn) * 100
            row["verdict"] = "regression" if ln > hb else "improvement" if hn < lb else "within noise"
        rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in COMPARE_COLUMNS if not c.endswith(("_base", "_new"))
                                      or c.startswith(("status", "time_ms", "tflops"))])
    for side, r in (("base", baseline), ("new", run)):
        c = _counters(r).rename(columns={k: f"{k}_{side}" for k in KEY_COUNTERS})
        out = out.merge(c, on=["impl", "config_id"], how="left")
    return out.reindex(columns=COMPARE_COLUMNS).sort_values(["config_id", "impl"]).reset_index(drop=True)


def regressions(comparison: pd.DataFrame) -> pd.DataFrame:
    return comparison[comparison["verdict"] == "regression"]
