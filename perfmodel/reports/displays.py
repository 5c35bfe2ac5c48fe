"""Display tables: the report's (and the dashboard's) frames with readable headers, units in the header, every
measured time with its interval, and "—" where a value was not measured. Pure DataFrame -> DataFrame; no I/O.
"""

from __future__ import annotations

import math

import pandas as pd

from perfmodel.reports import compare, gpu_state, timing_view
from perfmodel.reports.correctness import CHECKED


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _num(x, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "" if x is None else str(x)
    if not math.isfinite(v):
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _pct(x) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    return f"{v:+.1%}" if math.isfinite(v) else "—"


def _band(lo, hi) -> str:
    lo, hi = _num(lo), _num(hi)
    if lo == "—":
        return "—"
    return lo if lo == hi else f"{lo}–{hi}"


def _ms(x) -> str:
    """A time in ms to 4 significant figures ('—' when not measured)."""
    v = _f(x)
    return f"{v:.4g}" if math.isfinite(v) else "—"


def _span(low, high) -> str:
    """'0.4987–0.5012': an interval with as many significant figures (4 to 6) as it takes to tell its ends
    apart (a 95% CI of the median is often a few tenths of a percent wide); '—' without one."""
    lo, hi = _f(low), _f(high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "—"
    for digits in range(4, 7):
        a, b = f"{lo:.{digits}g}", f"{hi:.{digits}g}"
        if a != b:
            break
    return f"{a}–{b}"


def _interval_text(low, high, kind) -> str:
    """'0.4987–0.5012 (95% CI)', or '—' without an interval."""
    text = _span(low, high)
    if not kind or text == "—":
        return text
    return f"{text}: {kind}" if kind.endswith(")") else f"{text} ({kind})"  # no parentheses in parentheses


def _flag(v) -> str:
    """yes / no for a boolean flag, '—' where the run does not have it."""
    return "—" if v is None or pd.isna(v) else "yes" if bool(v) else "no"


def _time_columns(frame: pd.DataFrame) -> dict:
    """The time, its interval and the wide-CI flag of each row of a stage or peer table, and whether the GPU
    throttled while it was timed (for runs that sampled it)."""
    iv = compare.time_intervals(frame)
    wide = frame["wide_ci"] if "wide_ci" in frame.columns else [None] * len(frame)
    cols = {"time ms": [_ms(v) for v in frame["time_ms"]],
            "interval (ms)": [_interval_text(a, b, k) for a, b, k in
                              zip(iv["time_ms_low"], iv["time_ms_high"], iv["time_interval"])],
            "wide CI": [_flag(v) for v in wide]}
    if "timing_method" in frame.columns:  # which method gave each time (perfmodel/reports/timing_view.py)
        cols["timed by"] = [timing_view.METHOD_LABELS.get(m, "—") if isinstance(m, str) else "—"
                            for m in frame["timing_method"]]
        cols["host-bound"] = [_flag(v) for v in frame["host_bound"]]
    if gpu_state.has_gpu_state(frame):
        cols["throttled"] = gpu_state.throttled_column(frame)
    return cols


def gates_display(gates: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "gate": gates["gate"], "stage": gates["stage"], "kind": gates["kind"], "status": gates["status"],
        "measured": [_num(v) for v in gates["measured"]], "threshold": gates["threshold"],
        "detail": gates["detail"], "plan says": gates["quote"],
    })


def _model_ms_text(status, ms) -> str:
    return _ms(ms) if status == "ok" else "no model" if status == "no_model" else "not measured"


def model_display_columns(stages: pd.DataFrame) -> dict:
    """The predictive model's columns of a stage table that carries them (model_cases.with_model): its time beside
    the bound's, its error on the time, its binding term and, where it has no prediction, why."""
    if "model_status" not in stages.columns:
        return {}
    status = stages["model_status"].fillna("not_measured")
    return {
        "bound ms": [_ms(v) for v in stages["bound_time_ms"]],
        "model ms": [_model_ms_text(s, v) for s, v in zip(status, stages["model_ms"])],
        "err vs model": [_pct(v) if s == "ok" else "—" for s, v in zip(status, stages["model_err"])],
        "model binding": [b if s == "ok" and isinstance(b, str) else "—"
                          for s, b in zip(status, stages["model_binding"])],
        "model: why none": [r if s != "ok" and isinstance(r, str) else "" for s, r in
                            zip(status, stages["model_reason"])],
    }


def stages_display(stages: pd.DataFrame) -> pd.DataFrame:
    """A stage table for people; with the model's columns (model_cases.with_model) the model's time and error too
    (err vs model is model_ms / measured_ms - 1 on the time, as `perfmodel model score` gives it)."""
    return pd.DataFrame({
        "config": stages["config_id"], "stage": stages["label"], "impl": stages["impl"],
        "status": stages["status"], "measured TFLOP/s": [_num(v) for v in stages["measured_tflops"]],
        **_time_columns(stages),
        "plan target": [_band(a, b) for a, b in zip(stages["einstein_abs_low_tflops"],
                                                    stages["einstein_abs_high_tflops"])],
        "err vs target": [_pct(v) for v in stages["einstein_abs_err"]],
        "plan gains on stage 0": [_band(a, b) for a, b in zip(stages["einstein_rel_low_tflops"],
                                                              stages["einstein_rel_high_tflops"])],
        "err vs gains": [_pct(v) for v in stages["einstein_rel_err"]],
        "bound": [_num(v) for v in stages["bound_tflops"]],
        "err vs bound": [_pct(v) for v in stages["bound_err"]],
        **model_display_columns(stages),
        "roofline": [_num(v) for v in stages["roofline_tflops"]],
        "of roofline": [_pct(v - 1) if pd.notna(v) else "—" for v in stages["roofline_frac"]],
    })


def peers_display(peers: pd.DataFrame) -> pd.DataFrame:
    """The peers measured in the run (analysis.peer_table), with each time's interval."""
    return pd.DataFrame({
        "config": peers["config_id"], "impl": peers["impl"], "status": peers["status"],
        "measured TFLOP/s": [_num(v) for v in peers["measured_tflops"]], **_time_columns(peers),
        "error": peers["error"].fillna("") if "error" in peers.columns else "",
    })


def constraints_display(constraints: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "config": constraints["config_id"], "constraint": [f"#{c} {n}" for c, n in
                                                           zip(constraints["constraint"], constraints["name"])],
        "removed by": constraints["removed_by"], "vs": constraints["before"],
        "claimed": [f"{_pct(a)}…{_pct(b)}" for a, b in zip(constraints["claimed_gain_low"],
                                                          constraints["claimed_gain_high"])],
        "measured": [_pct(v) for v in constraints["measured_gain"]],
        "share f": [f"{v:.1%}" if pd.notna(v) else "—" for v in constraints["attributable_fraction"]],
        "Amdahl max": [_pct(v) for v in constraints["amdahl_max_gain"]],
        "evidence": constraints["evidence"], "verdict": constraints["verdict"],
    })


