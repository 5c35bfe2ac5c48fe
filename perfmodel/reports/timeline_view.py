"""Inside the kernel: a run's Proton timelines as the report and the dashboard show them (the tables
`timeline_cases`, `timeline_figures` and `timeline`, runstore/schema_timeline.py; `perfmodel collect --timeline`
records them).

- `timeline_data(run)`: each case's verdict and the derived figures with it, and the scopes of the cases the report
  draws as Gantt charts (one config: the first that has a timeline); None for a run without a timeline
  (`NO_TIMELINE` says so in one sentence, with the command that records one);
- `cases_display`, `side_by_side`: the verdicts, and the figures of stages 1-5 side by side at one config;
- `gantt_rows`: the scopes of a few work items of one SM, placed on one axis of SM cycles.

Only a timeline whose status is ok is drawn or put side by side: a refused one (instrumentation above 10%, dropped
records, an output that differs) shows its reason instead of its figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from collectors.timeline.figures import CONTAINER, phase_kind
from collectors.timeline.read import PER_ITEM_PHASES, phase_of

NO_TIMELINE = ("This run has no timeline: `perfmodel collect --timeline` records one (a Proton-instrumented launch "
               "of each Gluon stage at each config, on an H100 or H200).")
# work items a Gantt chart draws by default
GANTT_ITEMS = 3
# the figures put side by side, in order: (figure, phase, label)
SIDE_BY_SIDE = (("busy_share", "", "busy share"), ("time_share", "wait", "waiting share"),
                ("load_hidden_share", "", "loads hidden"), ("load_under_mma_share", "", "loads under wgmma"),
                ("pingpong_share", "softmax", "softmax under the other's wgmma"),
                ("iteration_cycles", "", "cycles per key block"))


@dataclass
class TimelineData:
    cases: pd.DataFrame  # timeline_cases
    figures: pd.DataFrame  # timeline_figures with the case's status
    gantt_config: str | None = None  # the config whose ok cases are drawn as Gantt charts in the report
    gantt: dict = field(default_factory=dict)  # impl -> gantt_rows of that case
    clock_mhz: dict = field(default_factory=dict)  # (impl, config_id) -> the SM clock measured while it was timed


def timeline_data(run, config_order: list[str] | None = None) -> TimelineData | None:
    """The run's timelines (module docstring), None when it has none."""
    if "timeline_cases" not in run.tables():
        return None
    cases = run.table("timeline_cases")
    status = {(i, c): s for i, c, s in zip(cases["impl"], cases["config_id"], cases["status"])}
    figs = run.table("timeline_figures")
    figs = figs.assign(status=[status.get(k, "") for k in zip(figs["impl"], figs["config_id"])])
    clock = {}
    if "timings" in run.tables():
        t = run.table("timings")
        clock = {(i, c): float(m) for i, c, m in zip(t["impl"], t["config_id"], pd.to_numeric(t["sm_clock_mhz"]))
                 if pd.notna(m)}
    data = TimelineData(cases, figs, clock_mhz=clock)
    ok = cases[cases["status"] == "ok"]
    order = [c for c in (config_order or []) if c in set(ok["config_id"])] or list(dict.fromkeys(ok["config_id"]))
    if order:
        data.gantt_config = order[0]
        tl = case_timeline(run, None, data.gantt_config)
        for impl in ok.loc[ok["config_id"] == data.gantt_config, "impl"]:
            data.gantt[impl] = gantt_rows(tl[tl["impl"] == impl],
                                          clock_mhz=clock.get((impl, data.gantt_config)))
    return data


def case_timeline(run, impl: str | None, config_id: str) -> pd.DataFrame:
    """The `timeline` rows of one case (every implementation at the config when `impl` is None)."""
    tl = run.table("timeline")
    keep = tl["config_id"] == config_id
    if impl is not None:
        keep &= tl["impl"] == impl
    return tl[keep].reset_index(drop=True)


def clock_note(clock_mhz: float | None) -> str:
    """What a Gantt chart's note says about placing programs after the first on the cycle axis."""
    if clock_mhz:
        return (f"later programs placed by Proton's global timer at {clock_mhz:.0f} MHz, the SM clock measured "
                "while the case was timed")
    return "each program from its own first cycle (no SM clock was measured for this case)"


def stage_label(impl: str) -> str:
    return impl.split("_", 1)[0] if impl.startswith("stage") else impl


# ---- tables ------------------------------------------------------------------------------------------------------
def _pm(v, lo, hi, fmt: str) -> str:
    if pd.isna(v):
        return "not measured"
    return f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if pd.notna(lo) and pd.notna(hi) else f"{v:{fmt}}"


