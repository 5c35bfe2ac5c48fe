"""`perfmodel collect --timeline`'s phase (collectors/sweep/timeline_phase.py) on the CPU: the capture stood in for by
the SYNTHETIC trace (tests/timeline_run.py), the refusal above 10% overhead, resuming after an interrupt, and the
one-sentence refusals without a GPU or under --interpret."""

from __future__ import annotations

import json

import pytest
from module_imports import run_without

from collectors.sweep import timeline_phase as TP
from collectors.sweep.options import CollectError, CollectOptions
from collectors.sweep.progress import Steps
from collectors.timeline import case as C
from collectors.timeline.read import load_trace, read_timeline
from kernels import lookup
from kernels.suites import SEED
from runstore.reader import load_run
from runstore.schema import column_problem
from runstore.writer import RunWriter
from tests import timeline_fixture as fx
from tests.timeline_run import fake_case

ROOT = fx.FIXTURE.parents[3]
STAGES = ["stage4_overlap", "stage5_full"]


def _run(tmp_path, status=None):
    """A run with correctness rows for stages 4 and 5 at the seed (stage 5's `status`, default ok)."""
    w = RunWriter(tmp_path / "run", {"suite": "seed", "environment": {"gpu_name": "NVIDIA H200"}})
    w.append("correctness", [{"impl": s, "config_id": SEED.id, **SEED.as_dict(),
                              "status": (status if s == "stage5_full" and status else "ok")} for s in STAGES])
    return w


def _stub(calls, instrumented_ms=None):
    def record(impl, cfg, **kw):
        calls.append((impl.name, cfg.id, kw))
        return fake_case(impl.name, **({"instrumented_ms": instrumented_ms} if instrumented_ms else {}), kept_sms=1)

    return record


def test_the_phase_stores_trace_tables_and_verdict(tmp_path):
    w = _run(tmp_path, status="wrong")
    opts = CollectOptions(suite="seed", ncu=False)
    todo = TP.timeline_todo(w, [lookup.get(s) for s in STAGES], [SEED])
    assert [(i.name, c.id) for i, c in todo] == [(s, SEED.id) for s in STAGES]
    calls, labels = [], []
    problems = TP.run_timelines(opts, w, todo, Steps(2, lambda d, n, label: labels.append(label)), _stub(calls))
    assert problems == [] and labels == [f"timeline {s} {SEED.id}" for s in STAGES]  # the progress lines
    assert [c[:2] for c in calls] == [("stage4_overlap", SEED.id)]  # stage 5 was wrong: not captured
    run = load_run(w.path)
    cases = run.table("timeline_cases").set_index("impl")
    assert cases.loc["stage4_overlap", "status"] == "ok" and cases.loc["stage4_overlap", "overhead_pct"] == \
        pytest.approx(4.0)
    assert cases.loc["stage5_full", "status"] == "not_measured"
    assert "not correct here (correctness: wrong)" in cases.loc["stage5_full", "reason"]
    rel = cases.loc["stage4_overlap", "trace_file"]
    assert rel == f"timeline/stage4_overlap-{SEED.id}.chrome_trace.gz"
    meta = json.loads((w.path / rel.replace(".chrome_trace.gz", ".meta.json")).read_text())
    kept = read_timeline(load_trace(w.path / rel), fx.LAYOUT.from_dict(meta["layout"]))  # the trace reads back
    timeline = run.table("timeline")
    assert len(timeline) == len(kept) and set(timeline["sm"]) == {int(cases.loc["stage4_overlap", "kept_sms"])}
    figs = run.table("timeline_figures")
    assert set(figs["impl"]) == {"stage4_overlap"} and "pingpong_share" in set(figs["figure"])
    assert {"consumer0", "consumer1", "producer0"} <= set(figs["partition_label"])
    for table in ("timeline", "timeline_figures", "timeline_cases"):  # what the store will read back
        part = next((w.path / "tables" / table).glob("part-*.parquet"))
        import pyarrow.parquet as pq

        t = pq.read_table(part)
        assert column_problem(table, t.column_names, t.schema.types) is None, table
    assert w.meta["timeline"] == {"status": "ok", "counts": {"ok": 1, "not_measured": 1}}
    assert TP.timeline_todo(w, [lookup.get(s) for s in STAGES], [SEED]) == []  # what --resume skips
    w.finish("complete")