def _ci_text(gain, lo, hi) -> str:
    if not pd.notna(gain):
        return "—"
    return f"{_pct(gain)} [{_pct(lo)}, {_pct(hi)}]" if pd.notna(lo) and pd.notna(hi) else _pct(gain)


def evidence_display(ev: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.reports.ablation.constraint_evidence for people: the ablation first, the stage chain labelled."""
    return pd.DataFrame({
        "config": ev["config_id"], "constraint": [f"#{c} {n}" for c, n in zip(ev["constraint"], ev["name"])],
        "claimed": [f"{_pct(a)}…{_pct(b)}" for a, b in zip(ev["claimed_gain_low"], ev["claimed_gain_high"])],
        "switch": ev["switch"].fillna("—"),
        "ablation (best on vs off, 95% CI)": [_ci_text(g, lo, hi) for g, lo, hi in
                                              zip(ev["ablation_gain"], ev["ablation_ci_low"], ev["ablation_ci_high"])],
        "flip at tuned (95% CI)": [_ci_text(g, lo, hi) if st == "ok" else (st.replace("_", " ") if isinstance(st, str) else "—")
                                   for g, lo, hi, st in zip(ev["flip_gain"], ev["flip_ci_low"], ev["flip_ci_high"],
                                                            ev["flip_status"])],
        "stage chain": [f"{_ci_text(g, lo, hi)} ({t})" if t else "—" for g, lo, hi, t in
                        zip(ev["stage_chain_gain"], ev["stage_chain_ci_low"], ev["stage_chain_ci_high"],
                            ev["stage_chain"])],
        "Amdahl max": [_pct(v) for v in ev["amdahl_max_gain"]],
        "verdict": ev["verdict"], "why": ev["reason"].fillna(""),
    })


def stall_shift_display(shift: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Per config and switch, the stall reasons that moved most between technique off and on."""
    if shift.empty:
        return pd.DataFrame()
    rows = []
    for (cid, impl, sw), g in shift.groupby(["config_id", "impl", "switch"], sort=False):
        g = g.reindex(g["delta"].abs().sort_values(ascending=False).index).head(top)
        rows.append({"config": cid, "switch": sw, "largest shifts (off → on, share of stall cycles)": "; ".join(
            f"{r.reason} {r.off_fraction:.1%} → {r.on_fraction:.1%}" for r in g.itertuples())})
    return pd.DataFrame(rows)


def regressions_display(reg: pd.DataFrame) -> pd.DataFrame:
    if reg.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "config": reg["config_id"], "stage": reg["impl"], "vs": reg["before"],
        "slower by": [_pct(v) for v in reg["slowdown"]], "time (ms)": [f"{a:.4g} vs {b:.4g}" for a, b in
                                                                      zip(reg["time_ms"], reg["before_time_ms"])],
        "noise": reg["interval"], "ablation of what the stage adds": reg["explained_by"],
    })


