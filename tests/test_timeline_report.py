"""Inside the kernel on a SYNTHETIC run (tests/synthetic_run.py with the synthetic Proton timeline of
tests/timeline_run.py as stages 3, 4 and 5, stage 3's refused for a 12% overhead) and on one without a timeline:
the report's section, the dashboard's page and `perfmodel model score --phases`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from kernels.suites import SEED
from perfmodel.cli import main
from perfmodel.reports import palette, timeline_view as tv
from perfmodel.reports.html import figure_specs
from perfmodel.runs import load_run
from synthetic_run import make_run, synthetic_run_dir  # noqa: F401 (fixture)
from tests.timeline_run import add_timelines

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
IMPLS = ("stage3_persistent", "stage4_overlap", "stage5_full")


@pytest.fixture(scope="module")
def timeline_run(tmp_path_factory) -> Path:
    run_dir = make_run(tmp_path_factory.mktemp("tl"), name="with-timeline")
    return add_timelines(run_dir, SEED, impls=IMPLS, refused=("stage3_persistent",))


def test_timeline_data_and_the_gantt_rows(timeline_run):
    data = tv.timeline_data(load_run(timeline_run))
    assert dict(zip(data.cases["impl"], data.cases["status"])) == {"stage3_persistent": "refused",
                                                                   "stage4_overlap": "ok", "stage5_full": "ok"}
    assert data.gantt_config == SEED.id and sorted(data.gantt) == ["stage4_overlap", "stage5_full"]  # ok ones only
    rows = data.gantt["stage4_overlap"]
    # SM 3 runs program 0 alone: its two work items, one lane per recorded warp, the containers left out
    assert set(rows["program"]) == {0} and set(rows["item"]) == {0, 1} and "tile" not in set(rows["phase"])
    assert set(rows["row"]) == {"program 0 · consumer0 (warp 0)", "program 0 · consumer1 (warp 4)",
                                "program 0 · producer0 (warp 8)"}
    assert rows["start"].min() == 0 and (rows["end"] > rows["start"]).all()
    one = tv.gantt_rows(tv.case_timeline(load_run(timeline_run), "stage4_overlap", SEED.id), sm=7, items=1)
    assert set(one["program"]) == {1} and set(one["item"]) == {0}
    # consumer 0's first QK^T of the first item: 50 cycles (tests/timeline_fixture.py's schedule)
    qk = rows[(rows["row"] == "program 0 · consumer0 (warp 0)") & (rows["phase"] == "qk")].iloc[0]
    assert qk["end"] - qk["start"] == 50


def test_the_report_section(timeline_run, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(timeline_run), "--no-model", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<h2>Inside the kernel</h2>" in text and "no timeline" not in text
    specs = {s["layout"]["title"]["text"]: s for s in figure_specs(text)}
    gantt = [t for t in specs if t.startswith("Inside stage")]
    assert gantt == [f"Inside stage4: one SM, 2 work items — {SEED.id}", f"Inside stage5: one SM, 2 work items — "
                                                                         f"{SEED.id}"]
    shares = specs[f"Inside the kernel: where each partition's time goes — {SEED.id}"]
    assert {t["name"] for t in shares["data"]} == {"stage4_overlap", "stage5_full"}  # the refused one is not drawn
    assert any("not drawn: stage3 refused" in a["text"] for a in shares["layout"]["annotations"])
    overhead = specs[f"Instrumentation overhead (a timeline above 10% is refused) — {SEED.id}"]
    assert {t["name"]: t["y"][0] for t in overhead["data"]} == pytest.approx(
        {"stage3_persistent": 12.0, "stage4_overlap": 4.0, "stage5_full": 4.0})
    for spec in specs.values():  # plotly accepts every figure; every colour is the palette's colour of what it is
        fig = go.Figure(spec)
        for t in fig.data:
            if t.marker is not None and isinstance(t.marker.color, str):
                meaning = palette.meaning_of(t.marker.color)
                assert meaning is not None, (spec["layout"]["title"]["text"], t.name)
                if t.name in IMPLS:
                    assert meaning == f"stage {palette.stage_number(t.name)}"
    md = tmp_path / "r.md"
    assert main(["report", str(timeline_run), "--no-model", "--format", "md", "--out", str(md)]) == 0
    section = md.read_text().split("## Inside the kernel")[1].split("\n## ")[0]
    assert "| stage3_persistent | refused | 12.0 [11.5, 12.5]" in section
    assert "took 12.0% longer than the bare one (limit 10%)" in section
    assert "| softmax under the other's wgmma | consumer0 | 0.38 [0.38–0.38] | 0.38 [0.38–0.38] |" in section


def test_a_run_without_a_timeline_says_so_in_one_sentence(synthetic_run_dir, tmp_path):  # noqa: F811
    md = tmp_path / "r.md"
    assert main(["report", str(synthetic_run_dir), "--no-model", "--format", "md", "--out", str(md)]) == 0
    section = md.read_text().split("## Inside the kernel")[1].split("\n## ")[0]
    assert f"_{tv.NO_TIMELINE}_" in section and "`perfmodel collect --timeline`" in tv.NO_TIMELINE
    assert "|" not in section  # no table, no chart: the sentence


def _page(run_dir, monkeypatch):
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(run_dir))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/timeline.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Inside the kernel"]
    return at


def test_the_dashboard_page(timeline_run, monkeypatch):
    at = _page(timeline_run, monkeypatch)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles[0] == f"Inside stage4: one SM, 2 work items — {SEED.id}" and len(titles) == 4
    assert at.selectbox(key="timeline_impl").options == ["stage4", "stage5"]
    assert at.selectbox(key="timeline_sm").options == ["3", "7"]  # the SMs the run kept
    at.selectbox(key="timeline_sm").select(7).run()
    at.slider(key="timeline_items").set_value(1).run()
    assert not at.exception
    gantt = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert gantt["layout"]["title"]["text"].startswith("Inside stage4: one SM, 1 work item —")
    assert all(y.startswith("program 1 ·") for t in gantt["data"] for y in t["y"])
    verdicts = at.dataframe[-1].value
    assert list(verdicts["status"]) == ["refused", "ok", "ok"] and verdicts["reason"].iloc[0].startswith(
        "the instrumented kernel took 12.0% longer")


def test_the_dashboard_page_without_a_timeline(synthetic_run_dir, monkeypatch):  # noqa: F811
    at = _page(synthetic_run_dir, monkeypatch)
    assert [i.value for i in at.info] == [tv.NO_TIMELINE] and not at.get("plotly_chart")


def test_model_score_phases(timeline_run, capsys):
    from perfmodel.model import phase_score
    from perfmodel.model.predictive import ModelPrediction

    seen = []

    def predict(config, stage, gpu, tuned_config=None):  # a stand-in: 0.1 us an iteration, bound by its chain
        seen.append((config.id, stage))
        return ModelPrediction(stage=stage, impl="", config_id=config.id, gpu=gpu.key,
                               iteration_us={"tensor": 0.05, "mufu": 0.02, "issue": 0.04, "smem": 0.01, "chain": 0.1},
                               binding="chain", programs_per_sm=1, math_groups=2, slots=132, steady_ms=0, tail_ms=0,
                               prologue_epilogue_ms=0, hbm_ms=0, launch_ms=0, host_launch_us=0,
                               host_launch_source="", time_ms=0)

    run = load_run(timeline_run)
    rows = phase_score.phase_rows(run, predict=predict)
    assert sorted(seen) == [(SEED.id, 4), (SEED.id, 5)]  # the refused stage 3 is not predicted
    whole = rows[(rows["impl"] == "stage4_overlap") & (rows["phase"] == "key block")].set_index("partition")
    clock = 1980.0  # the H100 SXM's boost clock (kernels/hardware.py), the model's
    from kernels.hardware import get_gpu

    assert get_gpu("NVIDIA H100 80GB HBM3").boost_clock_mhz == clock  # the synthetic run's GPU
    assert whole.loc["consumer0", "model_cycles"] == pytest.approx(0.1 * clock)
    assert whole.loc["consumer0", "model_err"] == pytest.approx(0.1 * clock / whole.loc["consumer0", "timeline_cycles"]
                                                                - 1)
    assert whole.loc["consumer0", "note"] == "the model's iteration: its chain term"
    assert pd.isna(whole.loc["producer0", "model_cycles"]) and "no producer term" in whole.loc["producer0", "note"]
    soft = rows[(rows["impl"] == "stage4_overlap") & (rows["phase"] == "softmax")].iloc[0]
    assert pd.isna(soft["model_cycles"]) and soft["note"].startswith("no model figure: model v")
    refused = rows[rows["impl"] == "stage3_persistent"].iloc[0]
    assert refused["note"].startswith("timeline refused: the instrumented kernel took 12.0%")


def test_model_score_phases_exit_status(timeline_run, synthetic_run_dir, capsys, monkeypatch):  # noqa: F811
    from perfmodel.model import phase_score

    assert main(["model", "score", str(synthetic_run_dir), "--phases"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"perfmodel: {phase_score.NO_TIMELINE_RUNS}"]
    monkeypatch.setattr(phase_score, "_prediction", lambda row, gpu, predict: (None, "no model figure: stand-in"))
    assert main(["model", "score", str(timeline_run), "--phases", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["impl"] for r in rows} == set(IMPLS) and all(r["model_cycles"] is None for r in rows)
    assert main(["model", "score", str(timeline_run), "--phases", "--bench", "x.csv"]) == 2


def test_model_score_phases_with_only_refused_timelines(tmp_path, capsys):
    from perfmodel.model import phase_score

    run_dir = add_timelines(make_run(tmp_path, name="refused"), SEED, impls=("stage4_overlap",),
                            refused=("stage4_overlap",))
    assert main(["model", "score", str(run_dir), "--phases"]) == 3
    out, err = capsys.readouterr()
    assert "timeline refused: the instrumented kernel took 12.0%" in out
    assert err.strip() == f"perfmodel: {phase_score.NONE_COMPARED}"
