"""Each dashboard page through Streamlit's AppTest: no exception, the expected title, charts and tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from synthetic_run import GPU, make_run, synthetic_run_dir  # noqa: F401 (fixture)

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
# page file -> (title, at least this many plotly charts)
PAGES = {
    "overview": ("Predicted vs measured", 1),
    "stages": ("Stages", 3),  # stages, the bound's terms, the model's terms stacked
    "constraints": ("Constraints", 1),
    "stalls": ("Stall reasons", 1),
    "roofline": ("Roofline", 1),
    "batching": ("Batching", 1),
    "correctness": ("Correctness", 0),  # tables only: errors against the budget, no measured time to draw
    "runs": ("Runs", 1),
}


@pytest.fixture(scope="module")
def app(synthetic_run_dir, tmp_path_factory):
    second = make_run(tmp_path_factory.mktemp("second"), name="slower-run", scale=1.1)
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFMODEL_RUN_DIRS", f"{synthetic_run_dir}:{second}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    yield at
    mp.undo()


def _sidebar_text(at) -> str:
    return " ".join(m.value for m in at.sidebar.markdown)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders(app, page):
    title, n_charts = PAGES[page]
    app.switch_page(f"app_pages/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == [title]
    assert len(app.get("plotly_chart")) >= n_charts
    assert len(app.dataframe) >= 1
    assert GPU in _sidebar_text(app)  # the run's GPU is named on every page


def test_overview_shows_gate_counts_and_headlines(app):
    app.switch_page("app_pages/overview.py").run()
    metrics = {m.label: m.value for m in app.metric}
    # person-judged gates (reproducibility, fp8, multi-GPU) count as "to judge", never as not measured
    assert metrics == {"pass": "11", "fail": "1", "not measured": "4", "to judge": "4"}
    assert any("stage5_full" in m.value for m in app.markdown)


def test_filters_switch_config(app):
    app.switch_page("app_pages/stages.py").run()
    box = app.sidebar.selectbox(key="config_id")
    assert box.options == ["B16-H16-S2048-D64-causal-fp16", "B8-H16-S1024-D128-full-fp16"]
    box.select("B8-H16-S1024-D128-full-fp16").run()
    assert not app.exception
    df = app.dataframe[0].value
    assert set(df["config"]) == {"B8-H16-S1024-D128-full-fp16"}


def test_stages_page_shows_the_model_beside_the_bound(app):
    app.switch_page("app_pages/stages.py").run()
    assert not app.exception
    df = app.dataframe[0].value
    cols = list(df.columns)
    assert cols.index("time ms") < cols.index("bound ms") < cols.index("model ms") < cols.index("err vs model")
    assert "model binding" in cols and "model: why none" in cols
    assert all(v.startswith(("+", "-")) and v.endswith("%") for v in df["err vs model"])  # every stage predicted
    charts = [c.proto.spec for c in app.get("plotly_chart")]
    assert any('"Model: time terms per stage (stacked)"' in c for c in charts)
    assert any('"name":"model"' in c.replace(" ", "") for c in charts)  # the model's TFLOP/s beside the bound's
    assert any("no model for the peers" in c.value for c in app.caption)

    app.checkbox(key="stages_model").uncheck().run()  # without the model: the bound's page as before
    assert not app.exception
    assert "model ms" not in app.dataframe[0].value.columns and len(app.get("plotly_chart")) == 2
    app.checkbox(key="stages_model").check().run()


def test_runs_page_compares_two_runs(app):
    app.switch_page("app_pages/runs.py").run()
    assert not app.exception
    assert len(app.dataframe[0].value) == 2  # both runs listed
    cmp = app.dataframe[-1].value
    assert set(cmp["verdict"]) == {"regression"}  # the second run is 10% slower everywhere


def test_unreadable_run_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(tmp_path / "missing"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.sidebar.error)


def test_correctness_page_counts_the_checks(app):
    app.switch_page("app_pages/correctness.py").run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"within budget": "8 of 8", "plan allclose": "8 of 8", "plan max error ≤ 0.06": "8 of 8",
                       "not checked (failed, unavailable)": "0", "worst max ULPs": "not measured",
                       "lowest exactly rounded": "not measured", "worst RMS ULPs": "not measured"}
    # the synthetic run, like every run made before them, has no figures against the rounded reference
    assert any("not measured" in i.value for i in app.info)
    assert set(app.dataframe[0].value["exactly rounded"]) == {"not measured"}
    assert set(app.dataframe[0].value["config"]) == {app.sidebar.selectbox(key="config_id").value}
    app.radio(key="correctness_scope").set_value("every fp16 config").run()
    assert len(app.dataframe[0].value) == 16 and not app.exception


# ---- issue 21 item 7: what a new user saw on the bundled runs, two runs compared and an --interpret run ---------
H100_ID, H200_ID = "20261124-173318-custom-nvidia-h100-80gb-hbm3", "20261202-053909-seed-nvidia-h200"


def _bundled(*ids):
    from perfmodel.runs import resolve_run_dirs

    return [str(d) for d in resolve_run_dirs(list(ids))]


@pytest.fixture(scope="module")
def two_gpus():
    """The dashboard on the H100 run (the sidebar's) and the H200 run (the Runs page's compared run)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFMODEL_RUN_DIRS", ":".join(_bundled(H100_ID, H200_ID)))
    at = AppTest.from_file(APP, default_timeout=120).run()
    yield at
    mp.undo()


