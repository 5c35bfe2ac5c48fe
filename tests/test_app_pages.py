"""Each dashboard page through Streamlit's AppTest: no exception, the expected title, charts and tables."""

from __future__ import annotations

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