def test_a_timeline_above_10_percent_overhead_is_refused_with_its_reason(tmp_path):
    w = _run(tmp_path)
    todo = TP.timeline_todo(w, [lookup.get("stage4_overlap")], [SEED])
    TP.run_timelines(CollectOptions(suite="seed", ncu=False), w, todo, Steps(1, lambda *a: None),
                     _stub([], instrumented_ms=0.56))
    row = load_run(w.path).table("timeline_cases").iloc[0]
    assert row["status"] == "refused" and row["overhead_pct"] == pytest.approx(12.0)
    assert row["reason"] == ("the instrumented kernel took 12.0% longer than the bare one (limit 10%), so its phases "
                             "are not the bare kernel's.")
    w.finish("complete")


def test_an_overhead_that_could_not_be_measured_is_refused_not_guessed():
    row = {}
    C.judge(row, float("nan"), 0, 0, None)
    assert row["status"] == "refused" and "could not be measured" in row["reason"]
    C.judge(row, 3.0, 5, 0, 0.25)
    assert row["status"] == "refused" and "dropped 5 records" in row["reason"] and "max |diff| 0.25" in row["reason"]


def test_an_interrupt_keeps_the_cases_stored_and_resume_does_the_rest(tmp_path):
    w = _run(tmp_path)
    todo = TP.timeline_todo(w, [lookup.get(s) for s in STAGES], [SEED])
    calls = []
    record = _stub(calls)

    def interrupted(impl, cfg, **kw):
        if calls:
            raise KeyboardInterrupt
        return record(impl, cfg, **kw)

    with pytest.raises(KeyboardInterrupt):
        TP.run_timelines(CollectOptions(suite="seed", ncu=False), w, todo, Steps(2, lambda *a: None), interrupted)
    left = TP.timeline_todo(w, [lookup.get(s) for s in STAGES], [SEED])
    assert [(i.name, c.id) for i, c in left] == [("stage5_full", SEED.id)]
    w.finish("interrupted")


def test_which_implementations_get_a_timeline():
    impls = [lookup.get(n) for n in ("stage0_baseline", "stage1_warpspec", "stage5_full", "sdpa_cudnn", "triton_tl")]
    assert [i.name for i in TP.timeline_impls(impls)] == ["stage1_warpspec", "stage5_full"]


def test_options_suite_default_and_interpret():
    assert CollectOptions(suite="plan", ncu=False).wants_timeline()
    assert not CollectOptions(suite="plan", ncu=False, timeline=False).wants_timeline()
    assert not CollectOptions(suite="seed", ncu=False).wants_timeline()
    assert CollectOptions(suite="seed", ncu=False, timeline=True).wants_timeline()
    assert not CollectOptions(suite="plan", interpret=True).wants_timeline()  # the suite's default, on the CPU: off
    with pytest.raises(CollectError, match="^Proton timelines need the GPU: --interpret runs"):
        CollectOptions(interpret=True, timeline=True)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="on a GPU collect records timelines")
@pytest.mark.parametrize("argv, sentence", [
    (["collect", "--timeline", "--suite", "seed", "--no-ncu"],
     "no CUDA GPU is visible here: `perfmodel collect --timeline` records Proton timelines"),
    (["collect", "--timeline", "--interpret"], "Proton timelines need the GPU: --interpret runs the kernels"),
])
def test_without_a_gpu_timeline_is_one_sentence_and_exit_2(argv, sentence, tmp_path, capsys):
    from perfmodel.cli import main

    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and sentence in err[0] and err[0].endswith(".")
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


def test_the_capture_path_needs_nothing_the_gpu_machine_lacks():
    code = ("import collectors.timeline.case, collectors.sweep.timeline_phase, collectors.timeline.capture\n"
            "import collectors.timing.measure, collectors.timing.stats, collectors.timing.bench\n")
    out = run_without(code, ("plotly", "streamlit", "kaleido"), ROOT)
    assert out.returncode == 0, out.stderr[-2000:]


def test_merged_shards_point_at_the_shards_copy_of_each_trace(tmp_path):
    from collectors.sweep.merge import merged_tables

    runs = []
    for k, impl in enumerate(STAGES):
        w = RunWriter(tmp_path / f"shard{k}", {"suite": "seed"})
        TP.store_case(w, impl, SEED, fake_case(impl, kept_sms=1))
        w.finish("complete")
        runs.append(load_run(w.path))
    cases = merged_tables(runs, [SEED.id], STAGES)["timeline_cases"].set_index("impl")
    for k, impl in enumerate(STAGES):
        rel = cases.loc[impl, "trace_file"]
        assert rel == f"shards/shard{k}/{TP.trace_path(impl, SEED.id)}"
        assert (tmp_path / rel.removeprefix("shards/")).is_file()  # what write_merged copies under shards/
