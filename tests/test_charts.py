"""The figure builders: the traces and axes each one must have, and an empty frame gives a labelled empty chart."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from app import charts
from kernels.suites import SEED
from perfmodel.reports import analysis, compare, limits
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
    from perfmodel.reports.ablation import constraint_evidence

    c = constraint_evidence(run)
    fig = charts.constraints_figure(c[c.config_id == SEED.id])
    assert {"claimed (plan)", "Amdahl bound (counters)"} <= _names(fig)
    assert any(n.startswith("ablation: best with vs best without") for n in _names(fig))
    assert any(n.startswith("stage chain") for n in _names(fig))
    # the synthetic run predates the ablation: each label says the ablation is what is missing (not "(not
    # measured)", which read as "nothing measured" while the stage chain is drawn beside it)
    labels = [x.replace("<br>", " ") for x in fig.data[1].x]
    assert labels == [f"#{i} {n} (no ablation in this run)" for i, n in (
        (1, "Variable Execution Paths (Branching)"), (2, "Kernel Launch Overhead"),
        (3, "Global Synchronization (__syncthreads)"), (4, "Memory Bandwidth Bottleneck"))]
    chain = next(t for t in fig.data if t.name.startswith("stage chain"))
    assert pd.Series(list(chain.y)).notna().sum() == 4  # ... while the stage chain is measured for all four
    assert fig.data[1].error_y.type == "data"
    assert fig.layout.yaxis.title.text == "gain (%)"


def test_constraints_figure_legend_shows_the_colours_drawn(run):
    # each series is drawn in ONE colour, its legend's (the markers took each constraint's colour while the legend
    # showed the first one, #1's red), and the Amdahl bound says it has no interval; no constraint colour is used
    from perfmodel.reports import palette
    from perfmodel.reports.ablation import constraint_evidence

    c = constraint_evidence(run)
    fig = charts.constraints_figure(c[c.config_id == SEED.id])
    for t in fig.data:
        assert isinstance(t.marker.color, str), t.name
    used = {palette.meaning_of(t.marker.color) for t in fig.data}
    assert used == {"plan", "ablation", "flip", "stage chain", "Amdahl"}
    assert any("Amdahl bound: one Nsight Compute pass per case, so no interval" in a.text
               for a in fig.layout.annotations)


def test_stalls_figure_is_stacked(run):
    fig = charts.stalls_figure(limits.stall_table(run))
    assert fig.layout.barmode == "stack"
    # a chart of stages and peers ("per stage" was wrong), whose shares have no interval: it says why
    assert fig.layout.title.text == "Warp stall reasons per implementation"
    assert any("one Nsight Compute pass per case, so no interval" in a.text for a in fig.layout.annotations)
    assert "long_scoreboard (#4)" in _names(fig) and "barrier (#3)" in _names(fig)
    assert list(fig.data[0].x)[0] == "stage0_baseline"


def _stall_colors(fig: go.Figure) -> dict:
    """reason -> the colour its bars are drawn in (a trace is named "reason" or "reason (#constraint)")."""
    return {t.name.split(" (#")[0]: t.marker.color for t in fig.data}


def test_stall_reasons_keep_one_colour_each_across_charts(run):
    from collectors.ncu.metrics import STALL_REASONS
    from perfmodel.reports.figures import STALL_COLORS, STALL_OTHER

    assert set(STALL_COLORS) == set(STALL_REASONS)
    assert len(set(STALL_COLORS.values()) | {STALL_OTHER}) == len(STALL_REASONS) + 1  # no two reasons share one
    full = limits.stall_table(run)
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
    fig = charts.roofline_figure(limits.roofline_table(run))
    names = _names(fig)
    assert any(n.startswith("memory") for n in names) and any(n.startswith("tensor") for n in names)
    assert {n for n in names if n.startswith("exp unit")} == {"exp unit, D=64: 1065 TFLOP/s-eq",
                                                              "exp unit, D=128: 2130 TFLOP/s-eq"}
    assert {"stage0_baseline", "stage5_full", "sdpa_cudnn", "sdpa_flash"} <= names  # a trace per implementation
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_roofline_points_sit_at_the_measured_intensity_and_are_labelled(run):
    # the run's ncu bytes give stage k's seed point its measured intensity (the nominal 512 FLOP/B stacked every
    # point in one column); a case without counters stays at the nominal one, drawn open, and the axis says so
    roof = limits.roofline_table(run)
    seed = roof[roof.config_id == SEED.id]
    fig = charts.roofline_figure(seed)
    s0 = next(t for t in fig.data if t.name == "stage0_baseline")
    row = seed[seed.impl == "stage0_baseline"].iloc[0]
    assert list(s0.x) == pytest.approx([row["measured_ai"]]) and row["measured_ai"] != row["arithmetic_intensity"]
    assert s0.mode == "markers+text" and list(s0.text) == ["stage0_baseline"]  # one config: labelled points
    peer = next(t for t in fig.data if t.name == "sdpa_cudnn")  # no ncu row: the nominal intensity, open marker
    assert list(peer.x) == [512.0] and list(peer.marker.symbol) == ["circle-open"]
    assert "as Nsight Compute measured it; open markers: nominal" in fig.layout.xaxis.title.text
    assert charts.roofline_figure(roof).data[-1].mode == "markers"  # every config: no labels to pile up


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
    from perfmodel.reports.report_data import collect
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
    label = "p20–p80 of the repetitions (this run kept no samples for a 95% interval)"  # not "no samples" alone
    assert all(u > 0 for u in up) and _note(fig) == f"error bars: {label}" and compare.PCT_LABEL == label
    assert label in next(t for t in fig.data if t.name == "measured").customdata[0]


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
    for name in ("stage3_persistent", "sdpa_cudnn"):
        up, down = _bars(next(t for t in fig.data if t.name == name))
        assert up and all(u > 0 for u in up) and all(d > 0 for d in down)


def test_batching_speedups_have_error_bars(sampled):
    data, old = sampled
    fig = charts.batching_figure(data.batching)
    for trace in fig.data:
        up, down = _bars(trace)
        assert all(u >= 0 for u in up[1:]) and all(d >= 0 for d in down[1:])
        assert any(u > 0 for u in up)
        assert list(trace.x)[0] == 1 and pd.isna(up[0]) and pd.isna(down[0])  # B=1 is 1x by definition: no bar
        assert trace.customdata[0][1] == "1× by definition"
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


# ---- one colour, one meaning, in every chart (../shared/CONVENTIONS.md, Charts) ----------------------------------
def _drawn(fig: go.Figure) -> list[tuple[str, str]]:
    """(colour, what it is drawn for) of every trace and shape of a figure: the trace's name, or for a shape the
    legend entry of the same colour (a peer's line and band)."""
    out = []
    for t in fig.data:
        marker, line = getattr(t, "marker", None), getattr(t, "line", None)
        colors = [marker.color] if marker is not None and marker.color is not None else []
        if marker is not None and marker.line is not None and marker.line.color is not None and marker.line.width:
            colors.append(marker.line.color)
        if line is not None and line.color is not None:
            colors.append(line.color)
        if getattr(t, "error_y", None) is not None and t.error_y.color is not None:
            colors.append(t.error_y.color)
        for c in colors:
            for one in ([c] if isinstance(c, str) else list(c)):
                out.append((one, t.name or ""))
    for sh in fig.layout.shapes:
        for c in (sh.line.color if sh.line else None, sh.fillcolor):
            if c:
                out.append((c, "shape"))
    return out


def _every_figure(run, h100, h200, root):
    from perfmodel.model import model_cases
    from perfmodel.reports.report_data import collect

    figs = []
    for r in (run, h100, h200):
        data = collect(r, predictive=False)
        model = model_cases.model_table(r, data.stages) if r is run else None
        for cid in data.stages["config_id"].unique():
            st, pe = data.stages[data.stages.config_id == cid], data.peers[data.peers.config_id == cid]
            st = model_cases.with_model(st, model)
            figs += [charts.stages_figure(st, pe), charts.terms_figure(st),
                     charts.stalls_figure(data.stalls[data.stalls.config_id == cid]),
                     charts.constraints_figure(data.evidence[data.evidence.config_id == cid])]
            if model is not None:
                figs.append(charts.model_terms_figure(st))
        figs += [charts.roofline_figure(data.roofline), charts.batching_figure(data.batching)]
    figs.append(charts.compare_figure(compare.compare_runs(h200, h100)))  # two GPUs
    for scale in (0.8, 1.0, 1.3):
        other = load_run(make_run(root, name=f"scaled-{scale}", scale=scale))
        figs.append(charts.compare_figure(compare.compare_runs(other, run)))
    return figs


@pytest.fixture(scope="module")
def bundled():
    from perfmodel.runs import resolve_run_dirs

    return tuple(load_run(d) for d in resolve_run_dirs(["20261124-173318-custom-nvidia-h100-80gb-hbm3",
                                                        "20261202-053909-seed-nvidia-h200"]))


def test_no_colour_means_two_things_across_every_chart(run, bundled, tmp_path_factory):
    """Every colour any builder draws is the palette's colour of what it draws, on the synthetic run and both
    bundled runs (issue 21 item 7: blue was measured, the tensor term and constraint #4; peer colours followed
    the TFLOP/s rank; Batching used plotly's defaults; the roofline's peers were flex's brown)."""
    from collections import defaultdict

    from perfmodel.reports import palette

    values = [palette.rgb(c) for c in palette.MEANINGS.values()]
    assert len(set(values)) == len(values)  # the table itself: no colour listed for two meanings
    seen = defaultdict(set)  # meaning -> what the charts drew in its colour
    for fig in _every_figure(run, *bundled, tmp_path_factory.mktemp("scaled")):
        for color, what in _drawn(fig):
            meaning = palette.meaning_of(color)
            assert meaning is not None, (fig.layout.title.text, what, color)  # a colour outside the palette
            seen[meaning].add(what)
    # an implementation is drawn in its own colour wherever it is named (batching, roofline, the peers' lines)
    for meaning, whats in seen.items():
        for what in whats - {"shape"}:
            impl = what.split(" ")[0]
            if impl in palette.impl_colors([impl]) and (palette.stage_number(impl) is not None
                                                        or impl in palette.PEER_COLORS):
                expect = (f"stage {palette.stage_number(impl)}" if palette.stage_number(impl) is not None
                          else f"peer {impl}")
                assert meaning == expect, (what, meaning)
    assert {"measured", "bound", "model", "roofline", "plan", "tensor", "HBM", "launch", "wave tail",
            "verdict different GPU", "verdict improvement", "verdict regression", "stage 3", "peer sdpa_cudnn",
            "peer flex"} <= set(seen)
    assert seen["measured"] == {"measured"} and seen["bound"] == {"bound", "bound total"}
    assert seen["plan"] == {"claimed (plan)", "Einstein target (as written)", "Einstein target (as written) "
                                                                              "(single figure)", "shape"}


def test_every_stage_and_peer_has_a_colour_of_its_own_in_every_run():
    from kernels.peers import PEERS
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.reports import palette

    stages = [s.impl for s in load_model().stages]
    peers = list(PEERS)
    colors = palette.impl_colors(stages + peers)
    assert all(palette.stage_number(s) == i for i, s in enumerate(stages))
    assert set(peers) <= set(palette.PEER_COLORS)  # a new peer needs its colour here
    assert len(set(colors.values())) == len(colors)
    # a peer keeps its colour whichever peers a chart shows and however fast each was (it followed the rank)
    assert palette.impl_colors(["sdpa_cudnn"]) == {"sdpa_cudnn": colors["sdpa_cudnn"]}
    # a user's kernels come from their own range, apart from each other in one chart
    mine = palette.impl_colors(["mine", "also_mine", "stage0_baseline"])
    assert {mine["mine"], mine["also_mine"]} <= set(palette.USER_COLORS) and mine["mine"] != mine["also_mine"]
    assert palette.impl_colors(["mine"])["mine"] in palette.USER_COLORS


def test_peer_lines_keep_their_colour_across_configs(run):
    from perfmodel.reports import palette

    st, pe = analysis.stage_table(run), analysis.peer_table(run)
    for cid in st["config_id"].unique():
        fig = charts.stages_figure(st[st.config_id == cid], pe[pe.config_id == cid])
        for t in fig.data:
            if t.name.startswith(("sdpa_cudnn ", "sdpa_flash ")):
                assert t.line.color == palette.PEER_COLORS[t.name.split(" ")[0]]


# ---- charts of a run that holds few stages or nothing timed -------------------------------------------------------
def _interpret_like(run):
    """The seed config's stage rows as an --interpret run of stage 0 and a user kernel has them: stage 0 not
    measured, the other plan stages absent."""
    st = analysis.stage_table(run)
    st = st[st.config_id == SEED.id].copy()
    st["status"] = ["not_measured" if i == "stage0_baseline" else "absent" for i in st["impl"]]
    st.loc[:, ["measured_tflops", "time_ms", "time_ms_p20", "time_ms_p80"]] = float("nan")
    return st


WHY = "the run was made with --interpret (the kernels ran on the CPU interpreter), so it holds no GPU timings"


def test_absent_stages_are_not_drawn_and_the_chart_says_why_nothing_was_timed(run):
    st = _interpret_like(run)
    for builder in (charts.stages_figure, charts.terms_figure):
        fig = builder(st, why=WHY)
        xs = {x for t in fig.data for x in (t.x or []) if x is not None}
        assert xs == {"Baseline"}, (builder.__name__, xs)  # six plan stages absent from the run: not drawn
        assert any(a.text == f"no stage was timed: {WHY}" for a in fig.layout.annotations)
    assert "status not measured" in " ".join(a.text for a in charts.stages_figure(st).layout.annotations)
    only_absent = st[st["status"] == "absent"]
    assert charts.stages_figure(only_absent).layout.annotations[0].text == "no stage of the plan is in this run"


def test_empty_charts_give_the_runs_reason(run):
    empty = limits.roofline_table(run).iloc[0:0]
    assert charts.roofline_figure(empty, why=WHY).layout.annotations[0].text == \
        f"nothing to place on the roofline: {WHY}"
    assert charts.stalls_figure(limits.stall_table(run).iloc[0:0], why=WHY).layout.annotations[0].text == \
        f"no stall counters: {WHY}"
    b = analysis.batching_table(run).iloc[0:0]
    assert charts.batching_figure(b, why="`perfmodel collect --suite batching` measures it").layout.annotations[
        0].text == "no batching measurements: `perfmodel collect --suite batching` measures it"


def test_model_labels_name_the_binding_term_and_the_models_error(run):
    # "chain −24%" read as the stage chain's gain: the label names the model's binding term and its error
    from perfmodel.model import model_cases

    st = analysis.stage_table(run)
    st = model_cases.with_model(st[st.config_id == SEED.id], model_cases.model_table(run, st))
    fig = charts.model_terms_figure(st)
    text = next(t for t in fig.data if t.name == "binding term").text
    ok = st.sort_values("stage")
    for label, (b, e) in zip(text, zip(ok["model_binding"], ok["model_err"])):
        name = {"chain": "dependency chain", "tensor": "tensor cores", "hbm": "HBM"}.get(b, b)
        assert label.startswith("binding:<br>") and label.endswith(f"model {e:+.0%}")
        assert f"<br>{name}<br>" in label or b not in ("chain", "tensor", "hbm")


def test_compare_figure_says_why_it_is_empty_and_keeps_its_config(run, tmp_path):
    other = load_run(make_run(tmp_path, name="other", scale=1.1))
    cmp = compare.compare_runs(other, run)
    none = cmp.assign(status_new=None, time_change_pct=float("nan"))[cmp.config_id == SEED.id]
    fig = charts.compare_figure(none, config_id=SEED.id)
    assert fig.layout.title.text == f"Run comparison: change in time at {SEED.id}"
    assert fig.layout.annotations[0].text == "no case was timed ok in both runs: 8 only in the baseline"
    why = "B1 is not in run x"
    assert charts.compare_figure(none, config_id=SEED.id, why=why).layout.annotations[0].text == why
    fig = charts.compare_figure(cmp[cmp.config_id == SEED.id])
    assert fig.layout.showlegend is True and _names(fig) == {"regression"}  # the verdict's colour is named
