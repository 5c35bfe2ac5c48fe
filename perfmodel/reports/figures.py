"""Pure figure builders: one analysis DataFrame in, one plotly figure out as its JSON (a plain dict,
perfmodel/reports/chart_kit.py), the form the report embeds; no I/O, no Streamlit, no plotly classes.

They live in `perfmodel/` (not `app/`) because both the report builder (`perfmodel/reports/reporting.py`) and the
dashboard draw them, and imports only run app -> perfmodel; `app/charts.py` hands them to the pages as plotly
Figures (`go.Figure(spec)`, which also checks every property against plotly's schema). Each builder
takes the frame the matching function of `perfmodel.reports.analysis` returns (already filtered by the caller) and
never changes it; `why`, where a builder takes it, is the reason the run measured nothing of what it draws (an
--interpret run: perfmodel.runs.unmeasured_reason), said instead of the builder's own guess.

Every colour comes from perfmodel/reports/palette.py, one meaning each in every chart; a measured time, TFLOP/s or gain
is drawn with its interval as error bars (a peer's as a band) and a note above the plot names the interval
(perfmodel/reports/chart_kit.py); a figure with no interval (stall shares and the Amdahl bound: one Nsight Compute pass)
says so.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from perfmodel.plan.constraint_map import REASON_TO_CONSTRAINT
from perfmodel.reports.chart_kit import (LAYOUT, Figure, axis, band, bar, empty, error_y, figure, finish, hline,
                                         hover_interval, interval_note, measured_bounds, note, present, scatter)
from perfmodel.reports.compare import OTHER_GPU
from perfmodel.reports.palette import (ABLATION, AMDAHL, AXIS, BOUND, CONSTRAINT_COLORS, EXP_UNIT, FLIP, HBM, MEASURED,
                                       MODEL, MODEL_TERM_COLORS, PLAN, PLAN_ON_STAGE0, ROOFLINE, STAGE_CHAIN,
                                       STALL_COLORS, STALL_OTHER, TENSOR, TERM_COLORS, VERDICT_COLORS, alpha,
                                       impl_colors, stage_number)

__all__ = ["stages_figure", "terms_figure", "model_terms_figure", "constraints_figure", "stalls_figure",
           "roofline_figure", "batching_figure", "compare_figure", "TERM_COLORS", "MODEL_TERM_COLORS",
           "MODEL_TERM_NAMES", "STALL_COLORS", "STALL_OTHER"]

MODEL_TERM_NAMES = {"steady_ms": "steady state", "tail_ms": "wave tail", "prologue_epilogue_ms": "prologue/epilogue",
                    "hbm_excess_ms": "HBM beyond compute", "launch_ms": "exposed launch"}
# the model's binding term (perfmodel.model.predictive: ITERATION_TERMS, "hbm", "launch") as a reader names it
BINDING_NAMES = {"tensor": "tensor cores", "mufu": "exponential unit", "issue": "instruction issue",
                 "smem": "shared memory", "chain": "dependency chain", "tma": "TMA loads", "hbm": "HBM",
                 "launch": "host launch"}
ONE_PASS = "one Nsight Compute pass per case, so no interval"
NAN = float("nan")


def _no_stages(title: str, stages: pd.DataFrame) -> Figure:
    return empty(title, "no stage of the plan is in this run" if len(stages) else "no stage rows for this selection")


def _nothing_timed(fig: Figure, df: pd.DataFrame, why: str | None) -> None:
    """Below a stage chart whose stages were none timed: why (the run's reason, else their statuses)."""
    if df["measured_tflops"].notna().any():
        return
    statuses = ", ".join(sorted({str(s).replace("_", " ") for s in df.get("status", [])}))
    note(fig, "no stage was timed: " + (why or f"status {statuses}"), "above left")


def stages_figure(stages: pd.DataFrame, peers: pd.DataFrame | None = None, why: str | None = None) -> Figure:
    """Measured TFLOP/s per stage against the Einstein bands, each stage's bound and the config's roofline.

    `stages`: rows of `analysis.stage_table` for ONE config (a plan stage the run does not hold is left out);
    `peers`: rows of `analysis.peer_table` for the same config (drawn as horizontal reference lines)."""
    title = "Stages: predicted vs measured TFLOP/s"
    df = present(stages).sort_values("stage")
    if df.empty:
        return _no_stages(title, stages)
    x = df["label"].tolist()
    fig = figure()
    for lo, hi, name, color in (("einstein_abs_low_tflops", "einstein_abs_high_tflops",
                                 "Einstein target (as written)", PLAN),
                                ("einstein_rel_low_tflops", "einstein_rel_high_tflops",
                                 "Einstein relative (gains on measured stage 0)", PLAN_ON_STAGE0)):
        fig["data"].append(band(x, df[lo], df[hi], name, alpha(color, 0.35)))
        # a single-figure target (low == high, e.g. "110") has no height as a bar: mark it with a tick
        point = (df[hi] - df[lo]).abs() < 1e-9
        fig["data"].append(scatter(x=[v for v, p in zip(x, point) if p], y=df.loc[point, lo].tolist(),
                                   mode="markers", name=name + " (single figure)", showlegend=False,
                                   marker=dict(symbol="line-ew-open", size=40, color=color, line=dict(width=3))))
    fig["data"].append(scatter(x=x, y=df["bound_tflops"], mode="lines+markers", name="bound",
                               line=dict(color=BOUND, dash="dot")))
    if "model_tflops" in df.columns and df["model_tflops"].notna().any():  # model_cases.with_model's columns
        fig["data"].append(scatter(x=x, y=df["model_tflops"], mode="lines+markers", name="model",
                                   line=dict(color=MODEL, dash="dot"), marker=dict(symbol="square", size=9),
                                   customdata=[_model_hover(*r) for r in zip(*(
                                       df[c] if c in df.columns else [None] * len(df)
                                       for c in ("model_status", "model_binding", "model_err", "model_reason")))],
                                   hovertemplate="%{y:.4g} TFLOP/s<br>%{customdata}<extra>model</extra>"))
    fig["data"].append(scatter(x=x, y=df["roofline_tflops"], mode="lines", name="roofline",
                               line=dict(color=ROOFLINE, dash="dash")))
    bounds = measured_bounds(df, "measured_tflops")
    kinds = list(bounds["kind"])
    fig["data"].append(scatter(x=x, y=df["measured_tflops"], mode="markers", name="measured",
                               marker=dict(color=MEASURED, size=13, symbol="diamond"),
                               error_y=dict(error_y(df["measured_tflops"], bounds["low"], bounds["high"]),
                                            color=MEASURED),
                               customdata=hover_interval(bounds),
                               hovertemplate="%{y:.4g} TFLOP/s<br>%{customdata}<extra>measured</extra>"))
    if peers is not None and not peers.empty:
        # a reference line per peer in the peer's own colour, named in the legend (labels on the lines overlap when
        # peers are close), with its interval as a faint band around it
        ordered = peers.dropna(subset=["measured_tflops"]).sort_values("measured_tflops", ascending=False)
        colors = impl_colors(ordered["impl"])
        peer_bounds = measured_bounds(ordered, "measured_tflops")
        kinds += list(peer_bounds["kind"])
        shapes = []
        for impl, tflops, lo, hi in zip(ordered["impl"], ordered["measured_tflops"], peer_bounds["low"],
                                        peer_bounds["high"]):
            color, across = colors[impl], dict(xref="x domain", x0=0, x1=1, yref="y")
            if pd.notna(lo) and pd.notna(hi):
                shapes.append(dict(type="rect", y0=lo, y1=hi, fillcolor=color, opacity=0.15, line=dict(width=0),
                                   layer="below", **across))
            shapes.append(dict(type="line", y0=tflops, y1=tflops,
                               line=dict(color=color, width=1.5, dash="dashdot"), **across))
            fig["data"].append(scatter(x=[None], y=[None], mode="lines", name=f"{impl} {tflops:.0f}",
                                       line=dict(color=color, width=1.5, dash="dashdot")))
        if shapes:
            fig["layout"]["shapes"] = shapes
    interval_note(fig, kinds)
    _nothing_timed(fig, df, why)
    return finish(fig, title, barmode="overlay", xaxis=axis("stage"), yaxis=axis("TFLOP/s"), **LAYOUT)


def _bound_and_measured_ms(fig: Figure, x: list, df: pd.DataFrame) -> None:
    """The bound's total time and the measured time with its interval, as markers over a chart of time terms."""
    fig["data"].append(scatter(x=x, y=df["bound_time_ms"], mode="markers", name="bound total",
                               marker=dict(color=BOUND, size=11, symbol="x")))
    bounds = measured_bounds(df)
    fig["data"].append(scatter(x=x, y=df["time_ms"], mode="markers", name="measured",
                               marker=dict(color=MEASURED, size=13, symbol="diamond"),
                               error_y=dict(error_y(df["time_ms"], bounds["low"], bounds["high"]), color=MEASURED),
                               customdata=hover_interval(bounds),
                               hovertemplate="%{y:.4g} ms<br>%{customdata}<extra>measured</extra>"))
    interval_note(fig, bounds["kind"])


def terms_figure(stages: pd.DataFrame, why: str | None = None) -> Figure:
    """The bound's time terms per stage beside the measured time (ONE config; absent stages left out)."""
    title = "Bound: time terms per stage"
    df = present(stages).sort_values("stage")
    if df.empty:
        return _no_stages(title, stages)
    x = df["label"].tolist()
    fig = figure()
    for term, color in TERM_COLORS.items():
        if term in df:
            fig["data"].append(bar(x=x, y=df[term], name=term.removesuffix("_ms"), marker=dict(color=color)))
    _bound_and_measured_ms(fig, x, df)
    _nothing_timed(fig, df, why)
    return finish(fig, title, barmode="group", xaxis=axis("stage"), yaxis=axis("time (ms)"), **LAYOUT)


def _model_hover(status, binding, err, reason) -> str:
    if status == "ok":
        return f"binding: {BINDING_NAMES.get(binding, binding)}; error {err:+.1%}"
    return f"no prediction: {reason}" if isinstance(reason, str) and reason else "no prediction"


def model_terms_figure(stages: pd.DataFrame) -> Figure:
    """The predictive model's additive terms stacked per stage (they sum to its time), its binding term and its
    error on the measured time above each bar, beside the bound's time and the measured one (ONE config; a stage
    table with the model's columns, perfmodel.model.model_cases.with_model). A stage without a prediction has no bar;
    the note says why."""
    title = "Model: time terms per stage (stacked)"
    df = present(stages).sort_values("stage")
    if df.empty:
        return _no_stages(title, stages)
    if "model_status" not in df.columns:
        return empty(title, "the predictive model was not computed for this selection")
    ok = df["model_status"] == "ok"
    if not ok.any():
        reasons = [r for r in dict.fromkeys(df["model_reason"]) if isinstance(r, str) and r]
        return empty(title, "no model: " + ("; ".join(reasons[:2]) or "no stage could be predicted"))
    x = df["label"].tolist()
    fig = figure()
    for term, color in MODEL_TERM_COLORS.items():
        col = f"model_{term}"
        fig["data"].append(bar(x=x, y=df[col].where(ok).tolist(), name=MODEL_TERM_NAMES[term], marker=dict(color=color),
                               hovertemplate="%{y:.4g} ms<extra>" + MODEL_TERM_NAMES[term] + "</extra>"))
    # "binding: dependency chain" names the model's term, "model −24%" its error (not the stage chain, not a gain)
    fig["data"].append(scatter(
        x=x, y=df["model_ms"].where(ok).tolist(), mode="text", name="binding term", showlegend=False,
        text=[f"binding:<br>{BINDING_NAMES.get(b, b)}<br>model {e:+.0%}" if o else ""
              for b, e, o in zip(df["model_binding"], df["model_err"], ok)],
        textposition="top center", textfont=dict(size=10), hoverinfo="skip"))
    _bound_and_measured_ms(fig, x, df)
    missing = [f"{lab}: {r}" for lab, r, o in zip(x, df["model_reason"], ok) if not o and isinstance(r, str) and r]
    if missing:
        note(fig, "no bar: " + "; ".join(missing[:3]) + (" …" if len(missing) > 3 else ""), "below")
    top = pd.to_numeric(pd.concat([df["model_ms"].where(ok), df["time_ms"], df["bound_time_ms"]])).max()
    yaxis = axis("time (ms)", **({"range": [0, float(top) * 1.35]} if pd.notna(top) else {}))  # room for text
    return finish(fig, title, barmode="stack", xaxis=axis("stage"), yaxis=yaxis, **LAYOUT)


def _constraint_label(c, name: str, switch, status) -> str:
    head = "<br>".join(textwrap.wrap(f"#{c} {name}", 22))
    if isinstance(switch, str) and switch:
        return f"{head}<br>switch {switch}"
    return head + ("<br>(not ablatable)" if status == "not_ablatable" else "<br>(no ablation in this run)")


def constraints_figure(evidence: pd.DataFrame) -> Figure:
    """Per constraint and switch (perfmodel.reports.ablation.constraint_evidence, ONE config): the plan's claimed gain
    band, the ablation gain with its 95% interval (primary), the one-switch flip, the stage-chain gain and the Amdahl
    bound from the counters, each in its own colour (the constraint is the x label, which also says when the run
    has no ablation of it; the stage chain is drawn whenever it was measured)."""
    title = "Constraints: claimed vs ablation gain (95% CI) vs stage chain vs Amdahl bound"
    if evidence.empty:
        return empty(title, "no constraint rows for this selection")
    df = evidence.sort_values(["constraint", "switch"], na_position="last")
    x = [_constraint_label(c, n, sw, st) for c, n, sw, st in
         zip(df["constraint"], df["name"], df["switch"], df["ablation_status"])]
    pct = 100.0
    fig = figure()
    fig["data"].append(band(x, df["claimed_gain_low"] * pct, df["claimed_gain_high"] * pct, "claimed (plan)",
                            alpha(PLAN, 0.45)))
    for col, name, color, symbol in (
            ("ablation", "ablation: best with vs best without (95% CI)", ABLATION, "circle"),
            ("flip", "ablation: flip at the tuned config (95% CI)", FLIP, "circle-open"),
            ("stage_chain", "stage chain: stage k vs k−1, not the technique alone (95% CI where sampled)",
             STAGE_CHAIN, "diamond-open")):
        fig["data"].append(scatter(
            x=x, y=df[f"{col}_gain"] * pct, mode="markers", name=name,
            marker=dict(color=color, size=12, symbol=symbol, line=dict(width=2, color=color)),
            error_y=dict(error_y(df[f"{col}_gain"], df[f"{col}_ci_low"], df[f"{col}_ci_high"], scale=pct),
                         color=color)))
    fig["data"].append(scatter(x=x, y=df["amdahl_max_gain"] * pct, mode="markers", name="Amdahl bound (counters)",
                               marker=dict(color=AMDAHL, size=13, symbol="triangle-down")))
    hline(fig, 0, dict(color=AXIS, width=1))
    note(fig, f"Amdahl bound: {ONE_PASS}")
    return finish(fig, title, barmode="overlay", xaxis=axis("constraint and switch", tickangle=0),
                  yaxis=axis("gain (%)"), **{**LAYOUT, "height": 500, "margin": dict(LAYOUT["margin"], b=110),
                                             "legend": dict(orientation="h", x=0, y=-0.42, yanchor="top")})


def stalls_figure(stalls: pd.DataFrame, why: str | None = None) -> Figure:
    """Warp stall reasons stacked per implementation, stages and peers (fractions of all stall cycles), for ONE
    config; a reason attributed to a constraint is outlined in the constraint's colour and named with its number."""
    title = "Warp stall reasons per implementation"
    if stalls.empty:
        return empty(title, f"no stall counters: {why}" if why else
                     "no stall counters in this run (ncu did not run or was not allowed)")
    order = list(dict.fromkeys(stalls.sort_values(["stage_order", "impl"])["impl"]))
    totals = stalls.groupby("reason")["fraction"].sum().sort_values(ascending=False)
    fig = figure()
    fraction = {(r, i): f for r, i, f in zip(stalls["reason"], stalls["impl"], stalls["fraction"])}  # one config
    for reason in totals.index:
        cid = REASON_TO_CONSTRAINT.get(reason)
        outline = dict(width=2, color=CONSTRAINT_COLORS[cid]) if cid in CONSTRAINT_COLORS else dict(width=0)
        name = f"{reason} (#{cid})" if cid else reason
        fig["data"].append(bar(x=order, y=[fraction.get((reason, i), NAN) * 100 for i in order], name=name,
                               marker=dict(color=STALL_COLORS.get(reason, STALL_OTHER), line=outline)))
    note(fig, f"shares of the stall cycles counted in {ONE_PASS}")
    # tall enough for one legend line per reason (a legend taller than the figure scrolls)
    return finish(fig, title, barmode="stack", xaxis=axis("implementation"), yaxis=axis("% of warp stall cycles"),
                  **{**LAYOUT, "height": max(480, 20 * len(totals) + 120)})


def roofline_figure(roofline: pd.DataFrame, why: str | None = None) -> Figure:
    """TFLOP/s against arithmetic intensity on log axes with the tensor, exponential-unit and memory ceilings, one
    labelled point per implementation and config in the implementation's colour: at the intensity Nsight Compute
    measured (FLOPs over the HBM bytes it counted) where the run has it, else at the nominal one (open marker)."""
    title = "Roofline: TFLOP/s vs arithmetic intensity"
    df = roofline.dropna(subset=["arithmetic_intensity"])
    if df.empty:
        return empty(title, f"nothing to place on the roofline: {why}" if why else "no case in this selection")
    measured_ai = pd.to_numeric(df.get("measured_ai", pd.Series(float("nan"), index=df.index)), errors="coerce")
    at_measured = measured_ai.notna() & (measured_ai > 0)
    df = df.assign(ai=measured_ai.where(at_measured, df["arithmetic_intensity"]), at_measured=at_measured)
    hbm, tensor = df["hbm_tbps"].dropna(), df["tensor_tflops"].dropna()
    ridge = float(tensor.max()) / float(hbm.iloc[0]) if not (hbm.empty or tensor.empty) else df["ai"].min()
    lo, hi = max(min(df["ai"].min(), ridge) / 2, 1.0), df["ai"].max() * 2  # the points and the ridge point
    xs = [lo * (hi / lo) ** (i / 60) for i in range(61)]
    fig = figure()
    if not hbm.empty:
        bw = float(hbm.iloc[0])
        fig["data"].append(scatter(x=xs, y=[bw * x for x in xs], mode="lines", name=f"memory {bw:.2f} TB/s",
                                   line=dict(color=HBM, dash="dash")))
    if not tensor.empty:
        t = float(tensor.max())
        fig["data"].append(scatter(x=[lo, hi], y=[t, t], mode="lines", name=f"tensor {t:.0f} TFLOP/s",
                                   line=dict(color=TENSOR)))
    for D, sub in df.dropna(subset=["exp_ceiling_tflops"]).groupby("D"):
        e = float(sub["exp_ceiling_tflops"].iloc[0])
        fig["data"].append(scatter(x=[lo, hi], y=[e, e], mode="lines", name=f"exp unit, D={D}: {e:.0f} TFLOP/s-eq",
                                   line=dict(color=EXP_UNIT, dash="dot")))
    pts = df.dropna(subset=["measured_tflops"])
    colors, one_config = impl_colors(pts["impl"]), pts["config_id"].nunique() == 1
    order = sorted(dict.fromkeys(pts["impl"]), key=lambda i: (stage_number(i) is None, stage_number(i) or 0, i))
    ranks = pts["measured_tflops"].rank(method="first").astype(int).tolist()
    # every point's interval and error bar at once (they are row by row), each implementation's picked out below
    bounds = measured_bounds(pts, "measured_tflops")
    bars = error_y(pts["measured_tflops"], bounds["low"], bounds["high"])
    col = {c: pts[c].tolist() for c in ("ai", "measured_tflops", "config_id", "at_measured", "kind") if c in pts}
    col.update(kind_of_interval=bounds["kind"].tolist(), hover=hover_interval(bounds), ranks=ranks, up=bars["array"],
               down=bars["arrayminus"])
    rows = pts.groupby("impl", sort=False).indices if len(pts) else {}
    notes = []
    for impl in order:
        sub = {c: [v[i] for i in rows[impl]] for c, v in col.items()}
        notes += sub["kind_of_interval"]
        stage = all(k == "stage" for k in sub["kind"]) if "kind" in sub else stage_number(impl) is not None
        symbols = [("diamond" if stage else "circle") + ("" if m else "-open") for m in sub["at_measured"]]
        source = ["measured" if m else "nominal" for m in sub["at_measured"]]
        fig["data"].append(scatter(
            x=sub["ai"], y=sub["measured_tflops"], mode="markers+text" if one_config else "markers", name=impl,
            text=[impl] * len(sub["ai"]), textfont=dict(size=10, color=colors[impl]),
            textposition=[("top right", "bottom left", "top left", "bottom right")[r % 4] for r in sub["ranks"]],
            customdata=[list(c) for c in zip(sub["config_id"], source, sub["hover"])],
            hovertemplate="%{text} %{customdata[0]}<br>AI %{x:.0f} FLOP/B (%{customdata[1]})<br>%{y:.0f} TFLOP/s"
                          "<br>%{customdata[2]}<extra></extra>",
            error_y=dict(bars, array=sub["up"], arrayminus=sub["down"], color=colors[impl]),
            marker=dict(size=11, symbol=symbols, color=colors[impl], line=dict(width=1.5, color=colors[impl]))))
    interval_note(fig, notes)
    if pts.empty and why:
        note(fig, f"nothing timed: {why}", "above left")
    xtitle = "arithmetic intensity (FLOP / byte of HBM), as Nsight Compute measured it" + (
        "; open markers: nominal (no counters)" if not pts["at_measured"].all() else "")
    return finish(fig, title, xaxis=axis(xtitle, type="log"), yaxis=axis("TFLOP/s", type="log"), **LAYOUT)


def batching_figure(batching: pd.DataFrame, threshold: float = 5.0, why: str | None = None) -> Figure:
    """Per-sequence speed-up over B=1 against batch size, per implementation in its colour, with the plan's gate.
    B=1 is 1× by definition and has no error bar."""
    title = "Batching: per-sequence speed-up vs B=1"
    df = batching.dropna(subset=["speedup_vs_b1"])
    if df.empty:
        return empty(title, f"no batching measurements: {why}" if why else "no batching measurements in this run")
    fig = figure()
    for col in ("speedup_low", "speedup_high", "speedup_interval"):  # compare.with_speedup_intervals adds them
        if col not in df.columns:
            df = df.assign(**{col: None})
    colors = impl_colors(df["impl"])
    for impl, sub in df.sort_values("B").groupby("impl", sort=False):
        one = sub["B"] == 1
        bounds = pd.DataFrame({"low": pd.to_numeric(sub["speedup_low"], errors="coerce").mask(one),
                               "high": pd.to_numeric(sub["speedup_high"], errors="coerce").mask(one),
                               "kind": sub["speedup_interval"]})
        hover = ["1× by definition" if o else h for o, h in zip(one, hover_interval(bounds))]
        stage = stage_number(impl) is not None  # a stage solid with diamonds, a peer or user kernel dashed
        fig["data"].append(scatter(x=sub["B"], y=sub["speedup_vs_b1"], mode="lines+markers", name=impl,
                                   line=dict(color=colors[impl], dash="solid" if stage else "dash"),
                                   marker=dict(color=colors[impl], symbol="diamond" if stage else "circle", size=8),
                                   customdata=list(zip(sub["per_seq_ms"], hover)),
                                   error_y=dict(error_y(sub["speedup_vs_b1"], bounds["low"], bounds["high"]),
                                                color=colors[impl]),
                                   hovertemplate="B=%{x}: %{y:.2f}× (%{customdata[0]:.4f} ms/seq)<br>%{customdata[1]}"
                                   "<extra>" + impl + "</extra>"))
    interval_note(fig, df.loc[df["B"] != 1, "speedup_interval"])
    hline(fig, threshold, dict(color=PLAN, dash="dash", width=2), label=f"plan's gate ≥ {threshold:g}×")
    sizes = sorted(df["B"].unique().tolist())
    return finish(fig, title, xaxis=axis("batch size B", type="log", tickvals=sizes, ticktext=[str(b) for b in sizes]),
                  yaxis=axis("speed-up per sequence (×)"), **LAYOUT)


def _why_no_comparison(cmp: pd.DataFrame) -> str:
    """Why no case of a compare_runs frame has a change: where its cases are and what they were."""
    if cmp.empty:
        return "neither run timed a case here"
    base, new = cmp["status_base"].notna(), cmp["status_new"].notna()
    parts = [f"{n} only in {side}" for n, side in ((int((base & ~new).sum()), "the baseline"),
                                                    (int((new & ~base).sum()), "this run")) if n]
    n_bad = int((base & new).sum())
    parts += [f"{n_bad} not timed ok in one of them"] if n_bad else []
    return "no case was timed ok in both runs: " + ", ".join(parts)


def compare_figure(comparison: pd.DataFrame, config_id: str | None = None, why: str | None = None) -> Figure:
    """Change in kernel time per implementation and config between two runs (negative = faster), coloured by
    verdict, with the range of changes both runs' intervals allow as error bars (perfmodel.reports.compare.compare_runs:
    it excludes 0 exactly when the intervals are separate). `config_id`: the config the rows were chosen for (the
    title names it); `why`: the reason there is nothing to compare there, when the caller knows it better than
    the rows (a config one run lacks)."""
    title = "Run comparison: change in time"
    df = comparison.dropna(subset=["time_change_pct"])
    if df.empty:
        return empty(title + (f" at {config_id}" if config_id else ""), why or _why_no_comparison(comparison))
    fig = figure()
    one_config = df["config_id"].nunique() == 1  # then the implementation alone names a case
    for col in ("change_low_pct", "change_high_pct", "interval"):
        if col not in df.columns:
            df = df.assign(**{col: None})
    for verdict, sub in df.groupby("verdict", sort=False):
        x = sub["impl"] if one_config else sub["impl"] + " " + sub["config_id"]
        fig["data"].append(bar(x=x, y=sub["time_change_pct"], name=verdict,
                               marker=dict(color=VERDICT_COLORS.get(verdict, VERDICT_COLORS["no interval"])),
                               error_y=dict(error_y(sub["time_change_pct"], sub["change_low_pct"],
                                                    sub["change_high_pct"]), color=AXIS),
                               customdata=sub["interval"].fillna("no interval"),
                               hovertemplate="%{y:+.1f}% (%{customdata})<extra>" + verdict + "</extra>"))
    interval_note(fig, [f"both runs' {k}" if isinstance(k, str) else k for k in df["interval"]])
    other = " (different GPUs: no verdict)" if (df["verdict"] == OTHER_GPU).any() else ""
    return finish(fig, title + (f" at {df['config_id'].iloc[0]}" if one_config else "") + other,
                  xaxis=axis("implementation" if one_config else "implementation / config"),
                  yaxis=axis("time change (%)"), showlegend=True,  # the verdict's colour, even when alone
                  **{**LAYOUT, "height": 460})
