"""`perfmodel report`: one run's predicted-vs-measured report as a self-contained HTML file or as Markdown.

Order: gates first, then headline verdicts, stages, constraints (with the stall-to-constraint mapping), stalls,
roofline, batching, correctness, and with a baseline run the comparison. Every measured time is shown with its
interval (perfmodel/reports/compare.py: the bootstrap 95% CI of the median, or p20–p80 labelled "no samples" for a run
made before samples were kept), in the tables and as error bars in the figures. Each section opens with one
sentence saying what it shows. The HTML inlines plotly.js once and stores every figure as JSON in a `<script type="application/json">`
block (the template they share once, beside them), so it opens offline and a program can read the figures back
(`figure_specs`); the Markdown carries the tables only. The stages section shows the predictive model beside the
bound (perfmodel.model.model_cases.model_table; `collect(..., predictive=False)`, `perfmodel report --no-model`, leaves
it out: it compiles each stage kernel).
"""

from __future__ import annotations


from perfmodel.reports.html import to_html
from perfmodel.reports.markdown import to_markdown
from perfmodel.reports.report_data import collect
from perfmodel.runs import Run


def build_report(run: Run, baseline: Run | None = None, fmt: str = "html", model=None,
                 predictive: bool = True) -> str:
    """The report text in `fmt` ("html" or "md"); `predictive=False` leaves the predictive model out."""
    data = collect(run, baseline, model, predictive)
    return to_html(data) if fmt == "html" else to_markdown(data)
