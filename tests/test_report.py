"""`perfmodel report`: HTML and Markdown written through the CLI and parsed back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from perfmodel.cli import main
from perfmodel.reporting import SECTION_INTRO, figure_specs
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
    from perfmodel.reporting import PLOTLY_BASIC

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
    # 2 configs x (stages + terms) + 1 constraints x 2 configs + 1 stalls (seed only) + roofline + batching
    assert len(specs) == 4 + 2 + 1 + 1 + 1
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert any(t.startswith("Stages: predicted vs measured") for t in titles)
    assert any(t.startswith("Roofline") for t in titles)
    stage_fig = next(s for s in specs if s["layout"]["title"]["text"].startswith("Stages"))
    assert {"measured", "bound", "roofline"} <= {t.get("name") for t in stage_fig["data"]}


def test_report_time_budget(html_report):
    assert html_report[1] < 10.0  # the figure: under 10 s on the 2-core machine


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
            "plan allclose (rtol 1e-3, atol 2e-3) | plan max error ≤ 0.06 | error |") in section
    # the synthetic cases: error 1e-3 against a budget of 2e-3, within budget, failing the plan's allclose
    assert "| B16-H16-S2048-D64-causal-fp16 | stage0_baseline | ok | 0.001 | 0.002 | 0.50 | yes | no | yes |  |" \
        in section
    assert "| stage0_baseline | stage | 2 of 2 | 2 | 0 | 2 | 0.50 |" in section  # per implementation


def test_stage_and_peer_tables_show_the_interval_and_wide_ci_flag(synthetic_run_dir):
    from perfmodel.reporting import collect, peers_display, stages_display
    from perfmodel.runs import load_run

    data = collect(load_run(synthetic_run_dir))
    st = stages_display(data.stages)
    assert {"time ms", "interval (ms)", "wide CI"} <= set(st.columns)
    # this run kept no samples: p20–p80, labelled, and no verdict on a CI it does not have
    row = st[(st["impl"] == "stage0_baseline") & (st["config"] == "B16-H16-S2048-D64-causal-fp16")].iloc[0]
    assert row["interval (ms)"] == "0.4975–0.5025 (p20–p80, no samples)" and row["wide CI"] == "—"
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
    """The H200 run's run.json keeps `*_version` keys (collectors/env.py); the header shows each one it has."""
    run_dir = Path(__file__).resolve().parent.parent / "runs" / "20261201-224820-seed-nvidia-h200"
    assert main(["report", str(run_dir), "--format", "md", "--out", "-"]) == 0
    header = capsys.readouterr().out.split("\n## ")[0]
    for line in ("- **GPU**: NVIDIA H200", "- **driver**: 580.159.04", "- **CUDA**: 13.0", "- **torch**: 2.11.0",
                 "- **triton**: 3.6.0", "- **cuDNN**: 91900", "- **ncu**: 2025.3.1.0", "- **commit**: 0e0a725"):
        assert line in header.splitlines()


def test_header_skips_environment_fields_a_run_lacks(synthetic_run_dir):
    from perfmodel.reporting import _meta_lines
    from perfmodel.runs import load_run

    run = load_run(synthetic_run_dir)
    run.meta["environment"] = {"gpu_name": "NVIDIA H200", "torch_version": "2.11.0", "cudnn_version": None}
    lines = dict(_meta_lines(run))
    assert lines["GPU"] == "NVIDIA H200" and lines["torch"] == "2.11.0"
    assert not {"driver", "CUDA", "triton", "cuDNN", "ncu", "commit"} & set(lines)


def test_html_embeds_the_basic_plotly_bundle_unless_a_figure_needs_more():
    import plotly.graph_objects as go

    from perfmodel.reporting import PLOTLY_BASIC, plotly_js

    basic = PLOTLY_BASIC.read_text(encoding="utf-8")
    assert plotly_js([go.Figure(go.Bar(x=[1], y=[1])), go.Figure(go.Scatter(x=[1], y=[1]))]) == basic
    full = plotly_js([go.Figure(go.Heatmap(z=[[1]]))])  # not in the basic bundle: the full one, never a blank chart
    assert full != basic and len(full) > len(basic)
