"""The figures of Inside the kernel (a run's Proton timelines, perfmodel/reports/timeline_view.py), as plotly figure
JSON built with perfmodel/reports/chart_kit.py:

- `gantt_figure`: one SM's scopes of a few work items, one lane per recorded warp (a warp group) of each program,
  a bar per scope coloured by its phase kind (wait, wgmma, TMA issue, compute), in SM cycles;
- `shares_figure`, `phases_figure`, `overhead_figure`: the derived figures of stages 1-5 side by side at one config
  (busy, waiting, loads hidden, loads under wgmma, ping-pong; each consumer's cycles per key block by phase; the
  instrumentation overhead with its 95% interval against the 10% refusal limit), each bar an implementation in its
  colour, each figure with its p20-p80 spread as error bars.

Only timelines whose status is ok are drawn; a refused one is named with its reason below the chart.
"""

from __future__ import annotations

import pandas as pd

from collectors.timeline.figures import KIND_ORDER, OVERHEAD_LIMIT_PCT
from perfmodel.reports import palette
from perfmodel.reports.chart_kit import LAYOUT, axis, bar, empty, error_y, figure, finish, hline, note
from perfmodel.reports.timeline_view import NO_TIMELINE, SIDE_BY_SIDE, stage_label

SPREAD_NOTE = "error bars: p20–p80 over the samples (a program's warp, or one work item)"
KIND_NAMES = {"wait": "wait (hand-offs, turn)", "mma": "wgmma", "issue": "TMA issue", "compute": "softmax, mask, "
              "rescale, epilogue"}


def gantt_figure(rows: pd.DataFrame, impl: str, config_id: str, clock_note: str = "") -> dict:
    """One SM's work items as a Gantt chart (rows: timeline_view.gantt_rows of one case)."""
    n = rows[["program", "item"]].drop_duplicates().shape[0] if len(rows) else 0
    title = f"Inside {stage_label(impl)}: one SM, {n} work item{'s' if n != 1 else ''} — {config_id}"
    if rows.empty:
        return empty(title, "no work item of this case was kept in the run's timeline table")
    fig = figure()
    lanes = list(dict.fromkeys(rows["row"]))
    for kind in KIND_ORDER:
        k = rows[rows["kind"] == kind]
        if k.empty:
            continue
        hover = [f"{ph}: {e - s:.0f} cycles (item {it}, key block {'—' if pd.isna(i) else int(i)})"
                 for ph, s, e, it, i in zip(k["phase"], k["start"], k["end"], k["item"], k["iteration"])]
        fig["data"].append(bar(y=k["row"], x=(k["end"] - k["start"]), base=k["start"], orientation="h",
                               name=KIND_NAMES.get(kind, kind), marker=dict(color=palette.PHASE_KIND_COLORS[kind]),
                               hovertext=hover, hoverinfo="text"))
    note(fig, "bars: Proton scopes of one recorded warp per warp group; clock reads move with the code near them, "
              "so a short phase is approximate" + (f"; {clock_note}" if clock_note and rows["program"].nunique() > 1
                                                   else ""), where="below")
    layout = {**LAYOUT, "height": max(300, 60 + 28 * len(lanes))}
    return finish(fig, title, barmode="overlay", xaxis=axis("SM cycles from the first scope drawn"),
                  yaxis=axis("", categoryorder="array", categoryarray=lanes[::-1], automargin=True), **layout)


def _ok(frame: pd.DataFrame, config_id: str) -> pd.DataFrame:
    return frame[(frame["config_id"] == config_id) & (frame["status"] == "ok")]


def _refused_note(fig: dict, cases: pd.DataFrame, config_id: str) -> None:
    c = cases[(cases["config_id"] == config_id) & (cases["status"] != "ok")]
    if not c.empty:
        note(fig, "not drawn: " + "; ".join(f"{stage_label(i)} {s}" for i, s in zip(c["impl"], c["status"]))
             + " (see the table)", where="above left")


