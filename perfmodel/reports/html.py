"""The report as one self-contained HTML file: plotly.js inlined once (the basic bundle when every figure is a
bar, scatter or pie), every figure stored as JSON in a `<script type="application/json">` block beside the template
they share, so the file opens offline and a program can read the figures back (`figure_specs`). The figures come
as plotly's JSON already (perfmodel/reports/chart_kit.py): they are written out, never built as plotly Figures.
"""

from __future__ import annotations

import html
import json
import math
import pkgutil
from pathlib import Path

import pandas as pd

from perfmodel.reports.report_data import SECTION_INTRO, TITLES, ReportData, banners, meta_lines
from perfmodel.reports.sections import section_figures, section_notes, section_tables


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;color:#222}
h1{font-size:1.6rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
p.intro{color:#555;margin:.3rem 0 1rem} dl.meta{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dl.meta dt{font-weight:600} table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top} th{background:#f5f5f5}
td.pass{background:#e6f4ea} td.fail{background:#fde7e9} td.not_measured{background:#f1f3f4}
td.report{background:#fef7e0} .fig{margin:1rem 0} dd.warn{color:#a50e0e;font-weight:600}
p.note{color:#555;font-style:italic} p.banner{background:#fde7e9;border:1px solid #a50e0e;padding:.6rem 1rem;color:#a50e0e;font-weight:600}
"""

# every figure names the same template (chart_kit.LAYOUT's plotly_white, ~7 kB of JSON): it is stored once, in
# the block with id TEMPLATE_ID, and given back to each figure when it is drawn (and by figure_specs)
TEMPLATE_ID = "plotly-template"
_RENDER_JS = """
var template = JSON.parse(document.getElementById('""" + TEMPLATE_ID + """').textContent);
document.querySelectorAll('script.plotly-figure').forEach(function (s) {
  var spec = JSON.parse(s.textContent);
  if (spec.layout.template === undefined) { spec.layout.template = template; }
  Plotly.newPlot(s.dataset.target, spec.data, spec.layout, {responsive: true, displaylogo: false});
});
"""


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False, name=None):
        cells = []
        for col, v in zip(df.columns, row):
            cls = f' class="{v}"' if col == "status" and v in ("pass", "fail", "not_measured", "report") else ""
            cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# plotly.js's "basic" partial bundle (bar, scatter, pie; MIT licence, perfmodel/data/plotly-basic.LICENSE), the
# npm package plotly.js-basic-dist-min at the version plotly.py itself embeds: 1.2 MB instead of the full 4.8 MB.
PLOTLY_BASIC = Path(__file__).resolve().parents[1] / "data" / "plotly-basic.min.js"
PLOTLY_BASIC_VERSION = "4.1.1"
PLOTLY_BASIC_TRACES = frozenset({"bar", "scatter", "pie"})


def plotly_js(figs) -> str:
    """The plotly.js to embed: the basic bundle when every trace is one of its types and it matches plotly.py's
    plotly.js version, else the full bundle plotly.py ships (never a report whose charts cannot draw)."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    types = {trace["type"] for fig in figs for trace in fig["data"]}
    if types <= PLOTLY_BASIC_TRACES and get_plotlyjs_version() == PLOTLY_BASIC_VERSION and PLOTLY_BASIC.is_file():
        return PLOTLY_BASIC.read_text(encoding="utf-8")
    return get_plotlyjs()


_WARN = ' class="warn"'  # a header line that qualifies the run's figures (timed while throttled, other kernels)
_WARNED = ("throttled", "kernels")


def to_html(data: ReportData) -> str:
    figs = section_figures(data)
    tables = section_tables(data)
    notes = section_notes(data)
    parts = [f"<h1>Predicted vs measured: {html.escape(data.run.run_id)}</h1>"]
    parts += [f'<p class="banner" role="alert">{html.escape(b)}</p>' for b in banners(data)]
    parts.append('<dl class="meta">')
    parts += [f"<dt>{html.escape(k)}</dt><dd{_WARN if k in _WARNED else ''}>{html.escape(v)}</dd>"
              for k, v in meta_lines(data.run)]
    if data.baseline is not None:
        parts.append(f"<dt>baseline</dt><dd>{html.escape(data.baseline.run_id)}</dd>")
    parts.append("</dl>")
    n = 0
    template = None
    for key in SECTION_INTRO:
        if key == "comparison" and data.comparison is None:
            continue
        parts += [f'<section id="{key}"><h2>{html.escape(TITLES[key])}</h2>',
                  f'<p class="intro">{html.escape(SECTION_INTRO[key])}</p>']
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes.get(key, [])]
        if key == "headlines":
            parts.append("<ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in data.headlines) + "</ul>")
        for spec in figs.get(key, []):
            n += 1
            layout = dict(spec.get("layout", {}))
            if "template" in layout and (template is None or layout["template"] == template):
                template = layout.pop("template")  # the shared one: drawn with it, stored once
            elif "template" in layout:  # another one (no builder draws one): in the figure itself
                layout["template"] = _template(layout["template"])
            spec = _figure_json({**spec, "layout": layout})
            parts.append(f'<div class="fig" id="fig-{n}"></div>'
                         f'<script type="application/json" class="plotly-figure" data-target="fig-{n}">{spec}</script>')
        for caption, df in tables.get(key, []):
            if caption:
                parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(_html_table(df))
        parts.append("</section>")
    parts.append(f'<script type="application/json" id="{TEMPLATE_ID}">{_figure_json(_template(template))}</script>')
    title = html.escape(f"perfmodel report: {data.run.run_id}")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{plotly_js(f for fs in figs.values() for f in fs)}</script></head><body>"
            + "\n".join(parts) + f"<script>{_RENDER_JS}</script></body></html>")


def _template(name_or_spec) -> dict:
    """A layout's template as plotly.js reads it: plotly's template of that name, or the template itself. A built-in
    one is read from plotly's own file of it, as plotly.io.templates loads it (unvalidated), without building the
    Template class (its import alone costs a tenth of the report's second)."""
    if not isinstance(name_or_spec, str):
        return name_or_spec or {}
    try:
        raw = pkgutil.get_data("plotly", f"package_data/templates/{name_or_spec}.json")
    except OSError:  # not a built-in template (e.g. "plotly+presentation"): plotly resolves it
        raw = None
    if raw is not None:
        return json.loads(raw)
    import plotly.io

    return plotly.io.templates[name_or_spec].to_plotly_json()


def _json_ready(v):
    """`v` with what JSON lacks made plain: a missing or infinite number as null (as plotly.js reads it), NumPy
    numbers and arrays as Python's, tuples as lists."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    if v is None or isinstance(v, (str, int)):
        return v
    if hasattr(v, "tolist"):  # a NumPy number or array
        return _json_ready(v.tolist())
    return None if v is pd.NA or v is pd.NaT else v  # pandas' missing values


def _figure_json(spec) -> str:
    """A figure (or template) as JSON that can sit inside a <script> block."""
    return json.dumps(_json_ready(spec), ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def figure_specs(html_text: str) -> list[dict]:
    """The plotly figures embedded in a report, parsed back (for tests and tools)."""
    import re

    blocks = re.findall(r'<script type="application/json" class="plotly-figure"[^>]*>(.*?)</script>', html_text,
                        flags=re.S)
    shared = re.search(rf'<script type="application/json" id="{TEMPLATE_ID}">(.*?)</script>', html_text, flags=re.S)
    template = json.loads(shared.group(1).replace("<\\/", "</")) if shared else None
    specs = [json.loads(b.replace("<\\/", "</")) for b in blocks]
    for spec in specs:
        if template and "template" not in spec.get("layout", {}):
            spec.setdefault("layout", {})["template"] = template
    return specs
