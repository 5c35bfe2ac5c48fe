"""Pure figure builders: one analysis DataFrame in, one plotly Figure out; no I/O, no Streamlit.

They live in `perfmodel/` (not `app/`) because both the report builder (`perfmodel/reporting.py`) and the dashboard
draw them, and imports only run app -> perfmodel; `app/charts.py` re-exports them for the pages. Each builder
takes the frame the matching function of `perfmodel.analysis` returns (already filtered by the caller) and
never changes it.

A measured time or TFLOP/s is drawn with its interval as error bars (a peer's as a band): the bootstrap 95% CI
of the median where the run kept samples, else p20–p80, read by `perfmodel.compare.time_intervals` from the
frame's timing columns (`perfmodel.reporting.collect` adds them with `compare.with_timing_intervals`); TFLOP/s
bounds are the time bounds converted (the upper TFLOP/s end comes from the lower time end). A note above the
plot says which interval the bars are.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from collectors.metrics import STALL_REASONS
from perfmodel import compare
from perfmodel.constraint_map import REASON_TO_CONSTRAINT

MEASURED = "#1f77b4"
EINSTEIN_ABS = "rgba(214, 39, 40, 0.25)"
EINSTEIN_REL = "rgba(255, 127, 14, 0.30)"
ANALYTIC = "#2ca02c"
BOUND = "#7f7f7f"
PEER_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
CONSTRAINT_COLORS = {1: "#d62728", 2: "#ff7f0e", 3: "#9467bd", 4: "#1f77b4"}
TERM_COLORS = {"tensor_ms": "#1f77b4", "exp_ms": "#ff7f0e", "hbm_ms": "#2ca02c", "launch_ms": "#d62728",
               "wave_ms": "#9467bd"}
# The predictive model's additive terms (perfmodel.model_cases.MODEL_TERMS, from ModelPrediction.terms()), stacked.
# A term that is the bound's too keeps the bound's colour (the wave tail, HBM, the exposed launch); the model's
# own terms take colours no other chart uses (plotly's D3 palette's indigo and olive, "tab20b").
MODEL_TERM_COLORS = {"steady_ms": "#5254a3", "tail_ms": TERM_COLORS["wave_ms"], "prologue_epilogue_ms": "#8ca252",
                     "hbm_excess_ms": TERM_COLORS["hbm_ms"], "launch_ms": TERM_COLORS["launch_ms"]}
MODEL_TERM_NAMES = {"steady_ms": "steady state", "tail_ms": "wave tail", "prologue_epilogue_ms": "prologue/epilogue",
                    "hbm_excess_ms": "HBM beyond compute", "launch_ms": "exposed launch"}
MODEL = "#000000"  # the predictive model's own time, in every chart that draws it (no peer or term is black)
# One fixed colour per stall reason, the same in every chart that colours stall reasons: plotly's qualitative
# Dark24 palette (plotly.colors.qualitative.Dark24, 24 colours made for a white background) in the order of
# collectors.metrics.STALL_REASONS (19 reasons), so no two reasons share a colour and a reason keeps its colour
# whichever reasons a frame holds (tests/test_charts.py checks both). A reason outside STALL_REASONS (a newer ncu)
# is drawn in STALL_OTHER, the palette's last colour, which no listed reason uses, until it is added there.
STALL_COLORS: dict[str, str] = dict(zip(STALL_REASONS, qualitative.Dark24[:-1]))
STALL_OTHER = qualitative.Dark24[-1]

# legend at the right, one entry a line: above the plot, a long legend (stall reasons, peers) ran into the title
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=60), height=420,
               legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02))


def _empty(title: str, why: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=why, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis=dict(visible=False), yaxis=dict(visible=False), **_LAYOUT)
    return fig


def _band(x: list, low: pd.Series, high: pd.Series, name: str, color: str) -> go.Bar:
    """A low..high range drawn as a floating bar (base = low)."""
    return go.Bar(x=x, y=(high - low).tolist(), base=low.tolist(), name=name, marker_color=color,
                  customdata=list(zip(low.tolist(), high.tolist())),
                  hovertemplate="%{customdata[0]:.3g} – %{customdata[1]:.3g}<extra>" + name + "</extra>")


def _error_y(value: pd.Series, low: pd.Series, high: pd.Series) -> dict:
    """Asymmetric plotly error bars from a value and its interval's ends (no bar where an end is unknown)."""
    value, low, high = (pd.to_numeric(pd.Series(list(v)), errors="coerce") for v in (value, low, high))
    up = (high - value).where(high.notna() & value.notna())
    down = (value - low).where(low.notna() & value.notna())
    return dict(type="data", symmetric=False, array=up.tolist(), arrayminus=down.tolist(), thickness=1.5, width=5)


