"""Pure `DataFrame -> plotly Figure` builders for the pages.

The builders themselves live in `perfmodel/reports/figures.py` (Inside the kernel's in timeline_figures.py), because the report builder
(`perfmodel/reports/reporting.py`) draws the same figures and imports only run app -> perfmodel, never the reverse. This
module is the dashboard's one door to them, so that pages import charts from `app.charts` alone. The report's
builders return plotly's figure JSON (plain dicts, which the report embeds as they are); here each becomes a plotly
Figure, which checks every property against plotly's schema and resolves the template the figure names.
"""

from __future__ import annotations

import functools

import plotly.graph_objects as go

from perfmodel.reports import figures, timeline_figures

__all__ = ["stages_figure", "terms_figure", "model_terms_figure", "constraints_figure", "stalls_figure",
           "roofline_figure", "batching_figure", "compare_figure", "gantt_figure", "timeline_shares_figure",
           "timeline_phases_figure", "timeline_overhead_figure"]


def _as_figure(build):
    @functools.wraps(build)
    def figure(*args, **kwargs) -> go.Figure:
        return go.Figure(build(*args, **kwargs))

    return figure


stages_figure = _as_figure(figures.stages_figure)
terms_figure = _as_figure(figures.terms_figure)
model_terms_figure = _as_figure(figures.model_terms_figure)
constraints_figure = _as_figure(figures.constraints_figure)
stalls_figure = _as_figure(figures.stalls_figure)
roofline_figure = _as_figure(figures.roofline_figure)
batching_figure = _as_figure(figures.batching_figure)
compare_figure = _as_figure(figures.compare_figure)
# Inside the kernel (perfmodel/reports/timeline_figures.py)
gantt_figure = _as_figure(timeline_figures.gantt_figure)
timeline_shares_figure = _as_figure(timeline_figures.shares_figure)
timeline_phases_figure = _as_figure(timeline_figures.phases_figure)
timeline_overhead_figure = _as_figure(timeline_figures.overhead_figure)