def cases_display(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per case: its verdict, the instrumentation overhead with its 95% interval, both times and why."""
    if cases.empty:
        return pd.DataFrame(columns=["config", "implementation", "status", "overhead % [95% CI]", "bare ms",
                                     "instrumented ms", "timed by", "scopes", "reason"])
    return pd.DataFrame({
        "config": cases["config_id"], "implementation": cases["impl"], "status": cases["status"],
        "overhead % [95% CI]": [_pm(v, lo, hi, ".1f") for v, lo, hi in
                                zip(cases["overhead_pct"], cases["overhead_ci_low_pct"],
                                    cases["overhead_ci_high_pct"])],
        "bare ms": [_pm(v, None, None, ".4f") for v in cases["bare_ms"]],
        "instrumented ms": [_pm(v, None, None, ".4f") for v in cases["instrumented_ms"]],
        "timed by": cases["timing_method"].fillna("—"),
        "scopes": [("—" if pd.isna(n) else f"{int(n):,}") for n in cases["events"]],
        "reason": cases["reason"].fillna(""),
    }).reset_index(drop=True)


def _cell(r) -> str:
    if r["unit"] == "share":
        return f"{r['median']:.2f} [{r['p20']:.2f}–{r['p80']:.2f}]"
    return f"{r['median']:.0f} [{r['p20']:.0f}–{r['p80']:.0f}]"


def side_by_side(figs: pd.DataFrame, config_id: str) -> pd.DataFrame:
    """The key figures of every ok timeline at `config_id`, stages as columns: median [p20–p80] per (figure,
    partition), then each consumer's per-iteration phase cycles."""
    f = figs[(figs["config_id"] == config_id) & (figs["status"] == "ok")]
    if f.empty:
        return pd.DataFrame(columns=["figure", "partition"])
    wanted = [(fig, ph, label) for fig, ph, label in SIDE_BY_SIDE]
    loop = f[(f["figure"] == "phase_cycles") & ~f["phase"].isin(PER_ITEM_PHASES)]
    wanted += [("phase_cycles", ph, f"{ph} cycles per key block") for ph in dict.fromkeys(loop["phase"])]
    impls = sorted(dict.fromkeys(f["impl"]))
    rows = []
    for fig, ph, label in wanted:
        sel = f[(f["figure"] == fig) & (f["phase"] == ph)]
        for part in sorted(dict.fromkeys(sel["partition_label"])):
            hit = sel[sel["partition_label"] == part]
            cells = {stage_label(i): (_cell(hit[hit["impl"] == i].iloc[0]) if (hit["impl"] == i).any() else "—")
                     for i in impls}
            rows.append({"figure": label, "partition": part, **cells})
    return pd.DataFrame(rows)


# ---- the Gantt chart's rows --------------------------------------------------------------------------------------
def partition_labels(tl: pd.DataFrame) -> dict:
    """partition (or warp group) -> "<role><k>", as collectors/timeline/figures.py labels them."""
    key = tl["partition"].astype("float64").where(tl["partition"].notna(), tl["warp_group"].astype("float64"))
    roles = pd.DataFrame({"key": key, "role": tl["role"]}).drop_duplicates("key").sort_values("key")
    out, seen = {}, {}
    for k, role in zip(roles["key"], roles["role"]):
        role = role or "partition"
        out[k] = f"{role}{seen.get(role, 0)}"
        seen[role] = seen.get(role, 0) + 1
    return out


def gantt_rows(tl: pd.DataFrame, sm: int | None = None, items: int = GANTT_ITEMS,
               clock_mhz: float | None = None) -> pd.DataFrame:
    """The scopes of the first `items` work items (by start) of one SM (`sm`, else the lowest that ran one), one row
    per scope but the work-item containers: row (the Gantt's lane: "program <p> · <partition> (warp <w>)"),
    phase, kind, start and end (SM cycles from the SM's first drawn scope), program, item, iteration. Programs
    after the first are placed by Proton's global timer (ns) at `clock_mhz` (the SM clock measured while the case
    was timed); without it each program starts at its own cycle 0."""
    cols = ["row", "partition_label", "phase", "kind", "start", "end", "program", "item", "iteration"]
    d = tl[tl["item"].notna()]
    if d.empty:
        return pd.DataFrame(columns=cols)
    sm = int(d["sm"].min()) if sm is None else int(sm)
    d = d[d["sm"] == sm]
    if d.empty:
        return pd.DataFrame(columns=cols)
    first_ns = d["program_start_ns"].min()
    per_ns = (clock_mhz / 1000.0) if clock_mhz and np.isfinite(clock_mhz) else 0.0
    offset = (d["program_start_ns"] - first_ns).astype(float) * per_ns
    start = d["start_cycle"].astype(float) + offset
    item_start = pd.DataFrame({"program": d["program"], "item": d["item"].astype(int), "t": start}) \
        .groupby(["program", "item"])["t"].min().sort_values()
    chosen = set(item_start.index[:items])
    keep = [(p, int(i)) in chosen for p, i in zip(d["program"], d["item"])]
    d, start, offset = d[keep], start[keep], offset[keep]
    phase = phase_of(d["scope"])
    kind = phase.map(phase_kind)
    labels = partition_labels(tl)
    key = d["partition"].astype("float64").where(d["partition"].notna(), d["warp_group"].astype("float64"))
    part = key.map(labels)
    out = pd.DataFrame({
        "row": [f"program {p} · {lbl} (warp {w})" for p, lbl, w in zip(d["program"], part, d["warp"])],
        "partition_label": part, "phase": phase, "kind": kind, "start": start,
        "end": d["end_cycle"].astype(float) + offset, "program": d["program"], "item": d["item"].astype(int),
        "iteration": d["iteration"]})
    out = out[out["kind"] != CONTAINER]
    t0 = out["start"].min() if len(out) else 0.0
    out = out.assign(start=out["start"] - t0, end=out["end"] - t0)
    return out.sort_values(["program", "row", "start"], kind="stable").reset_index(drop=True)[cols]