def _measured_bounds(df: pd.DataFrame, tflops_col: str | None = None) -> pd.DataFrame:
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


def _interval_note(fig: go.Figure, kinds) -> None:
    """Say above the plot which interval the error bars are (nothing when none is drawn)."""
    kinds = [k for k in dict.fromkeys(kinds) if isinstance(k, str) and k]
    if not kinds:
        return
    text = ("error bars: " + kinds[0] if len(kinds) == 1 else
            f"error bars: {compare.CI_LABEL}, or {compare.PCT_LABEL} where a case has no samples")
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=1, y=1.01, xanchor="right",
                       yanchor="bottom", font=dict(size=11, color=BOUND))


def _hover_interval(b: pd.DataFrame) -> list:
    return [f"{lo:.4g} – {hi:.4g} ({k})" if isinstance(k, str) and pd.notna(lo) and pd.notna(hi) else "no interval"
            for lo, hi, k in zip(b["low"], b["high"], b["kind"])]


def stages_figure(stages: pd.DataFrame, peers: pd.DataFrame | None = None) -> go.Figure:
    """Measured TFLOP/s per stage against the Einstein bands, each stage's bound and the config's roofline.

    `stages`: rows of `analysis.stage_table` for ONE config; `peers`: rows of `analysis.peer_table` for the
    same config (drawn as horizontal reference lines)."""
    title = "Stages: predicted vs measured TFLOP/s"
    if stages.empty:
        return _empty(title, "no stage rows for this selection")
    df = stages.sort_values("stage")
    x = df["label"].tolist()
    fig = go.Figure()
    for lo, hi, name, color in (("einstein_abs_low_tflops", "einstein_abs_high_tflops",
                                 "Einstein target (as written)", EINSTEIN_ABS),
                                ("einstein_rel_low_tflops", "einstein_rel_high_tflops",
                                 "Einstein relative (gains on measured stage 0)", EINSTEIN_REL)):
        fig.add_trace(_band(x, df[lo], df[hi], name, color))
        # a single-figure target (low == high, e.g. "110") has no height as a bar: mark it with a tick
        point = (df[hi] - df[lo]).abs() < 1e-9
        fig.add_trace(go.Scatter(x=[v for v, p in zip(x, point) if p], y=df.loc[point, lo].tolist(),
                                 mode="markers", name=name + " (single figure)", showlegend=False,
                                 marker=dict(symbol="line-ew-open", size=40, color=color.replace("0.25", "0.9")
                                             .replace("0.30", "0.9"), line=dict(width=3))))
    fig.add_trace(go.Scatter(x=x, y=df["bound_tflops"], mode="lines+markers", name="bound",
                             line=dict(color=ANALYTIC, dash="dot")))
    if "model_tflops" in df.columns and df["model_tflops"].notna().any():  # model_cases.with_model's columns
        fig.add_trace(go.Scatter(x=x, y=df["model_tflops"], mode="lines+markers", name="model",
                                 line=dict(color=MODEL, dash="dot"), marker=dict(symbol="square", size=9),
                                 customdata=[_model_hover(r) for r in df.itertuples()],
                                 hovertemplate="%{y:.4g} TFLOP/s<br>%{customdata}<extra>model</extra>"))
    fig.add_trace(go.Scatter(x=x, y=df["roofline_tflops"], mode="lines", name="roofline",
                             line=dict(color=BOUND, dash="dash")))
    bounds = _measured_bounds(df, "measured_tflops")
    kinds = list(bounds["kind"])
    fig.add_trace(go.Scatter(x=x, y=df["measured_tflops"], mode="markers", name="measured",
                             marker=dict(color=MEASURED, size=13, symbol="diamond"),
                             error_y=dict(_error_y(df["measured_tflops"], bounds["low"], bounds["high"]),
                                          color=MEASURED),
                             customdata=_hover_interval(bounds),
                             hovertemplate="%{y:.4g} TFLOP/s<br>%{customdata}<extra>measured</extra>"))
    if peers is not None and not peers.empty:
        # a reference line per peer, named in the legend (labels on the lines overlap when peers are close), with
        # its interval as a faint band around it
        ordered = peers.dropna(subset=["measured_tflops"]).sort_values("measured_tflops", ascending=False)
        peer_bounds = _measured_bounds(ordered, "measured_tflops")
        kinds += list(peer_bounds["kind"])
        shapes = []  # set at once: fig.add_hline / add_hrect validate the whole layout on every call (slow)
        for i, (row, lo, hi) in enumerate(zip(ordered.itertuples(), peer_bounds["low"], peer_bounds["high"])):
            color = PEER_COLORS[i % len(PEER_COLORS)]
            across = dict(xref="x domain", x0=0, x1=1, yref="y")
            if pd.notna(lo) and pd.notna(hi):
                shapes.append(dict(type="rect", y0=lo, y1=hi, fillcolor=color, opacity=0.15, line_width=0,
                                   layer="below", **across))
            shapes.append(dict(type="line", y0=row.measured_tflops, y1=row.measured_tflops,
                               line=dict(color=color, width=1.5, dash="dashdot"), **across))
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{row.impl} {row.measured_tflops:.0f}",
                                     line=dict(color=color, width=1.5, dash="dashdot")))
        fig.update_layout(shapes=shapes)
    _interval_note(fig, kinds)
    fig.update_layout(title=title, barmode="overlay", xaxis_title="stage", yaxis_title="TFLOP/s", **_LAYOUT)
    return fig


