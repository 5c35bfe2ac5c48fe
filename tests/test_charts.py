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
    assert {"measured", "analytic model", "physical bound", "Einstein target (as written)",
            "Einstein relative (gains on measured stage 0)"} <= _names(fig)
    assert fig.layout.yaxis.title.text == "TFLOP/s" and fig.layout.xaxis.title.text == "stage"
    bands = [t for t in fig.data if t.type == "bar"]
    assert all(t.base is not None for t in bands)  # bands float from their low end
    assert len(fig.layout.shapes) == 2  # one reference line per peer (cuDNN, SDPA flash)
    measured = next(t for t in fig.data if t.name == "measured")
    assert len(measured.x) == 6


def test_terms_figure(run):
    st = analysis.stage_table(run)
    fig = charts.terms_figure(st[st.config_id == SEED.id])
    assert {"tensor", "exp", "hbm", "launch", "wave", "measured", "analytic total"} <= _names(fig)
    assert fig.layout.yaxis.title.text == "time (ms)"


def test_constraints_figure(run):
    c = analysis.constraint_table(run)
    fig = charts.constraints_figure(c[c.config_id == SEED.id])
    assert {"claimed (plan)", "measured (stage k vs k−1)", "Amdahl bound (counters)"} <= _names(fig)
    assert list(fig.data[1].x) == ["#1 Variable Execution Paths (Branching)", "#2 Kernel Launch Overhead",
                                   "#3 Global Synchronization (__syncthreads)", "#4 Memory Bandwidth Bottleneck"]
    assert fig.layout.yaxis.title.text == "gain (%)"


def test_stalls_figure_is_stacked(run):
    fig = charts.stalls_figure(analysis.stall_table(run))
    assert fig.layout.barmode == "stack"
    assert "long_scoreboard (#4)" in _names(fig) and "barrier (#3)" in _names(fig)
    assert list(fig.data[0].x)[0] == "stage0_baseline"


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
