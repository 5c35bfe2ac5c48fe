"""Each section of the report as its figures and its tables (caption, display frame), from the `ReportData`
(perfmodel/reports/report_data.py): what the Markdown and the HTML formats lay out.
"""

from __future__ import annotations


import pandas as pd

from perfmodel.model import model_cases
from perfmodel.reports import figures, timeline_figures, timeline_view
from perfmodel.reports.chart_kit import title_of
from perfmodel.reports.correctness import correctness_summary
from perfmodel.reports.displays import (batching_display, comparison_display, constraints_display, correctness_display,
                                        correctness_summary_display, evidence_display, gates_display, peers_display,
                                        regressions_display, roofline_display, stages_display, stall_shift_display,
                                        stalls_display)
from perfmodel.reports.report_data import SECTION_INTRO, ReportData
from perfmodel.runs import unmeasured_reason


def _of_config(fig: dict, config_id: str) -> dict:
    """The figure with its config named in its title."""
    fig["layout"]["title"] = title_of(f"{fig['layout']['title']['text']} — {config_id}")
    return fig


def section_figures(data: ReportData) -> dict[str, list[dict]]:
    """Each section's figures, as plotly figure JSON (perfmodel/reports/chart_kit.py)."""
    figs: dict[str, list] = {k: [] for k in SECTION_INTRO}
    stages = model_cases.with_model(data.stages, data.model)
    why = unmeasured_reason(data.run)  # an --interpret run's charts say so rather than guess
    for cid in stages["config_id"].unique():
        s = stages[stages["config_id"] == cid]
        p = data.peers[data.peers["config_id"] == cid]
        per_config = [figures.stages_figure(s, p, why=why), figures.terms_figure(s, why=why)]
        if data.model is not None:
            per_config.append(figures.model_terms_figure(s))
        figs["stages"] += [_of_config(f, cid) for f in per_config]
    for cid in data.evidence["config_id"].unique() if not data.evidence.empty else []:
        ev = data.evidence[data.evidence["config_id"] == cid]
        figs["constraints"].append(_of_config(figures.constraints_figure(ev), cid))
    for cid in data.stalls["config_id"].unique():
        figs["stalls"].append(_of_config(figures.stalls_figure(data.stalls[data.stalls["config_id"] == cid]), cid))
    figs["timeline"] = _timeline_figures(data.timeline)
    figs["roofline"].append(figures.roofline_figure(data.roofline, why=why))
    if not data.batching.empty:
        figs["batching"].append(figures.batching_figure(data.batching))
    if data.comparison is not None:
        figs["comparison"].append(figures.compare_figure(data.comparison))
    return figs


def _timeline_figures(tl) -> list[dict]:
    """Inside the kernel: the Gantt charts of the report's config, then per config the stages side by side."""
    if tl is None:
        return []
    out = [timeline_figures.gantt_figure(rows, impl, tl.gantt_config,
                                         timeline_view.clock_note(tl.clock_mhz.get((impl, tl.gantt_config))))
           for impl, rows in sorted(tl.gantt.items())]
    for cid in dict.fromkeys(tl.cases["config_id"]):
        out += [timeline_figures.shares_figure(tl.figures, tl.cases, cid),
                timeline_figures.phases_figure(tl.figures, tl.cases, cid),
                timeline_figures.overhead_figure(tl.cases, cid)]
    return out


def section_notes(data: ReportData) -> dict[str, list[str]]:
    """Sentences a section shows below its introduction: a run without a timeline says so and how to record one."""
    return {"timeline": [timeline_view.NO_TIMELINE]} if data.timeline is None else {}


def section_tables(data: ReportData) -> dict[str, list[tuple[str, pd.DataFrame]]]:
    t = {
        "gates": [("", gates_display(data.gates))],
        "stages": [("", stages_display(model_cases.with_model(data.stages, data.model))),
                   ("Peers measured in the same run" + ("" if data.model is None else
                                                        f" ({model_cases.NO_MODEL_FOR_PEERS.rstrip('.')})"),
                    peers_display(data.peers)),
                   ("Stages slower than the stage before beyond noise (the check the plan forgot)",
                    regressions_display(data.regressions))],
        "constraints": [("Ablation: what each technique is worth alone (the fair measure)",
                         evidence_display(data.evidence)),
                        ("Stall reasons that moved when the technique was switched on",
                         stall_shift_display(data.stall_shift)),
                        ("Stage chain: stage k against stage k−1 (everything the stage file changes)",
                         constraints_display(data.constraints)),
                        ("How each constraint is measured", data.mapping)],
        "stalls": [("", stalls_display(data.stalls))],
        "timeline": [] if data.timeline is None else [
            ("Each timeline's verdict and the instrumentation's cost",
             timeline_view.cases_display(data.timeline.cases)),
            *((f"Stages side by side — {cid}: median [p20–p80]",
               timeline_view.side_by_side(data.timeline.figures, cid))
              for cid in dict.fromkeys(data.timeline.cases["config_id"]))],
        "roofline": [("", roofline_display(data.roofline))],
        "batching": [("", batching_display(data.batching_summary))],
        "correctness": [("Per implementation, over every config", correctness_summary_display(
                            correctness_summary(data.correctness))),
                        ("Per case", correctness_display(data.correctness))],
    }
    if data.comparison is not None:
        t["comparison"] = [("", comparison_display(data.comparison))]
    return t