def _bound_and_measured_ms(fig: go.Figure, x: list, df: pd.DataFrame) -> None:
    """The bound's total time and the measured time with its interval, as markers over a chart of time terms."""
    fig.add_trace(go.Scatter(x=x, y=df["bound_time_ms"], mode="markers", name="bound total",
                             marker=dict(color=ANALYTIC, size=11, symbol="x")))
    bounds = _measured_bounds(df)
    fig.add_trace(go.Scatter(x=x, y=df["time_ms"], mode="markers", name="measured",
                             marker=dict(color=MEASURED, size=13, symbol="diamond"),
                             error_y=dict(_error_y(df["time_ms"], bounds["low"], bounds["high"]), color=MEASURED),
                             customdata=_hover_interval(bounds),
                             hovertemplate="%{y:.4g} ms<br>%{customdata}<extra>measured</extra>"))
    _interval_note(fig, bounds["kind"])


def terms_figure(stages: pd.DataFrame) -> go.Figure:
    """The bound's time terms per stage beside the measured time (ONE config)."""
    title = "Bound: time terms per stage"
    if stages.empty:
        return _empty(title, "no stage rows for this selection")
    df = stages.sort_values("stage")
    x = df["label"].tolist()
    fig = go.Figure()
    for term, color in TERM_COLORS.items():
        if term in df:
            fig.add_trace(go.Bar(x=x, y=df[term], name=term.removesuffix("_ms"), marker_color=color))
    _bound_and_measured_ms(fig, x, df)
    fig.update_layout(title=title, barmode="group", xaxis_title="stage", yaxis_title="time (ms)", **_LAYOUT)
    return fig


def _model_hover(row) -> str:
    if getattr(row, "model_status", None) == "ok":
        return f"binding: {row.model_binding}; error {row.model_err:+.1%}"
    reason = getattr(row, "model_reason", None)
    return f"no prediction: {reason}" if isinstance(reason, str) and reason else "no prediction"


