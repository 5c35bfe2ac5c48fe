"""Cases timed while the GPU held its clocks down: the `timings` table's GPU-state columns (power_w,
temperature_c, throttle_reasons, throttled; runstore/schema.py) for the report, the dashboard and `collect`'s
end-of-run summary. Runs made before those columns have them null: nothing is flagged, nothing is guessed.
"""

from __future__ import annotations

import pandas as pd

from perfmodel.runs import Run

STATE_COLUMNS = ["sm_clock_mhz", "mem_clock_mhz", "power_w", "temperature_c", "throttle_reasons", "throttled"]
_NAMED = 8  # cases named in one line; the rest are counted


def _is_true(v) -> bool:
    return v is not None and not (isinstance(v, float) and pd.isna(v)) and bool(v)


def _timed(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of cases that were timed (status ok; a case not timed was sampled during its check only)."""
    return frame[frame["status"] == "ok"] if "status" in frame.columns else frame


def throttled_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The timed rows of a frame with `throttled` (timings, or a stage / peer table with_gpu_state) that are
    True."""
    if "throttled" not in frame.columns or frame.empty:
        return frame.iloc[0:0]
    frame = _timed(frame)
    return frame[[_is_true(v) for v in frame["throttled"]]]


def has_gpu_state(frame: pd.DataFrame) -> bool:
    """Whether any row says whether it was throttled (False for runs made before the column)."""
    return "throttled" in frame.columns and bool(frame["throttled"].notna().any())


def throttled_text(throttled, reasons) -> str:
    """'yes (sw_power_cap)' / 'no' / '—' (not read) for one case."""
    if throttled is None or (isinstance(throttled, float) and pd.isna(throttled)):
        return "—"
    if not bool(throttled):
        return "no"
    return f"yes ({reasons})" if isinstance(reasons, str) and reasons else "yes"


def throttled_column(frame: pd.DataFrame) -> list[str]:
    """throttled_text for each row; '—' for a case that was not timed."""
    status = frame["status"] if "status" in frame.columns else ["ok"] * len(frame)
    reasons = frame["throttle_reasons"] if "throttle_reasons" in frame.columns else [None] * len(frame)
    return [throttled_text(t, r) if s == "ok" else "—" for t, r, s in zip(frame["throttled"], reasons, status)]


def throttled_line(frame: pd.DataFrame) -> str | None:
    """One sentence naming the cases of `frame` timed while throttled and why, or None when none was."""
    hot = throttled_rows(frame)
    if hot.empty:
        return None
    n_read = int(_timed(frame)["throttled"].notna().sum())
    named = [f"{r.impl} {r.config_id} ({r.throttle_reasons or 'reason not named'})"
             for r in hot.head(_NAMED).itertuples()]
    more = f" and {len(hot) - _NAMED} more" if len(hot) > _NAMED else ""
    return (f"{len(hot)} of {n_read} timed cases ran while the GPU throttled its clocks, so their times are "
            f"not at full clocks: {', '.join(named)}{more}.")


def run_throttled_line(run: Run) -> str | None:
    """throttled_line over the run's timings table."""
    return throttled_line(run.table("timings"))


def with_gpu_state(frame: pd.DataFrame, run: Run) -> pd.DataFrame:
    """`frame` (rows with `impl` and `config_id`: analysis.stage_table, peer_table) with the timings' GPU-state
    columns it lacks (null for a case the run has none for)."""
    missing = [c for c in STATE_COLUMNS if c not in frame.columns]
    if not missing or frame.empty:
        return frame
    t = run.table("timings")[["impl", "config_id", *missing]].drop_duplicates(["impl", "config_id"])
    out = frame.merge(t, on=["impl", "config_id"], how="left")
    out.index = frame.index
    return out
