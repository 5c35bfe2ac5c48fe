"""The figure builders: the traces and axes each one must have, and an empty frame gives a labelled empty chart."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from app import charts
from kernels.suites import SEED
from perfmodel import analysis, compare
from perfmodel.runs import load_run
from synthetic_run import make_run, synthetic_run_dir  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def run(synthetic_run_dir):
    return load_run(synthetic_run_dir)


def _names(fig: go.Figure) -> set:
    return {t.name for t in fig.data}


def test_stages_figure(run):
    st = analysis.stage_table(run)
    st = st[st.config_id == SEED.id]
    peers = analysis.peer_table(run)
    fig = charts.stages_figure(st, peers[peers.config_id == SEED.id])
    assert {"measured", "bound", "roofline", "Einstein target (as written)",
            "Einstein relative (gains on measured stage 0)"} <= _names(fig)
    assert fig.layout.yaxis.title.text == "TFLOP/s" and fig.layout.xaxis.title.text == "stage"
    bands = [t for t in fig.data if t.type == "bar"]
    assert all(t.base is not None for t in bands)  # bands float from their low end
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 2  # one reference line per peer (cuDNN, SDPA flash)
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 2  # ... each in its p20–p80 band
    measured = next(t for t in fig.data if t.name == "measured")
    assert len(measured.x) == 6


def test_terms_figure(run):
    st = analysis.stage_table(run)
    fig = charts.terms_figure(st[st.config_id == SEED.id])
    assert {"tensor", "exp", "hbm", "launch", "wave", "measured", "bound total"} <= _names(fig)
    assert fig.layout.yaxis.title.text == "time (ms)"


def test_constraints_figure(run):
    from perfmodel.ablation import constraint_evidence

    c = constraint_evidence(run)
    fig = charts.constraints_figure(c[c.config_id == SEED.id])
    assert {"claimed (plan)", "Amdahl bound (counters)"} <= _names(fig)
    assert any(n.startswith("ablation: best with vs best without") for n in _names(fig))
    assert any(n.startswith("stage chain") for n in _names(fig))
    # the bundled run predates the ablation: each constraint is shown with that status, never with a number
    assert list(fig.data[1].x) == [f"#{i} {n} (not measured)" for i, n in (
        (1, "Variable Execution Paths (Branching)"), (2, "Kernel Launch Overhead"),
        (3, "Global Synchronization (__syncthreads)"), (4, "Memory Bandwidth Bottleneck"))]
    assert fig.data[1].error_y.type == "data"
    assert fig.layout.yaxis.title.text == "gain (%)"


def test_stalls_figure_is_stacked(run):
    fig = charts.stalls_figure(analysis.stall_table(run))
    assert fig.layout.barmode == "stack"
    assert "long_scoreboard (#4)" in _names(fig) and "barrier (#3)" in _names(fig)
    assert list(fig.data[0].x)[0] == "stage0_baseline"


def _stall_colors(fig: go.Figure) -> dict:
    """reason -> the colour its bars are drawn in (a trace is named "reason" or "reason (#constraint)")."""
    return {t.name.split(" (#")[0]: t.marker.color for t in fig.data}


def test_stall_reasons_keep_one_colour_each_across_charts(run):
    from collectors.metrics import STALL_REASONS
    from perfmodel.figures import STALL_COLORS, STALL_OTHER

    assert set(STALL_COLORS) == set(STALL_REASONS)
    assert len(set(STALL_COLORS.values()) | {STALL_OTHER}) == len(STALL_REASONS) + 1  # no two reasons share one
    full = analysis.stall_table(run)
    # a second frame with other reasons and another order: only three reasons, the smallest made the largest
    part = full[full["reason"].isin(["barrier", "membar", "selected"])].copy()
    part.loc[part["reason"] == "membar", "fraction"] = 0.9
    first, second = _stall_colors(charts.stalls_figure(full)), _stall_colors(charts.stalls_figure(part))
    assert len(first) == full["reason"].nunique() and set(second) == {"barrier", "membar", "selected"}
    assert list(second)[0] == "membar" != list(first)[0]  # the trace order did change
    for reason, colour in second.items():
        assert colour == first[reason] == STALL_COLORS[reason]
    assert len(set(first.values())) == len(first)


def test_roofline_figure_has_three_ceilings_on_log_axes(run):
    fig = charts.roofline_figure(analysis.roofline_table(run))
    names = _names(fig)
    assert any(n.startswith("memory") for n in names) and any(n.startswith("tensor") for n in names)
    assert {n for n in names if n.startswith("exp unit")} == {"exp unit, D=64: 1065 TFLOP/s-eq",
                                                              "exp unit, D=128: 2130 TFLOP/s-eq"}
    assert {"measured: stage", "measured: peer"} <= names
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_batching_figure_has_the_gate_line(run):
    fig = charts.batching_figure(analysis.batching_table(run))
    assert {"stage3_persistent", "sdpa_cudnn"} == _names(fig)
    assert fig.layout.shapes[0].y0 == 5.0 and fig.layout.xaxis.type == "log"


def test_compare_figure(run, tmp_path):
    other = load_run(make_run(tmp_path, name="faster", scale=0.8))
    fig = charts.compare_figure(compare.compare_runs(other, run))
    assert _names(fig) == {"improvement"}
    assert fig.layout.yaxis.title.text == "time change (%)"


@pytest.mark.parametrize("builder", [charts.stages_figure, charts.terms_figure, charts.constraints_figure,
                                     charts.stalls_figure, charts.batching_figure])
def test_empty_frames_give_a_labelled_empty_chart(builder):
    fig = builder(pd.DataFrame(columns=["config_id", "stage", "label", "reason", "fraction", "impl",
                                        "stage_order", "constraint", "name", "speedup_vs_b1"]))
    assert len(fig.data) == 0 and fig.layout.annotations[0].text


# ---- uncertainty: every measured time or TFLOP/s is drawn with its interval ----------------------------------
@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """The report's tables of a synthetic run re-timed from samples (bootstrap CIs), and of the plain one."""
    from perfmodel.reporting import collect
    from test_compare import with_samples

    root = tmp_path_factory.mktemp("sampled")
    return (collect(load_run(with_samples(make_run(root, "with-samples"), seed=1))),
            collect(load_run(make_run(root, "old"))))