def model_terms_figure(stages: pd.DataFrame) -> go.Figure:
    """The predictive model's additive terms stacked per stage (they sum to its time), its binding term named
    above each bar, beside the bound's time and the measured one (ONE config; a stage table with the model's
    columns, perfmodel.model_cases.with_model). A stage without a prediction has no bar; the note says why."""
    title = "Model: time terms per stage (stacked)"
    if stages.empty:
        return _empty(title, "no stage rows for this selection")
    if "model_status" not in stages.columns:
        return _empty(title, "the predictive model was not computed for this selection")
    df = stages.sort_values("stage")
    ok = df["model_status"] == "ok"
    if not ok.any():
        reasons = [r for r in dict.fromkeys(df["model_reason"]) if isinstance(r, str) and r]
        return _empty(title, "no model: " + ("; ".join(reasons[:2]) or "no stage could be predicted"))
    x = df["label"].tolist()
    fig = go.Figure()
    for term, color in MODEL_TERM_COLORS.items():
        col = f"model_{term}"
        fig.add_trace(go.Bar(x=x, y=df[col].where(ok).tolist(), name=MODEL_TERM_NAMES[term], marker_color=color,
                             hovertemplate="%{y:.4g} ms<extra>" + MODEL_TERM_NAMES[term] + "</extra>"))
    fig.add_trace(go.Scatter(
        x=x, y=df["model_ms"].where(ok).tolist(), mode="text", name="binding term", showlegend=False,
        text=[f"{b}<br>{e:+.0%}" if o else "" for b, e, o in zip(df["model_binding"], df["model_err"], ok)],
        textposition="top center", hoverinfo="skip"))
    _bound_and_measured_ms(fig, x, df)
    missing = [f"{lab}: {r}" for lab, r, o in zip(x, df["model_reason"], ok) if not o and isinstance(r, str) and r]
    if missing:
        fig.add_annotation(text="no bar: " + "; ".join(missing[:3]) + (" …" if len(missing) > 3 else ""),
                           showarrow=False, xref="paper", yref="paper", x=0, y=-0.22, xanchor="left",
                           font=dict(size=11, color=BOUND))
    top = pd.to_numeric(pd.concat([df["model_ms"].where(ok), df["time_ms"], df["bound_time_ms"]])).max()
    yaxis = dict(title="time (ms)", **({"range": [0, float(top) * 1.2]} if pd.notna(top) else {}))  # room for text
    fig.update_layout(title=title, barmode="stack", xaxis_title="stage", yaxis=yaxis, **_LAYOUT)
    return fig


def _ci_error(gain: pd.Series, low: pd.Series, high: pd.Series, scale: float = 100.0) -> dict:
    """Plotly asymmetric error bars for a point estimate and its interval (NaN-safe: no bar where unknown)."""
    up = ((high - gain) * scale).where(high.notna() & gain.notna())
    down = ((gain - low) * scale).where(low.notna() & gain.notna())
    return dict(type="data", symmetric=False, array=up.tolist(), arrayminus=down.tolist(), thickness=1.5)


def constraints_figure(evidence: pd.DataFrame) -> go.Figure:
    """Per constraint and switch (perfmodel.ablation.constraint_evidence, ONE config): the plan's claimed gain band,
    the ablation gain with its 95% interval (primary), the one-switch flip, the stage-chain gain and the Amdahl
    bound from the counters. Markers take the constraint's colour; a constraint without a switch is labelled."""
    title = "Constraints: claimed vs ablation gain (95% CI) vs stage chain vs Amdahl bound"
    if evidence.empty:
        return _empty(title, "no constraint rows for this selection")
    df = evidence.sort_values(["constraint", "switch"], na_position="last")
    x = [f"#{c} {sw}" if isinstance(sw, str) and sw else f"#{c} {n} ({st.replace('_', ' ')})"
         for c, n, sw, st in zip(df["constraint"], df["name"], df["switch"], df["ablation_status"])]
    pct = 100.0
    colors = [CONSTRAINT_COLORS.get(int(c), MEASURED) for c in df["constraint"]]
    fig = go.Figure()
    fig.add_trace(_band(x, df["claimed_gain_low"] * pct, df["claimed_gain_high"] * pct, "claimed (plan)",
                        EINSTEIN_ABS))
    fig.add_trace(go.Scatter(
        x=x, y=df["ablation_gain"] * pct, mode="markers", name="ablation: best with vs best without (95% CI)",
        marker=dict(color=colors, size=13, symbol="circle"),
        error_y=_ci_error(df["ablation_gain"], df["ablation_ci_low"], df["ablation_ci_high"])))
    fig.add_trace(go.Scatter(
        x=x, y=df["flip_gain"] * pct, mode="markers", name="ablation: flip at the tuned config (95% CI)",
        marker=dict(color=colors, size=10, symbol="circle-open", line=dict(width=2)),
        error_y=_ci_error(df["flip_gain"], df["flip_ci_low"], df["flip_ci_high"])))
    fig.add_trace(go.Scatter(x=x, y=df["stage_chain_gain"] * pct, mode="markers",
                             name="stage chain (stage k vs k−1; not the technique alone; 95% CI where sampled)",
                             marker=dict(color=BOUND, size=11, symbol="diamond-open"),
                             error_y=_ci_error(df["stage_chain_gain"], df["stage_chain_ci_low"],
                                               df["stage_chain_ci_high"])))
    fig.add_trace(go.Scatter(x=x, y=df["amdahl_max_gain"] * pct, mode="markers", name="Amdahl bound (counters)",
                             marker=dict(color=BOUND, size=13, symbol="triangle-down")))
    fig.add_hline(y=0, line=dict(color="black", width=1))
    fig.update_layout(title=title, barmode="overlay", xaxis_title="constraint and switch", yaxis_title="gain (%)",
                      **_LAYOUT)
    return fig