def stalls_display(stalls: pd.DataFrame) -> pd.DataFrame:
    if stalls.empty:
        return pd.DataFrame()
    wide = stalls.pivot_table(index=["config_id", "stage_order", "impl"], columns="reason", values="fraction",
                              aggfunc="sum").reset_index().sort_values(["config_id", "stage_order"])
    reasons = [c for c in wide.columns if c not in ("config_id", "stage_order", "impl")]
    reasons.sort(key=lambda r: -wide[r].fillna(0).sum())
    out = wide[["config_id", "impl"]].rename(columns={"config_id": "config"})
    for r in reasons:
        out[r] = [f"{v:.0%}" if pd.notna(v) else "" for v in wide[r]]
    return out.reset_index(drop=True)


def roofline_display(roof: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "config": roof["config_id"], "impl": roof["impl"], "AI FLOP/B": [_num(v) for v in roof["arithmetic_intensity"]],
        "measured AI": [_num(v) for v in roof["measured_ai"]],
        "TFLOP/s": [_num(v) for v in roof["measured_tflops"]],
        "tensor": [_num(v) for v in roof["tensor_tflops"]], "exp unit": [_num(v) for v in roof["exp_ceiling_tflops"]],
        "memory": [_num(v) for v in roof["memory_ceiling_tflops"]], "limiter": roof["limiter"],
        "of roof": [f"{v:.0%}" if pd.notna(v) else "—" for v in roof["attainment"]],
    })


def batching_display(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "impl": summary["impl"], "shape": [f"H{h} S{s} D{d} {'causal' if c else 'full'} {t}" for h, s, d, c, t in
                                           zip(summary["H"], summary["S"], summary["D"], summary["causal"],
                                               summary["dtype"])],
        "B": [f"{a} → {b}" for a, b in zip(summary["B_from"], summary["B_to"])],
        "speed-up per sequence": [f"{v:.2f}×" if pd.notna(v) else "—" for v in summary["speedup"]],
        "gate": [f"≥ {v:g}×" for v in summary["threshold"]],
        "meets": ["yes" if m is True else "no" if m is False else "—" for m in summary["meets"]],
    })