def _bars(trace) -> tuple[list, list]:
    e = trace.error_y
    assert e.type == "data" and e.symmetric is False
    return list(e.array), list(e.arrayminus)


def _note(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations if a.text.startswith("error bars"))


def test_stages_figure_draws_the_ci_in_tflops(sampled):
    data, _ = sampled
    st, pe = data.stages[data.stages.config_id == SEED.id], data.peers[data.peers.config_id == SEED.id]
    fig = charts.stages_figure(st, pe)
    measured = next(t for t in fig.data if t.name == "measured")
    up, down = _bars(measured)
    df = st.sort_values("stage")
    # the TFLOP/s bar runs from tflops x time / ci_high to tflops x time / ci_low
    expect_up = df["measured_tflops"] * df["time_ms"] / df["time_ms_ci_low"] - df["measured_tflops"]
    assert up == pytest.approx(expect_up.tolist()) and all(d > 0 for d in down)
    assert _note(fig) == "error bars: 95% CI"
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2 and all(r.y0 < r.y1 for r in rects)


def test_old_run_bars_are_p20_p80_and_labelled(sampled):
    _, old = sampled
    fig = charts.stages_figure(old.stages[old.stages.config_id == SEED.id])
    up, _ = _bars(next(t for t in fig.data if t.name == "measured"))
    assert all(u > 0 for u in up) and _note(fig) == "error bars: p20–p80, no samples"
    assert "p20–p80, no samples" in next(t for t in fig.data if t.name == "measured").customdata[0]


def test_terms_figure_draws_the_time_interval(sampled):
    data, _ = sampled
    st = data.stages[data.stages.config_id == SEED.id].sort_values("stage")
    fig = charts.terms_figure(st)
    up, down = _bars(next(t for t in fig.data if t.name == "measured"))
    assert up == pytest.approx((st["time_ms_ci_high"] - st["time_ms"]).tolist())
    assert down == pytest.approx((st["time_ms"] - st["time_ms_ci_low"]).tolist())


def test_roofline_points_have_error_bars(sampled):
    data, _ = sampled
    fig = charts.roofline_figure(data.roofline)
    for name in ("measured: stage", "measured: peer"):
        up, down = _bars(next(t for t in fig.data if t.name == name))
        assert up and all(u > 0 for u in up) and all(d > 0 for d in down)


def test_batching_speedups_have_error_bars(sampled):
    data, old = sampled
    fig = charts.batching_figure(data.batching)
    for trace in fig.data:
        up, down = _bars(trace)
        assert all(u >= 0 for u in up[1:]) and all(d >= 0 for d in down[1:])  # B=1 is 1x by definition
        assert any(u > 0 for u in up)
    assert _note(fig) == "error bars: 95% CI"
    # without timings for the batching configs there is no interval, and no bar rather than a made-up one
    assert _note(charts.batching_figure(old.batching)) == ""


def test_compare_figure_draws_the_range_of_changes(tmp_path, sampled):
    from test_compare import with_samples

    base = load_run(with_samples(make_run(tmp_path, "b"), seed=1))
    new = load_run(with_samples(make_run(tmp_path, "n", scale=1.1), seed=2))
    cmp = compare.compare_runs(new, base)
    fig = charts.compare_figure(cmp)
    (trace,) = fig.data
    up, down = _bars(trace)
    assert trace.name == "regression" and all(u > 0 for u in up) and all(0 < d < 10 for d in down)
    assert _note(fig) == "error bars: both runs' 95% CI"