def _grouped(fig: dict, f: pd.DataFrame, category) -> None:
    """One bar trace per implementation of `f` at x = category(row), with p20-p80 error bars."""
    colors = palette.impl_colors(f["impl"].unique())
    for impl in sorted(f["impl"].unique()):
        g = f[f["impl"] == impl]
        fig["data"].append(bar(x=[category(r) for _, r in g.iterrows()], y=g["median"], name=impl,
                               marker=dict(color=colors[impl]), error_y=error_y(g["median"], g["p20"], g["p80"])))


def shares_figure(figs: pd.DataFrame, cases: pd.DataFrame, config_id: str) -> dict:
    """Busy, waiting, loads hidden, loads under wgmma and ping-pong shares per partition, stages side by side."""
    title = f"Inside the kernel: where each partition's time goes — {config_id}"
    wanted = [(f, ph, label) for f, ph, label in SIDE_BY_SIDE if f != "iteration_cycles"]
    ok = _ok(figs, config_id)
    parts = [ok[(ok["figure"] == f) & (ok["phase"] == ph)].assign(what=label) for f, ph, label in wanted]
    f = pd.concat(parts, ignore_index=True) if parts else ok.iloc[:0]
    if f.empty:
        return empty(title, "no timeline of this config is the bare kernel's" if len(figs) else NO_TIMELINE)
    fig = figure()
    _grouped(fig, f, lambda r: f"{r['what']} · {r['partition_label']}")
    note(fig, SPREAD_NOTE)
    _refused_note(fig, cases, config_id)
    return finish(fig, title, barmode="group", yaxis=axis("share (0–1)", range=[0, 1.05]), **LAYOUT)


def phases_figure(figs: pd.DataFrame, cases: pd.DataFrame, config_id: str, partition: str = "consumer0") -> dict:
    """Cycles per key block of one partition (the first consumer), in total and by phase, stages side by side."""
    from collectors.timeline.read import PER_ITEM_PHASES

    title = f"Inside the kernel: {partition}'s cycles per key block by phase — {config_id}"
    ok = _ok(figs, config_id)
    ok = ok[ok["partition_label"] == partition]
    f = ok[(ok["figure"] == "iteration_cycles") |
           ((ok["figure"] == "phase_cycles") & ~ok["phase"].isin(PER_ITEM_PHASES))]
    if f.empty:
        return empty(title, "no timeline of this config is the bare kernel's" if len(figs) else NO_TIMELINE)
    fig = figure()
    _grouped(fig, f, lambda r: "whole key block" if r["figure"] == "iteration_cycles" else r["phase"])
    note(fig, SPREAD_NOTE)
    _refused_note(fig, cases, config_id)
    return finish(fig, title, barmode="group", yaxis=axis("SM cycles per key block"), **LAYOUT)


def overhead_figure(cases: pd.DataFrame, config_id: str) -> dict:
    """The instrumented build's time against the bare build's (%), with its 95% interval, against the limit."""
    title = f"Instrumentation overhead (a timeline above {OVERHEAD_LIMIT_PCT:g}% is refused) — {config_id}"
    c = cases[(cases["config_id"] == config_id) & pd.to_numeric(cases["overhead_pct"], errors="coerce").notna()]
    if c.empty:
        return empty(title, "no overhead was measured at this config" if len(cases) else NO_TIMELINE)
    fig = figure()
    colors = palette.impl_colors(c["impl"].unique())
    for _, r in c.iterrows():
        fig["data"].append(bar(x=[stage_label(r["impl"])], y=[r["overhead_pct"]], name=r["impl"],
                               marker=dict(color=colors[r["impl"]]),
                               error_y=error_y([r["overhead_pct"]], [r["overhead_ci_low_pct"]],
                                               [r["overhead_ci_high_pct"]])))
    hline(fig, OVERHEAD_LIMIT_PCT, dict(color=palette.AXIS, dash="dash"), f"refusal limit {OVERHEAD_LIMIT_PCT:g}%")
    note(fig, "error bars: bootstrap 95% interval (instrumented and bare, same timing method)")
    return finish(fig, title, yaxis=axis("instrumented / bare − 1 (%)"), showlegend=False, **LAYOUT)