def _ratio(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "∞" if v == math.inf else f"{v:.2f}" if math.isfinite(v) else "—"


NOT_MEASURED = "not measured"


def _ulps(v) -> str:
    """A whole number of ULPs ('∞' for a non-finite output)."""
    v = _f(v)
    return "∞" if v == math.inf else f"{v:,.0f}" if math.isfinite(v) else "—"


def _share(v) -> str:
    """A fraction as a percentage to two decimals, rounded down (99.999% reads 99.99%, never 100%)."""
    v = _f(v)
    return f"{math.floor(v * 10000) / 100:.2f}%" if math.isfinite(v) else "—"


# the rounded-reference columns (perfmodel.reports.correctness.ROUNDED_COLUMNS) as people read them: (header, formatter)
_ROUNDED_DISPLAY = {"max_ulp": ("max ULPs vs rounded ref", _ulps), "exact_frac": ("exactly rounded", _share),
                    "rms_ulp": ("RMS ULPs vs rounded ref", _num)}


def _rounded_cells(values, measured, checked, fmt) -> list[str]:
    """A rounded-reference figure per row: the figure where measured, "not measured" for a checked row of a run
    without the figures, '—' for a row that was never compared with the reference (failed, unavailable)."""
    return [fmt(v) if m == True else NOT_MEASURED if c else "—"  # noqa: E712 (None- and NaN-safe)
            for v, m, c in zip(values, measured, checked)]


def correctness_display(corr: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.reports.correctness.correctness_table for people: one row per case."""
    checked = list(corr["status"].isin(CHECKED))
    rounded = {header: _rounded_cells(corr[col], corr["rounded_measured"], checked, fmt)
               for col, (header, fmt) in _ROUNDED_DISPLAY.items()}
    return pd.DataFrame({
        "config": corr["config_id"], "impl": corr["impl"], "status": corr["status"],
        "max abs error": [_num(v) for v in corr["max_abs_err"]], "budget": [_num(v) for v in corr["budget_abs_err"]],
        "error / budget": [_ratio(v) for v in corr["err_over_budget"]],
        "within budget": [_flag(v) for v in corr["within_budget"]],
        **rounded,
        "plan allclose (rtol 1e-3, atol 2e-3)": [_flag(v) for v in corr["doc_allclose"]],
        "plan max error ≤ 0.06": [_flag(v) for v in corr["doc_max_err_ok"]],
        "error": corr["error"].fillna(""),
    })


def _summary_rounded(values, n_measured, n_checked, fmt) -> list[str]:
    """A worst rounded-reference figure per implementation, saying over how many cases when not all of them."""
    out = []
    for v, m, c in zip(values, n_measured, n_checked):
        if not c:
            out.append("—")
        elif not m:
            out.append(NOT_MEASURED)
        else:
            out.append(fmt(v) if m == c else f"{fmt(v)} ({m} of {c} cases)")
    return out


def rounded_summary_texts(corr: pd.DataFrame) -> dict[str, str]:
    """Over the cases of a correctness_table (possibly filtered): the worst max ULPs, the lowest share exactly
    rounded and the worst RMS ULPs against the rounded reference, as text ("not measured" for a run without them)."""
    checked = corr[corr["status"].isin(CHECKED)]
    measured = checked[checked["rounded_measured"] == True]  # noqa: E712 (None-safe)
    figures = {"worst max ULPs": (measured["max_ulp"].max(), _ulps),
               "lowest exactly rounded": (measured["exact_frac"].min(), _share),
               "worst RMS ULPs": (measured["rms_ulp"].max(), _num)}
    return {label: _summary_rounded([v], [len(measured)], [len(checked)], fmt)[0]
            for label, (v, fmt) in figures.items()}


def correctness_summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.reports.correctness.correctness_summary for people: one row per implementation."""
    worst = {"worst max ULPs": ("worst_max_ulp", _ulps), "lowest exactly rounded": ("lowest_exact_frac", _share),
             "worst RMS ULPs": ("worst_rms_ulp", _num)}
    return pd.DataFrame({
        "impl": summary["impl"], "kind": summary["kind"],
        "checked": [f"{a} of {b}" for a, b in zip(summary["n_checked"], summary["n_cases"])],
        # an implementation never checked (failed, unavailable) has no count of checks that held: "—", not 0
        **{h: [str(v) if n else "—" for v, n in zip(summary[c], summary["n_checked"])] for h, c in (
            ("within budget", "n_within_budget"), ("plan allclose", "n_doc_allclose"),
            ("plan max error ≤ 0.06", "n_doc_max_err_ok"))},
        "worst error / budget": [_ratio(v) for v in summary["worst_err_over_budget"]],
        **{header: _summary_rounded(summary[col], summary["n_rounded_measured"], summary["n_checked"], fmt)
           for header, (col, fmt) in worst.items()},
    })


def _change_text(v) -> str:
    return f"{v:+.1f}%" if pd.notna(v) else "—"


def comparison_display(cmp: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.reports.compare.compare_runs for people: both medians with their intervals, the change and the range of
    changes the intervals allow, the verdict."""
    return pd.DataFrame({
        "config": cmp["config_id"], "impl": cmp["impl"], "baseline ms": [_ms(v) for v in cmp["time_ms_base"]],
        "baseline interval": [_span(a, b) for a, b in zip(cmp["time_ms_low_base"], cmp["time_ms_high_base"])],
        "this run ms": [_ms(v) for v in cmp["time_ms_new"]],
        "this run interval": [_span(a, b) for a, b in zip(cmp["time_ms_low_new"], cmp["time_ms_high_new"])],
        "change": [_change_text(v) for v in cmp["time_change_pct"]],
        "change range": [f"{_change_text(a)} … {_change_text(b)}" if pd.notna(a) and pd.notna(b) else "—"
                         for a, b in zip(cmp["change_low_pct"], cmp["change_high_pct"])],
        "intervals": cmp["interval"].fillna("—"), "verdict": cmp["verdict"],
    })