def test_the_tables_leave_the_model_to_the_stages_page(synthetic_run_dir, monkeypatch):
    # reporting.collect's default predicts every stage with the model; the Overview waited for it (10-17 s to the
    # first chart) and the Stages page computed it again through model_table
    from app import data
    from perfmodel.model import model_cases

    calls = []
    real = model_cases.model_table
    monkeypatch.setattr(model_cases, "model_table", lambda *a, **k: calls.append(a) or real(*a, **k))
    data._TABLES.pop(str(synthetic_run_dir), None)
    t = data.tables(str(synthetic_run_dir), data._stamp(str(synthetic_run_dir)))
    assert not t["stages"].empty and calls == []
    data._MODEL.pop(str(synthetic_run_dir), None)
    assert not data.model_table(str(synthetic_run_dir), data._stamp(str(synthetic_run_dir))).empty
    assert len(calls) == 1  # the Stages page's, once


def test_the_sidebar_opens_on_the_seed_config(two_gpus):
    # the H100 run's first config is B1, which the gates never read (and the H200 run does not have)
    from kernels.suites import SEED

    box = two_gpus.sidebar.selectbox(key="config_id")
    assert box.options[0].startswith("B1-") and box.value == SEED.id
    # the H100 run's Overview: its stage 0 is not "Baseline (today)" (the plan's word for the day it was written),
    # and the gate table's status column is wide enough for "not_measured" (it was cut to "not_me")
    assert "Baseline (today)" not in two_gpus.get("plotly_chart")[0].proto.spec
    assert '"Baseline"' in two_gpus.get("plotly_chart")[0].proto.spec
    assert json.loads(two_gpus.dataframe[0].proto.columns)["status"]["width"] >= 100


def test_runs_page_on_two_gpus_names_the_missing_config_and_gives_no_verdict(two_gpus):
    at = two_gpus
    at.sidebar.selectbox(key="config_id").select("B1-H16-S2048-D64-causal-fp16").run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    # the compared run (H200) has no B1: said so beside its table and in the chart, never "no cases measured in
    # both runs" (9 implementations are in both, at B16)
    assert any("This run has no B1-H16-S2048-D64-causal-fp16" in i.value and "B16-H16-S2048-D64-causal-fp16"
               in i.value for i in at.info)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"] == "Run comparison: change in time at B1-H16-S2048-D64-causal-fp16"
    why = spec["layout"]["annotations"][0]["text"]
    assert why.startswith(f"B1-H16-S2048-D64-causal-fp16 is not in run {H200_ID}") and "B16-H16-S2048" in why
    table = at.dataframe[-1].value
    assert set(table["config"]) == {"B1-H16-S2048-D64-causal-fp16"}  # the table follows the sidebar's config too
    # the gate counts say "to judge" as the Overview does, and missing figures read "—", never None
    assert any("4 to judge" in c.value for c in at.caption)
    left = at.dataframe[1].value
    assert left.loc[left["impl"] == "stage1_warpspec", "measured TFLOP/s"].tolist() == ["—"]
    # H100 against H200: no regression or improvement, one sentence why
    assert any("measured on different GPUs" in w.value and "no case is called a regression" in w.value
               for w in at.warning)

    at.sidebar.selectbox(key="config_id").select("B16-H16-S2048-D64-causal-fp16").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    verdicts = {t["name"] for t in spec["data"]}
    assert verdicts == {"different GPU"} and "no verdict" in spec["layout"]["title"]["text"]
    assert len(at.dataframe[-1].value) == 12 and not at.exception  # every impl of either run at B16


