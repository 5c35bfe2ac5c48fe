"""`perfmodel report`: HTML and Markdown written through the CLI and parsed back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from perfmodel.cli import main
from perfmodel.reports.html import figure_specs
from perfmodel.reports.report_data import SECTION_INTRO
from synthetic_run import make_run, synthetic_run_dir  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def html_report(synthetic_run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.html"
    start = time.perf_counter()
    assert main(["report", str(synthetic_run_dir), "--out", str(out)]) == 0
    elapsed = time.perf_counter() - start
    print(f"report (html) took {elapsed:.2f} s")
    return out.read_text(encoding="utf-8"), elapsed


def test_html_is_self_contained_with_plotly_inlined(html_report):
    text, _ = html_report
    assert text.startswith("<!DOCTYPE html>")
    from perfmodel.reports.html import PLOTLY_BASIC

    bundle = PLOTLY_BASIC.read_text(encoding="utf-8")
    assert bundle in text  # plotly.js's basic bundle is inlined (every chart is bar or scatter)...
    rest = text.replace(bundle, "")
    assert "src=" not in rest and "http" not in rest  # ...and nothing else is fetched: opens offline
    assert "Plotly.newPlot" in rest


def test_html_sections_in_order_with_their_sentence(html_report):
    text, _ = html_report
    order = ["gates", "headlines", "stages", "constraints", "stalls", "roofline", "batching", "correctness"]
    positions = [text.index(f'<section id="{s}">') for s in order]
    assert positions == sorted(positions)  # gates first
    for s in order:
        assert SECTION_INTRO[s].replace("'", "&#x27;") in text
    assert '<section id="comparison">' not in text
    assert "NVIDIA H100 80GB HBM3" in text and "SYNTHETIC" in text


def test_html_figures_parse_back(html_report):
    specs = figure_specs(html_report[0])
    # 2 configs x (stages + bound terms + model terms) + 1 constraints x 2 configs + 1 stalls (seed only) +
    # roofline + batching
    assert len(specs) == 6 + 2 + 1 + 1 + 1
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert any(t.startswith("Stages: predicted vs measured") for t in titles)
    assert any(t.startswith("Roofline") for t in titles)
    stage_fig = next(s for s in specs if s["layout"]["title"]["text"].startswith("Stages"))
    assert {"measured", "bound", "model", "roofline"} <= {t.get("name") for t in stage_fig["data"]}
    # the template every figure shares is stored once in the page and given back to each figure
    assert all(s["layout"]["template"]["layout"] for s in specs)
    assert html_report[0].count('"plot_bgcolor":"white"') == 1


def test_html_model_terms_are_stacked_per_stage(html_report):
    from perfmodel.reports.figures import MODEL_TERM_COLORS, MODEL_TERM_NAMES, TERM_COLORS

    specs = figure_specs(html_report[0])
    model_figs = [s for s in specs if s["layout"]["title"]["text"].startswith("Model: time terms per stage")]
    assert len(model_figs) == 2  # one per config
    fig = model_figs[0]
    assert fig["layout"]["barmode"] == "stack"
    bars = {t["name"]: t["marker"]["color"] for t in fig["data"] if t["type"] == "bar"}
    assert bars == {MODEL_TERM_NAMES[k]: c for k, c in MODEL_TERM_COLORS.items()}
    # a term the bound has too keeps the bound's colour
    assert bars["exposed launch"] == TERM_COLORS["launch_ms"] and bars["wave tail"] == TERM_COLORS["wave_ms"]
    assert {"bound total", "measured"} <= {t.get("name") for t in fig["data"]}
    text = next(t for t in fig["data"] if t.get("name") == "binding term")["text"]
    # "binding: <term>" and the model's error (a bare "chain -24%" read as the stage chain or a gain)
    from perfmodel.reports.figures import BINDING_NAMES

    assert len(text) == 6 and all(t.split("<br>")[0] == "binding:" and t.split("<br>")[1] in BINDING_NAMES.values()
                                  and t.split("<br>")[2].startswith("model ") for t in text)


def test_report_time_budget(html_report, synthetic_run_dir, tmp_path):
    # the figure, under 10 s on the 2-core machine, is the report's own: without the predictive model,
    # which compiles each stage kernel the first time (about 1 s each; the fixture's time includes it)
    start = time.perf_counter()
    assert main(["report", str(synthetic_run_dir), "--no-model", "--out", str(tmp_path / "r.html")]) == 0
    elapsed = time.perf_counter() - start
    print(f"report (html, --no-model) took {elapsed:.2f} s; with the model {html_report[1]:.2f} s")
    assert elapsed < 10.0
    assert html_report[1] < 40.0  # with the model: a loose limit, so a busy CI machine does not fail it


def test_markdown_stage_table_has_the_model_beside_the_bound(synthetic_run_dir, capsys):
    from perfmodel.model import predictors, score_sources, scoring
    from perfmodel.runs import load_run

    assert main(["report", str(synthetic_run_dir), "--format", "md", "--out", "-"]) == 0
    md = capsys.readouterr().out
    stages = md[md.index("## Stages"):md.index("## Constraints")]
    header = next(line for line in stages.splitlines() if line.startswith("| config | stage |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols.index("time ms") < cols.index("bound ms") < cols.index("model ms") < cols.index("err vs model") \
        < cols.index("model binding")
    # the model's error per case is the scorer's (perfmodel model score), case by case
    cases = scoring.score_cases([score_sources.run_source(load_run(synthetic_run_dir))],
                                {"model": predictors.PREDICTORS["model"]})
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in stages.splitlines()
            if line.startswith("| B")]
    stage_rows = [r for r in rows if len(r) == len(cols)]
    assert len(stage_rows) == len(cases) == 12
    for case in cases.itertuples():
        row = next(r for r in stage_rows if r[0] == case.config_id and r[2] == case.impl)
        assert row[cols.index("err vs model")] == f"{case.model_err:+.1%}"
        assert row[cols.index("model ms")] == f"{case.model_ms:.4g}"
    # the peers have no model, and the caption says why
    assert "**Peers measured in the same run (no model for the peers:" in stages


def test_no_model_leaves_the_model_out(synthetic_run_dir, capsys):
    assert main(["report", str(synthetic_run_dir), "--no-model", "--format", "md", "--out", "-"]) == 0
    md = capsys.readouterr().out
    assert "| model ms |" not in md and "**Peers measured in the same run**" in md


def test_a_case_without_a_prediction_says_why(synthetic_run_dir, monkeypatch):
    from perfmodel.model import model_cases, predictive
    from perfmodel.model.instruction_mix import MixError
    from perfmodel.reports import analysis
    from perfmodel.reports.displays import stages_display
    from perfmodel.runs import load_run

    real = predictive.predict_stage

    def predict_stage(config, stage, gpu, **facts):
        if stage == 3:
            raise MixError(f"stage3_persistent at {config.id}: refused for this test")
        if stage == 4:
            raise ModuleNotFoundError("No module named 'triton'", name="triton")
        return real(config, stage, gpu, **facts)

    monkeypatch.setattr(predictive, "predict_stage", predict_stage)
    run = load_run(synthetic_run_dir)
    model = model_cases.model_table(run)
    shown = stages_display(model_cases.with_model(analysis.stage_table(run), model)).set_index(["config", "impl"])
    seed = "B16-H16-S2048-D64-causal-fp16"
    assert shown.loc[(seed, "stage3_persistent"), "model ms"] == "no model"
    assert shown.loc[(seed, "stage3_persistent"), "model: why none"].endswith("refused for this test")
    assert shown.loc[(seed, "stage3_persistent"), "err vs model"] == "—"
    assert "triton is not installed" in shown.loc[(seed, "stage4_overlap"), "model: why none"]
    assert shown.loc[(seed, "stage5_full"), "model ms"] not in ("no model", "not measured")

    # a GPU the hardware table lacks: no prediction at all, never one made with a stand-in GPU's figures
    run.meta["environment"] = {"gpu_name": "NVIDIA GeForce RTX 4090"}
    model = model_cases.model_table(run)
    assert set(model["model_status"]) == {"no_model"} and model["model_ms"].isna().all()
    assert set(model["model_reason"]) == {"run GPU 'NVIDIA GeForce RTX 4090' is not in the hardware table "
                                          "(kernels/hardware.py)"}
    from perfmodel.reports.figures import model_terms_figure

    fig = model_terms_figure(model_cases.with_model(analysis.stage_table(run), model).query("config_id == @seed"))
    assert "no model: run GPU 'NVIDIA GeForce RTX 4090'" in fig["layout"]["annotations"][0]["text"]


def test_a_stage_not_timed_is_not_measured_for_the_model(tmp_path):
    import pandas as pd

    from perfmodel.model import model_cases
    from perfmodel.runs import load_run

    run = load_run(make_run(tmp_path))
    timings = run.table("timings")  # the run keeps its tables once read: fail one stage in that copy
    timings.loc[timings["impl"] == "stage2_reduced_sync", ["status", "time_ms"]] = ["failed", None]
    run.__dict__["_tables"]["timings"] = timings
    model = model_cases.model_table(run)
    row = model[model["impl"] == "stage2_reduced_sync"].iloc[0]
    assert row["model_status"] == "not_measured" and pd.isna(row["model_ms"])
    assert row["model_reason"] == "the stage was not timed ok (status failed)"


def test_markdown_has_the_gate_table(synthetic_run_dir, tmp_path):
    out = tmp_path / "r.md"
    assert main(["report", str(synthetic_run_dir), "--out", str(out)]) == 0  # format from the suffix
    md = out.read_text()
    assert md.index("## Gates") < md.index("## Stages")
    assert "| gate | stage | kind | status | measured | threshold |" in md
    assert "| stage3_batching | 3 | required | fail | 1.73 |" in md
    assert "## Comparison" not in md


def test_baseline_adds_the_comparison(synthetic_run_dir, tmp_path, capsys):
    slower = make_run(tmp_path, name="slower", scale=1.10)
    assert main(["report", str(slower), "--baseline", str(synthetic_run_dir), "--format", "md", "--out", "-"]) == 0
    md = capsys.readouterr().out
    assert "## Comparison with the baseline run" in md
    assert "regression" in md and "+10.0%" in md


def test_bad_inputs(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_correctness_section(synthetic_run_dir, tmp_path, capsys):
    failing = make_run(tmp_path, name="not-allclose", allclose=False)
    assert main(["report", str(failing), "--format", "md", "--out", "-"]) == 0
    md = capsys.readouterr().out
    section = md[md.index("## Correctness against the float64 reference"):]
    assert SECTION_INTRO["correctness"] in section
    assert ("| config | impl | status | max abs error | budget | error / budget | within budget | "
            "max ULPs vs rounded ref | exactly rounded | RMS ULPs vs rounded ref | "
            "plan allclose (rtol 1e-3, atol 2e-3) | plan max error ≤ 0.06 | error |") in section
    # the synthetic cases: error 1e-3 against a budget of 2e-3, within budget, failing the plan's allclose; the
    # run has no figures against the rounded reference (as every run made before them): not measured, no number
    assert ("| B16-H16-S2048-D64-causal-fp16 | stage0_baseline | ok | 0.001 | 0.002 | 0.50 | yes | not measured | "
            "not measured | not measured | no | yes |  |") in section
    assert ("| stage0_baseline | stage | 2 of 2 | 2 | 0 | 2 | 0.50 | not measured | not measured | not measured |"
            in section)  # per implementation


def test_stage_and_peer_tables_show_the_interval_and_wide_ci_flag(synthetic_run_dir):
    from perfmodel.reports.displays import peers_display, stages_display
    from perfmodel.reports.report_data import collect
    from perfmodel.runs import load_run

    data = collect(load_run(synthetic_run_dir))
    st = stages_display(data.stages)
    assert {"time ms", "interval (ms)", "wide CI"} <= set(st.columns)
    # this run kept no samples: p20–p80, labelled, and no verdict on a CI it does not have
    row = st[(st["impl"] == "stage0_baseline") & (st["config"] == "B16-H16-S2048-D64-causal-fp16")].iloc[0]
    assert row["interval (ms)"] == ("0.4975–0.5025: p20–p80 of the repetitions (this run kept no samples for a "
                                    "95% interval)") and row["wide CI"] == "—"
    peers = peers_display(data.peers)
    assert {"sdpa_cudnn", "sdpa_flash"} == set(peers["impl"]) and "interval (ms)" in peers.columns


def test_report_baseline_uses_the_bootstrap_cis_when_both_runs_have_samples(tmp_path, capsys):
    from test_compare import with_samples

    base = with_samples(make_run(tmp_path, name="base"), seed=1)
    new = with_samples(make_run(tmp_path, name="new", scale=1.10), seed=2)
    assert main(["report", str(new), "--baseline", str(base), "--format", "md", "--out", "-"]) == 0
    md = capsys.readouterr().out
    assert "| 95% CI | regression |" in md and "p20–p80, no samples" not in md.split("## Comparison")[1]
    stages = md[md.index("## Stages"):md.index("## Constraints")]
    assert "(95% CI) | no |" in stages  # the stage table's interval and wide-CI flag


def test_markdown_header_names_the_environment(capsys):
    """The H200 run's run.json keeps `*_version` keys (collectors/sweep/env.py); the header shows each one it has."""
    run_dir = Path(__file__).resolve().parent.parent / "runs" / "20261201-224820-seed-nvidia-h200"
    assert main(["report", str(run_dir), "--format", "md", "--out", "-"]) == 0
    header = capsys.readouterr().out.split("\n## ")[0]
    for line in ("- **GPU**: NVIDIA H200", "- **driver**: 580.159.04", "- **CUDA**: 13.0", "- **torch**: 2.11.0",
                 "- **triton**: 3.6.0", "- **cuDNN**: 91900", "- **ncu**: 2025.3.1.0", "- **commit**: 0e0a725"):
        assert line in header.splitlines()


def test_header_skips_environment_fields_a_run_lacks(synthetic_run_dir):
    from perfmodel.reports.report_data import meta_lines as _meta_lines
    from perfmodel.runs import load_run

    run = load_run(synthetic_run_dir)
    run.meta["environment"] = {"gpu_name": "NVIDIA H200", "torch_version": "2.11.0", "cudnn_version": None}
    lines = dict(_meta_lines(run))
    assert lines["GPU"] == "NVIDIA H200" and lines["torch"] == "2.11.0"
    assert not {"driver", "CUDA", "triton", "cuDNN", "ncu", "commit"} & set(lines)


def test_html_embeds_the_basic_plotly_bundle_unless_a_figure_needs_more():
    import plotly.graph_objects as go

    from perfmodel.reports.html import PLOTLY_BASIC, plotly_js

    basic = PLOTLY_BASIC.read_text(encoding="utf-8")
    assert plotly_js([go.Figure(go.Bar(x=[1], y=[1])), go.Figure(go.Scatter(x=[1], y=[1]))]) == basic
    full = plotly_js([go.Figure(go.Heatmap(z=[[1]]))])  # not in the basic bundle: the full one, never a blank chart
    assert full != basic and len(full) > len(basic)
