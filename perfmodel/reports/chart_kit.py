"""What every figure builder of perfmodel/reports/figures.py shares: the figure as plotly's JSON (plain dicts, the
form plotly.js draws and the report embeds, so a report validates nothing through plotly's Python classes), the
layout, the empty chart that says why, and how a measured figure is drawn with its interval (bands, asymmetric error
bars, the note that names the interval).

A figure is `{"data": [trace, ...], "layout": {...}}` with every property spelled out as plotly.js reads it
(`{"title": {"text": ...}}`, `{"marker": {"color": ...}}`); its layout names its template (`TEMPLATE`), which the
report stores once and `go.Figure(spec)` resolves (app/charts.py). Values are plain Python (lists, floats, str);
a NaN stands for a missing value (the report writes it as null, perfmodel/reports/html.py).

A measured time or TFLOP/s is drawn with its interval: the bootstrap 95% CI of the median where the run kept
samples, else p20–p80 of the repetitions, read by `perfmodel.reports.compare.time_intervals` from the frame's timing
columns; TFLOP/s bounds are the time bounds converted (the upper TFLOP/s end comes from the lower time end).
"""

from __future__ import annotations

import copy

import pandas as pd

from perfmodel.reports import compare, palette

Figure = dict  # {"data": [trace dicts], "layout": {...}}: plotly's figure JSON

NOTE = palette.ROOFLINE  # the grey of the notes above and below a plot (text, not a mark)
TEMPLATE = "plotly_white"  # plotly's template of that name (plotly.io.templates), named by every figure's layout
# legend at the right, one entry a line: above the plot, a long legend (stall reasons, peers) ran into the title
LAYOUT = dict(template=TEMPLATE, margin=dict(l=60, r=20, t=60, b=60), height=420,
              legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02))


def figure() -> Figure:
    return {"data": [], "layout": {}}


def title_of(value: str) -> dict:
    """A title as plotly.js reads it (plotly.py's `title="..."` shorthand)."""
    return {"text": value}


def axis(title: str, **props) -> dict:
    return {"title": title_of(title), **props}


def _plain(v):
    return v.tolist() if hasattr(v, "tolist") else v  # a column (Series, array) as a list, a NumPy number as Python's


def bar(**props) -> dict:
    """A bar trace; a column given for a property (x, y, customdata) becomes a list."""
    return {"type": "bar", **{k: _plain(v) for k, v in props.items()}}


def scatter(**props) -> dict:
    """A scatter trace; a column given for a property (x, y, customdata) becomes a list."""
    return {"type": "scatter", **{k: _plain(v) for k, v in props.items()}}


def finish(fig: Figure, title: str, **layout) -> Figure:
    """Set the figure's title and the rest of its layout (LAYOUT's keys among `layout`, copied: no two figures share
    a dict); the figure, for return."""
    fig["layout"].update(title=title_of(title), **copy.deepcopy(layout))
    return fig


def empty(title: str, why: str) -> Figure:
    """A chart with nothing to draw that says why in its middle."""
    fig = figure()
    fig["layout"]["annotations"] = [dict(showarrow=False, text=why, x=0.5, xref="paper", y=0.5, yref="paper")]
    return finish(fig, title, xaxis=dict(visible=False), yaxis=dict(visible=False), **LAYOUT)


def hline(fig: Figure, y: float, line: dict, label: str | None = None) -> None:
    """A horizontal line across the plot at `y` (plotly.py's `add_hline`), `label` above its left end."""
    fig["layout"].setdefault("shapes", []).append(dict(line=line, type="line", x0=0, x1=1, xref="x domain", y0=y,
                                                       y1=y, yref="y"))
    if label is not None:
        fig["layout"].setdefault("annotations", []).append(dict(showarrow=False, text=label, x=0, xanchor="left",
                                                                xref="x domain", y=y, yanchor="bottom", yref="y"))


_WHERE = {"above right": dict(x=1, y=1.01, xanchor="right", yanchor="bottom"),
          "above left": dict(x=0, y=1.01, xanchor="left", yanchor="bottom"),
          "below": dict(x=0, y=-0.22, xanchor="left", yanchor="top")}


def note(fig: Figure, text: str, where: str = "above right") -> None:
    """A line of small grey text above the plot at the right (the interval's place), above it at the left, or
    below it at the left."""
    fig["layout"].setdefault("annotations", []).append(dict(
        font=dict(color=NOTE, size=11), showarrow=False, text=text, xref="paper", yref="paper", **_WHERE[where]))


def band(x: list, low: pd.Series, high: pd.Series, name: str, color: str) -> dict:
    """A low..high range drawn as a floating bar (base = low)."""
    return bar(x=list(x), y=(high - low).tolist(), base=low.tolist(), name=name, marker=dict(color=color),
               customdata=[list(c) for c in zip(low.tolist(), high.tolist())],
               hovertemplate="%{customdata[0]:.3g} – %{customdata[1]:.3g}<extra>" + name + "</extra>")


def error_y(value: pd.Series, low: pd.Series, high: pd.Series, scale: float = 1.0) -> dict:
    """Asymmetric plotly error bars from a value and its interval's ends (no bar where an end is unknown)."""
    value, low, high = (pd.to_numeric(pd.Series(list(v)), errors="coerce") for v in (value, low, high))
    up = ((high - value) * scale).where(high.notna() & value.notna())
    down = ((value - low) * scale).where(low.notna() & value.notna())
    return dict(type="data", symmetric=False, array=up.tolist(), arrayminus=down.tolist(), thickness=1.5, width=5)


def measured_bounds(df: pd.DataFrame, tflops_col: str | None = None) -> pd.DataFrame:
    """Per row: `low`, `high` of the measured time (ms), or of `tflops_col` converted from the time interval
    (TFLOP/s x time / time bound), and the interval's label `kind` (None where the row has no interval)."""
    iv = compare.time_intervals(df)
    low, high = iv["time_ms_low"], iv["time_ms_high"]
    if tflops_col is not None:
        time_ms = pd.to_numeric(df["time_ms"], errors="coerce") if "time_ms" in df.columns else low * float("nan")
        tflops = pd.to_numeric(df[tflops_col], errors="coerce")
        low, high = tflops * time_ms / iv["time_ms_high"], tflops * time_ms / iv["time_ms_low"]
    return pd.DataFrame({"low": low.astype(float), "high": high.astype(float), "kind": iv["time_interval"]},
                        index=df.index)


def interval_note(fig: Figure, kinds) -> None:
    """Say above the plot which interval the error bars are (nothing when none is drawn)."""
    kinds = [k for k in dict.fromkeys(kinds) if isinstance(k, str) and k]
    if kinds:
        note(fig, "error bars: " + kinds[0] if len(kinds) == 1 else
             f"error bars: {compare.CI_LABEL} where a case kept samples, else {compare.PCT_RANGE}")


def hover_interval(b: pd.DataFrame) -> list:
    return [f"{lo:.4g} – {hi:.4g} ({k})" if isinstance(k, str) and pd.notna(lo) and pd.notna(hi) else "no interval"
            for lo, hi, k in zip(b["low"], b["high"], b["kind"])]


def present(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a stage table of stages the run holds (a plan stage the run did not include is `absent`)."""
    return frame[frame["status"] != "absent"] if "status" in frame.columns else frame
