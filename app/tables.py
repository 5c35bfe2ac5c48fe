"""Display frames only the dashboard shows (the report's are in perfmodel/reports/displays.py): the list of runs, one
run's stages at a config (Runs page) and the batching cases (Batching page), with readable headers and "—" where a
value is missing, as every other table of the dashboard and the report writes it, and the reason beside a case
without a figure."""

from __future__ import annotations

import math

import pandas as pd

MISSING = "—"


def _num(v, digits: int = 4) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(x):
        return MISSING
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{digits}g}"


def _text(v) -> str:
    return v if isinstance(v, str) and v else MISSING


def runs_display(infos: list[dict]) -> pd.DataFrame:
    """app.data.run_info of each run, one row each."""
    return pd.DataFrame({k: [_text(i.get(c)) for i in infos] for k, c in (
        ("run", "run_id"), ("GPU", "gpu"), ("status", "status"), ("created", "created"), ("suite", "suite"),
        ("folder", "path"))})


def run_stages_display(stages: pd.DataFrame) -> pd.DataFrame:
    """analysis.stage_table rows of one run at one config: each stage it holds, its status, measured and bound."""
    held = stages[stages["status"] != "absent"]
    return pd.DataFrame({"impl": held["impl"], "status": held["status"],
                         "measured TFLOP/s": [_num(v) for v in held["measured_tflops"]],
                         "bound TFLOP/s": [_num(v) for v in held["bound_tflops"]]})


def _why_none(row, correctness: pd.DataFrame) -> str:
    """Why a batching case has no speed-up: the case's status and error (the correctness table has every case)."""
    if pd.notna(pd.to_numeric(row.speedup_vs_b1, errors="coerce")):
        return ""
    case = correctness[(correctness["impl"] == row.impl) & (correctness["config_id"] == row.config_id)]
    if case.empty:
        return f"not timed ({str(getattr(row, 'status', 'not measured')).replace('_', ' ')})"
    status, error = case["status"].iloc[0], case["error"].iloc[0]
    if status == "ok":  # correct, but its time (or that of B=1) is missing
        return "no time at this B or at B=1"
    return f"not timed: {str(status).replace('_', ' ')}" + (f" ({str(error)[:120]})" if isinstance(error, str)
                                                            and error else "")


def batching_cases_display(batching: pd.DataFrame, correctness: pd.DataFrame) -> pd.DataFrame:
    """analysis.batching_table with its intervals (compare.with_speedup_intervals): one row per implementation and
    batch size, and why a case has no speed-up."""
    b = batching.sort_values(["impl", "B"])
    interval = [MISSING if B == 1 or not (pd.notna(lo) and pd.notna(hi)) else f"{lo:.3g}–{hi:.3g} ({k})"
                for B, lo, hi, k in zip(b["B"], b.get("speedup_low", [None] * len(b)),
                                        b.get("speedup_high", [None] * len(b)),
                                        b.get("speedup_interval", [None] * len(b)))]
    return pd.DataFrame({
        "impl": b["impl"], "B": b["B"], "config": b["config_id"], "time ms": [_num(v) for v in b["time_ms"]],
        "ms per sequence": [_num(v) for v in b["per_seq_ms"]],
        "speed-up per sequence vs B=1": [(f"{float(v):.2f}×" if pd.notna(v) else MISSING) for v in b["speedup_vs_b1"]],
        "interval": ["1× by definition" if B == 1 and pd.notna(v) else i
                     for B, v, i in zip(b["B"], b["speedup_vs_b1"], interval)],
        "why none": [_why_none(r, correctness) for r in b.itertuples()],
    })