def test_constraints_page_says_the_fair_measure_once(app):
    from perfmodel.reports.ablation import FAIR_MEASURE

    app.switch_page("app_pages/constraints.py").run()
    texts = [c.value for c in app.caption] + [i.value for i in app.info]
    assert sum(t.count(FAIR_MEASURE) for t in texts) == 1


def test_batching_page_of_a_seed_run_names_the_command(two_gpus):
    at = two_gpus
    at.sidebar.selectbox(key="run_dir").select(_bundled(H200_ID)[0]).run()
    at.switch_page("app_pages/batching.py").run()
    assert not at.exception
    assert any("`perfmodel collect --suite batching` measures it" in i.value for i in at.info)
    at.sidebar.selectbox(key="run_dir").select(_bundled(H100_ID)[0]).run()
    cases = at.dataframe[-1].value  # every case, readable: "—" and the reason where there is no figure
    assert "speed-up per sequence vs B=1" in cases.columns and "speedup_vs_b1" not in cases.columns
    fa3 = cases[cases["impl"] == "fa3"]
    assert set(fa3["speed-up per sequence vs B=1"]) == {"—"}
    assert all(w.startswith("not timed: unavailable (flash_attn_interface") for w in fa3["why none"])
    assert set(cases.loc[cases["B"] == 1, "interval"]) <= {"1× by definition", "—"}


def test_correctness_per_implementation_leaves_unchecked_counts_blank(two_gpus):
    at = two_gpus
    at.sidebar.selectbox(key="run_dir").select(_bundled(H100_ID)[0]).run()
    at.switch_page("app_pages/correctness.py").run()
    per_impl = at.dataframe[-1].value
    fa3 = per_impl[per_impl["impl"] == "fa3"].iloc[0]  # never checked (FlashAttention-3 was not installed)
    assert fa3["checked"] == "0 of 1" and fa3["within budget"] == fa3["plan allclose"] == "—"
    assert fa3["plan max error ≤ 0.06"] == "—"


def _interpret_run(root: Path) -> Path:
    """An --interpret run of stage 0 and a user's kernel at a small config, as `perfmodel collect --interpret
    --impl mine=...` writes it: nothing timed, the outputs checked."""
    from kernels.workload import AttentionConfig
    from runstore.writer import RunWriter

    c = AttentionConfig(B=1, H=2, S=128, D=64, causal=True, dtype="fp16")
    key = {"config_id": c.id, **c.as_dict()}
    w = RunWriter(root / "interp", {"environment": {}, "suite": "custom", "mode": "interpret"})
    w.append("timings", [{"impl": i, **key, "status": "not_measured",
                          "error": "--interpret runs on the CPU; there is no GPU to time"}
                         for i in ("stage0_baseline", "mine")])
    w.append("correctness", [{"impl": i, **key, "status": "ok", "max_abs_err": 1e-3, "budget_abs_err": 2e-3,
                              "within_budget": True, "doc_allclose": True, "doc_max_err_ok": True}
                             for i in ("stage0_baseline", "mine")])
    w.finish("complete")
    return root / "interp"


def test_an_interpret_run_says_why_nothing_is_drawn(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(_interpret_run(tmp_path)))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("Nothing was timed: the run was made with --interpret" in i.value for i in at.info)
    # the 20 gates are about stages 1-5, which this run does not hold: folded away, not the page's first table
    assert [e.label for e in at.expander][0].startswith("20 gates about implementations this run does not hold")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    xs = {x for t in spec["data"] for x in t.get("x", []) if x is not None}
    assert xs == {"Baseline"}  # not the six plan stages the run never had
    why = "the run was made with --interpret (the kernels ran on the CPU interpreter), so it holds no GPU timings"
    for page, needle in (("stalls", "no stall counters: "), ("roofline", "nothing to place on the roofline: "),
                         ("batching", "no batching measurements: ")):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, page
        text = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"][0]["text"]
        assert text.startswith(needle + why), (page, text)


def test_the_overview_says_how_the_times_were_measured():
    # issue 23: which method gave the times (a run of schema version 1: the host loop) and their check against ncu
    from app import data
    from perfmodel.runs import bundled_run_dirs

    h200 = next(str(d) for d in bundled_run_dirs() if "h200" in d.name)
    lines = data.tables(h200, data._stamp(h200))["timing"]
    assert lines[0].startswith("times: host loop for ") and "Nsight Compute" in " ".join(lines)