def stalls_figure(stalls: pd.DataFrame) -> go.Figure:
    """Warp stall reasons stacked per implementation (fractions of all stall cycles), for ONE config."""
    title = "Warp stall reasons per stage"
    if stalls.empty:
        return _empty(title, "no stall counters in this run (ncu did not run or was not allowed)")
    order = list(dict.fromkeys(stalls.sort_values(["stage_order", "impl"])["impl"]))
    totals = stalls.groupby("reason")["fraction"].sum().sort_values(ascending=False)
    fig = go.Figure()
    for reason in totals.index:
        sub = stalls[stalls["reason"] == reason].set_index("impl").reindex(order)
        cid = REASON_TO_CONSTRAINT.get(reason)
        name = f"{reason} (#{cid})" if cid else reason
        fig.add_trace(go.Bar(x=order, y=(sub["fraction"] * 100).tolist(), name=name,
                             marker_color=STALL_COLORS.get(reason, STALL_OTHER),
                             marker_line=dict(width=2 if cid else 0, color=CONSTRAINT_COLORS.get(cid, "white"))))
    # tall enough for one legend line per reason (a legend taller than the figure scrolls)
    fig.update_layout(title=title, barmode="stack", xaxis_title="implementation",
                      yaxis_title="% of warp stall cycles",
                      **{**_LAYOUT, "height": max(480, 20 * len(totals) + 120)})
    return fig


def roofline_figure(roofline: pd.DataFrame) -> go.Figure:
    """Arithmetic intensity vs TFLOP/s on log axes with the tensor, exponential-unit and memory ceilings."""
    title = "Roofline: TFLOP/s vs arithmetic intensity"
    df = roofline.dropna(subset=["arithmetic_intensity"])
    if df.empty:
        return _empty(title, "no rows for this selection")
    lo = max(df["arithmetic_intensity"].min() / 8, 1.0)
    hi = df["arithmetic_intensity"].max() * 8
    xs = [lo * (hi / lo) ** (i / 60) for i in range(61)]
    fig = go.Figure()
    hbm = df["hbm_tbps"].dropna()
    if not hbm.empty:
        bw = float(hbm.iloc[0])
        fig.add_trace(go.Scatter(x=xs, y=[bw * x for x in xs], mode="lines", name=f"memory {bw:.2f} TB/s",
                                 line=dict(color="#2ca02c", dash="dash")))
    tensor = df["tensor_tflops"].dropna()
    if not tensor.empty:
        t = float(tensor.max())
        fig.add_trace(go.Scatter(x=[lo, hi], y=[t, t], mode="lines", name=f"tensor {t:.0f} TFLOP/s",
                                 line=dict(color="#d62728")))
    for D, sub in df.dropna(subset=["exp_ceiling_tflops"]).groupby("D"):
        e = float(sub["exp_ceiling_tflops"].iloc[0])
        fig.add_trace(go.Scatter(x=[lo, hi], y=[e, e], mode="lines", name=f"exp unit, D={D}: {e:.0f} TFLOP/s-eq",
                                 line=dict(color="#ff7f0e", dash="dot")))
    pts = df.dropna(subset=["measured_tflops"])
    notes = []
    for i, (kind, sub) in enumerate(pts.groupby("kind", sort=False)):
        color = MEASURED if kind == "stage" else PEER_COLORS[i % len(PEER_COLORS)]
        bounds = _measured_bounds(sub, "measured_tflops")
        notes += list(bounds["kind"])
        fig.add_trace(go.Scatter(
            x=sub["arithmetic_intensity"], y=sub["measured_tflops"], mode="markers", name=f"measured: {kind}",
            text=sub["impl"] + " " + sub["config_id"], customdata=_hover_interval(bounds),
            hovertemplate="%{text}<br>AI %{x:.0f} FLOP/B<br>%{y:.0f} TFLOP/s<br>%{customdata}<extra></extra>",
            error_y=dict(_error_y(sub["measured_tflops"], bounds["low"], bounds["high"]), color=color),
            marker=dict(size=11, symbol="diamond" if kind == "stage" else "circle", color=color)))
    _interval_note(fig, notes)
    fig.update_layout(title=title, xaxis=dict(type="log", title="arithmetic intensity (FLOP / byte of HBM)"),
                      yaxis=dict(type="log", title="TFLOP/s"), **_LAYOUT)
    return fig


