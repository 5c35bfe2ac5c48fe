"""Pure figure builders: one analysis DataFrame in, one plotly Figure out; no I/O, no Streamlit.

They live in `perfmodel/` (not `app/`) because both the report builder (`perfmodel/report.py`) and the dashboard
draw them, and imports only run app -> perfmodel; `app/charts.py` re-exports them for the pages. Each builder
takes the frame the matching function of `perfmodel.analysis` returns (already filtered by the caller) and
never changes it.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

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


def stages_figure(stages: pd.DataFrame, peers: pd.DataFrame | None = None) -> go.Figure:
    """Measured TFLOP/s per stage against the Einstein bands, the analytic model and the physical bound.

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
    fig.add_trace(go.Scatter(x=x, y=df["analytic_tflops"], mode="lines+markers", name="analytic model",
                             line=dict(color=ANALYTIC, dash="dot")))
    fig.add_trace(go.Scatter(x=x, y=df["bound_tflops"], mode="lines", name="physical bound",
                             line=dict(color=BOUND, dash="dash")))
    fig.add_trace(go.Scatter(x=x, y=df["measured_tflops"], mode="markers", name="measured",
                             marker=dict(color=MEASURED, size=13, symbol="diamond")))
    if peers is not None and not peers.empty:
        # a reference line per peer, named in the legend (labels on the lines overlap when peers are close)
        ordered = peers.dropna(subset=["measured_tflops"]).sort_values("measured_tflops", ascending=False)
        for i, row in enumerate(ordered.itertuples()):
            color = PEER_COLORS[i % len(PEER_COLORS)]
            fig.add_hline(y=row.measured_tflops, line=dict(color=color, width=1.5, dash="dashdot"))
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{row.impl} {row.measured_tflops:.0f}",
                                     line=dict(color=color, width=1.5, dash="dashdot")))
    fig.update_layout(title=title, barmode="overlay", xaxis_title="stage", yaxis_title="TFLOP/s", **_LAYOUT)
    return fig


def terms_figure(stages: pd.DataFrame) -> go.Figure:
    """The analytic model's time terms per stage beside the measured time (ONE config)."""
    title = "Analytic model: time terms per stage"
    if stages.empty:
        return _empty(title, "no stage rows for this selection")
    df = stages.sort_values("stage")
    x = df["label"].tolist()
    fig = go.Figure()
    for term, color in TERM_COLORS.items():
        if term in df:
            fig.add_trace(go.Bar(x=x, y=df[term], name=term.removesuffix("_ms"), marker_color=color))
    fig.add_trace(go.Scatter(x=x, y=df["analytic_time_ms"], mode="markers", name="analytic total",
                             marker=dict(color=ANALYTIC, size=11, symbol="x")))
    fig.add_trace(go.Scatter(x=x, y=df["time_ms"], mode="markers", name="measured",
                             marker=dict(color=MEASURED, size=13, symbol="diamond")))
    fig.update_layout(title=title, barmode="group", xaxis_title="stage", yaxis_title="time (ms)", **_LAYOUT)
    return fig


def constraints_figure(constraints: pd.DataFrame) -> go.Figure:
    """Per constraint: the plan's claimed gain band, the gain measured when its stage lands, the Amdahl bound."""
    title = "Constraints: claimed vs measured gain vs Amdahl bound"
    if constraints.empty:
        return _empty(title, "no constraint rows for this selection")
    df = constraints.sort_values("constraint")
    x = [f"#{c} {n}" for c, n in zip(df["constraint"], df["name"])]
    pct = 100.0
    fig = go.Figure()
    fig.add_trace(_band(x, df["claimed_gain_low"] * pct, df["claimed_gain_high"] * pct, "claimed (plan)",
                        EINSTEIN_ABS))
    fig.add_trace(go.Scatter(x=x, y=df["measured_gain"] * pct, mode="markers", name="measured (stage k vs k−1)",
                             marker=dict(color=MEASURED, size=13, symbol="diamond")))
    fig.add_trace(go.Scatter(x=x, y=df["amdahl_max_gain"] * pct, mode="markers", name="Amdahl bound (counters)",
                             marker=dict(color=BOUND, size=14, symbol="triangle-down")))
    fig.add_hline(y=0, line=dict(color="black", width=1))
    fig.update_layout(title=title, barmode="overlay", xaxis_title="constraint", yaxis_title="gain (%)", **_LAYOUT)
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
    for i, (kind, sub) in enumerate(pts.groupby("kind", sort=False)):
        fig.add_trace(go.Scatter(
            x=sub["arithmetic_intensity"], y=sub["measured_tflops"], mode="markers", name=f"measured: {kind}",
            text=sub["impl"] + " " + sub["config_id"],
            hovertemplate="%{text}<br>AI %{x:.0f} FLOP/B<br>%{y:.0f} TFLOP/s<extra></extra>",
            marker=dict(size=11, symbol="diamond" if kind == "stage" else "circle",
                        color=MEASURED if kind == "stage" else PEER_COLORS[i % len(PEER_COLORS)])))
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
    for impl, sub in df.sort_values("B").groupby("impl", sort=False):
        fig.add_trace(go.Scatter(x=sub["B"], y=sub["speedup_vs_b1"], mode="lines+markers", name=impl,
                                 customdata=sub["per_seq_ms"],
                                 hovertemplate="B=%{x}: %{y:.2f}× (%{customdata:.4f} ms/seq)<extra>" + impl
                                 + "</extra>"))
    fig.add_hline(y=threshold, line=dict(color="#d62728", dash="dash"),
                  annotation_text=f"plan's gate ≥ {threshold:g}×", annotation_position="top left")
    sizes = sorted(df["B"].unique().tolist())
    fig.update_layout(title=title, xaxis=dict(type="log", title="batch size B", tickvals=sizes,
                                              ticktext=[str(b) for b in sizes]),
                      yaxis_title="speed-up per sequence (×)", **_LAYOUT)
    return fig


def compare_figure(comparison: pd.DataFrame) -> go.Figure:
    """Change in kernel time per implementation and config between two runs (negative = faster)."""
    title = "Run comparison: change in time"
    df = comparison.dropna(subset=["time_change_pct"])
    if df.empty:
        return _empty(title, "no cases measured in both runs")
    colors = {"regression": "#d62728", "improvement": "#2ca02c", "within noise": "#7f7f7f"}
    fig = go.Figure()
    one_config = df["config_id"].nunique() == 1  # then the implementation alone names a case
    for verdict, sub in df.groupby("verdict", sort=False):
        x = sub["impl"] if one_config else sub["impl"] + " " + sub["config_id"]
        fig.add_trace(go.Bar(x=x, y=sub["time_change_pct"], name=verdict,
                             marker_color=colors.get(verdict, "#7f7f7f")))
    fig.update_layout(title=title + (f" at {df['config_id'].iloc[0]}" if one_config else ""),
                      xaxis_title="implementation" if one_config else "implementation / config",
                      yaxis_title="time change (%)",
                      **{**_LAYOUT, "height": 460})
    return fig

