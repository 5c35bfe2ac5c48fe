"""The phases of `perfmodel collect` that read what the cases stored: the census of each (stage, config)
(compiled for sm_90 on the CPU, collectors.census.census, at the config a tuning stage reported it ran) and the batching
table derived from the timings."""

from __future__ import annotations

import math

import pandas as pd

from collectors.sweep import preflight
from collectors.sweep.case_rows import LOGS_DIR, note_compile_log, status_row
from collectors.timing.failures import one_line
from kernels.workload import AttentionConfig
from runstore.reader import load_run
from runstore.schema import CONFIG_COLUMNS


def tuned_configs(run) -> dict[tuple[str, str], str]:
    """(impl, config_id) -> the `tuned_config` report the run's timings recorded (tuning stages only)."""
    t = run.table("timings")
    if t.empty or "tuned_config" not in t.columns:
        return {}
    t = t[t["tuned_config"].notna() & (t["tuned_config"].astype(str) != "")]
    return {(str(r.impl), str(r.config_id)): str(r.tuned_config) for r in t.itertuples()}


def census_done(writer) -> set[tuple[str, str]]:
    df = load_run(writer.path).table("census")
    return set(zip(df["impl"].astype(str), df["config_id"].astype(str))) if not df.empty else set()


def census_case(writer, impl: str, cfg: AttentionConfig, tuned: str | None, problems: list[str]) -> None:
    """Append the census row of one (stage, config); `tuned` is the config the run timed for a tuning stage."""
    from collectors.census.census import census
    from collectors.census.sm90 import H100_SM_COUNT

    sm_count = (writer.meta.get("environment") or {}).get("sm_count") or H100_SM_COUNT
    log = None
    try:
        with preflight.compile_log(writer.path / LOGS_DIR, f"census-{impl}-{cfg.id}") as log:
            row = census(impl, cfg, int(sm_count), tuned_config=tuned).row(writer.run_id)
    except Exception as exc:  # census() records refusals itself; anything else is recorded here
        row = status_row("census", impl, cfg, "failed", one_line(exc))
    note_compile_log(problems, writer, f"census {impl} {cfg.id}", row.get("status"), row.get("error"), log)
    row.pop("run_id", None)
    writer.append("census", [row])


def batching(writer) -> None:
    """Per-sequence latency and speedup over B=1 for every (impl, H, S, D, causal, dtype) timed at several B."""
    timings = load_run(writer.path).table("timings")
    if timings.empty:
        return
    group_cols = ["impl", "H", "S", "D", "causal", "dtype"]
    rows = []
    for _, g in timings.groupby(group_cols, dropna=False):
        if g["B"].nunique() < 2 or 1 not in set(g["B"].astype(int)):
            continue
        b1 = g[(g["B"].astype(int) == 1) & (g["status"] == "ok")]["time_ms"]
        per_seq_b1 = float(b1.iloc[0]) if len(b1) else math.nan
        for _, r in g.sort_values("B").iterrows():
            row = {c: r[c] for c in ["impl", *CONFIG_COLUMNS]}
            ok = r["status"] == "ok" and pd.notna(r["time_ms"])
            t = float(r["time_ms"]) if ok else math.nan
            per_seq = t / int(r["B"]) if ok else math.nan
            speedup = per_seq_b1 / per_seq if ok and not math.isnan(per_seq_b1) else math.nan
            row.update(status="ok" if not math.isnan(speedup) else "not_measured", time_ms=t,
                       per_seq_ms=per_seq, speedup_vs_b1=speedup)
            rows.append(row)
    if rows:
        writer.append("batching", rows)