def batching_figure(batching: pd.DataFrame, threshold: float = 5.0) -> go.Figure:
    """Per-sequence speed-up over B=1 against batch size, per implementation, with the plan's gate."""
    title = "Batching: per-sequence speed-up vs B=1"
    df = batching.dropna(subset=["speedup_vs_b1"])
    if df.empty:
        return _empty(title, "no batching measurements in this run")
    fig = go.Figure()
    for col in ("speedup_low", "speedup_high", "speedup_interval"):  # compare.with_speedup_intervals adds them
        if col not in df.columns:
            df = df.assign(**{col: None})
    for impl, sub in df.sort_values("B").groupby("impl", sort=False):
        bounds = pd.DataFrame({"low": pd.to_numeric(sub["speedup_low"], errors="coerce"),
                               "high": pd.to_numeric(sub["speedup_high"], errors="coerce"),
                               "kind": sub["speedup_interval"]})
        fig.add_trace(go.Scatter(x=sub["B"], y=sub["speedup_vs_b1"], mode="lines+markers", name=impl,
                                 customdata=list(zip(sub["per_seq_ms"], _hover_interval(bounds))),
                                 error_y=_error_y(sub["speedup_vs_b1"], bounds["low"], bounds["high"]),
                                 hovertemplate="B=%{x}: %{y:.2f}× (%{customdata[0]:.4f} ms/seq)<br>%{customdata[1]}"
                                 "<extra>" + impl + "</extra>"))
    _interval_note(fig, df["speedup_interval"])
    fig.add_hline(y=threshold, line=dict(color="#d62728", dash="dash"),
                  annotation_text=f"plan's gate ≥ {threshold:g}×", annotation_position="top left")
    sizes = sorted(df["B"].unique().tolist())
    fig.update_layout(title=title, xaxis=dict(type="log", title="batch size B", tickvals=sizes,
                                              ticktext=[str(b) for b in sizes]),
                      yaxis_title="speed-up per sequence (×)", **_LAYOUT)
    return fig


def compare_figure(comparison: pd.DataFrame) -> go.Figure:
    """Change in kernel time per implementation and config between two runs (negative = faster), with the range
    of changes both runs' intervals allow as error bars (perfmodel.compare.compare_runs: it excludes 0 exactly
    when the intervals are separate)."""
    title = "Run comparison: change in time"
    df = comparison.dropna(subset=["time_change_pct"])
    if df.empty:
        return _empty(title, "no cases measured in both runs")
    colors = {"regression": "#d62728", "improvement": "#2ca02c", "below threshold": "#bcbd22",
              "within noise": "#7f7f7f"}
    fig = go.Figure()
    one_config = df["config_id"].nunique() == 1  # then the implementation alone names a case
    for col in ("change_low_pct", "change_high_pct", "interval"):
        if col not in df.columns:
            df = df.assign(**{col: None})
    for verdict, sub in df.groupby("verdict", sort=False):
        x = sub["impl"] if one_config else sub["impl"] + " " + sub["config_id"]
        fig.add_trace(go.Bar(x=x, y=sub["time_change_pct"], name=verdict,
                             marker_color=colors.get(verdict, "#7f7f7f"),
                             error_y=dict(_error_y(sub["time_change_pct"], sub["change_low_pct"],
                                                   sub["change_high_pct"]), color="black"),
                             customdata=sub["interval"].fillna("no interval"),
                             hovertemplate="%{y:+.1f}% (%{customdata})<extra>" + verdict + "</extra>"))
    _interval_note(fig, [f"both runs' {k}" if isinstance(k, str) else k for k in df["interval"]])
    fig.update_layout(title=title + (f" at {df['config_id'].iloc[0]}" if one_config else ""),
                      xaxis_title="implementation" if one_config else "implementation / config",
                      yaxis_title="time change (%)",
                      **{**_LAYOUT, "height": 460})
    return fig

