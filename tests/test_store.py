"""The run store (runstore/writer.py): atomic parts, reading them back, corrupt folders, and --resume after a
process writing a run is killed with SIGKILL in the middle of its sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from runstore import writer as store
from runstore.layout import RunStoreError
from runstore.reader import list_runs, load_run
from runstore.schema import columns
from runstore.writer import RunWriter

ROOT = Path(__file__).resolve().parent.parent


def case_row(impl: str, b: int, **values) -> dict:
    cfg = {"B": b, "H": 2, "S": 64, "D": 64, "causal": True, "dtype": "fp16"}
    return {"impl": impl, "config_id": f"B{b}-H2-S64-D64-causal-fp16", **cfg, **values}


def test_append_writes_one_atomic_part_per_call_and_reads_back_in_order(tmp_path):
    w = RunWriter(tmp_path / "r1", {"suite": "tiny", "environment": {"gpu_name": "TestGPU"}})
    p1 = w.append("timings", [case_row("stage0_baseline", 1, status="ok", time_ms=1.5)])
    p2 = w.append("timings", pd.DataFrame([case_row("stage1_warpspec", 1, status="ok", time_ms=1.25)]))
    assert p1.name == "part-000001.parquet" and p2.name == "part-000002.parquet"
    # nothing but final parts: the temporary names were renamed away
    assert sorted(p.name for p in p1.parent.iterdir()) == ["part-000001.parquet", "part-000002.parquet"]
    run = load_run(w.path)
    df = run.table("timings")
    assert list(df.columns) == columns("timings")
    assert df["impl"].tolist() == ["stage0_baseline", "stage1_warpspec"]
    assert df["time_ms"].tolist() == [1.5, 1.25]
    assert set(df["run_id"]) == {w.run_id}
    assert run.tables() == ["timings"]
    assert w.append("timings", []) is None  # nothing to write, no empty part


def test_missing_table_is_empty_with_schema_columns_and_extra_columns_are_kept(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    w.append("ceilings", [{"name": "hbm_tbps", "value": 3.0, "unit": "TB/s", "how": "copy", "status": "ok",
                           "note": "extra"}])
    run = load_run(w.path)
    empty = run.table("stalls")
    assert empty.empty and list(empty.columns) == columns("stalls")
    ceil = run.table("ceilings")
    assert list(ceil.columns) == columns("ceilings") + ["note"]
    with pytest.raises(RunStoreError, match="unknown table"):
        run.table("nonsense")
    with pytest.raises(RunStoreError, match="unknown table"):
        w.append("nonsense", [{"a": 1}])


def test_a_case_written_again_keeps_only_its_newest_rows(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    w.append("ncu_metrics", [case_row("stage0_baseline", 1, metric="duration_ns", value=1.0),
                             case_row("stage0_baseline", 1, metric="ipc", value=2.0),
                             case_row("stage0_baseline", 2, metric="ipc", value=3.0)])
    w.append("ncu_metrics", [case_row("stage0_baseline", 1, metric="ipc", value=9.0)])
    df = load_run(w.path).table("ncu_metrics")
    b1 = df[df["B"] == 1]
    assert b1["value"].tolist() == [9.0]  # the older part's two rows for this case are superseded
    assert df[df["B"] == 2]["value"].tolist() == [3.0]


def test_run_json_fields_status_and_finish(tmp_path):
    w = RunWriter(tmp_path / "r", {"suite": "seed", "status": "ignored", "run_id": "my-run"})
    meta = json.loads((w.path / "run.json").read_text())
    assert meta["run_id"] == "my-run" and meta["status"] == "running" and meta["suite"] == "seed"
    assert "created" in meta
    w.update_meta(ncu={"status": "ok"})
    w.finish("complete")
    meta = json.loads((w.path / "run.json").read_text())
    assert meta["status"] == "complete" and meta["ncu"] == {"status": "ok"} and "finished" in meta
    with pytest.raises(RunStoreError, match="unknown run status"):
        w.finish("great")
    with pytest.raises(RunStoreError, match="cannot be changed"):
        w.update_meta(run_id="other")


def test_new_run_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "something").write_text("x")
    with pytest.raises(RunStoreError, match="not empty"):
        RunWriter(tmp_path / "r", {})


def test_run_json_write_is_all_or_nothing(tmp_path, monkeypatch):
    w = RunWriter(tmp_path / "r", {"suite": "seed"})
    before = (w.path / "run.json").read_text()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "replace", broken_replace)
    with pytest.raises(RunStoreError, match="cannot write .*run.json: No space left on device"):
        w.update_meta(suite="fa3-grid")
    monkeypatch.undo()
    assert (w.path / "run.json").read_text() == before  # the old run.json is whole
    assert load_run(w.path).meta["suite"] == "seed"


def test_leftover_temporaries_are_ignored_and_cleaned(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    w.append("cases", [case_row("stage0_baseline", 1, status="ok")])
    half = w.path / "tables" / "cases" / ".part-000002.parquet.tmp-999-abcd"
    half.write_bytes(b"PAR1 half a file")
    assert len(load_run(w.path).table("cases")) == 1
    w.close()  # as if its process had died (a second writer is refused while the first holds the run)
    w2 = RunWriter(w.path, {}, resume=True)
    assert not half.exists()
    assert w2.append("cases", [case_row("stage0_baseline", 2, status="ok")]).name == "part-000002.parquet"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "not a run folder"),
        (lambda p: (p.mkdir(), (p / "run.json").write_text("{not json")), "not valid JSON"),
        (lambda p: (p.mkdir(), (p / "run.json").write_text('{"status": "complete"}')), "no run_id"),
        (lambda p: p.write_text("a file"), "not a run folder"),
    ],
    ids=["missing", "no-run-json", "bad-json", "no-run-id", "a-file"],
)
def test_unreadable_run_folders_raise_one_sentence(tmp_path, make, message):
    target = tmp_path / "run"
    make(target)
    with pytest.raises(RunStoreError, match=message) as info:
        load_run(target)
    text = str(info.value)
    assert text.endswith(".") and "\n" not in text


def test_corrupt_parquet_part_raises(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    part = w.append("timings", [case_row("stage0_baseline", 1, status="ok")])
    part.write_bytes(b"this is not parquet")
    with pytest.raises(RunStoreError, match="corrupt and cannot be read as Parquet"):
        load_run(w.path).table("timings")


def test_list_runs_lists_good_and_corrupt_runs(tmp_path):
    a = RunWriter(tmp_path / "a", {"suite": "seed", "environment": {"gpu_name": "NVIDIA H100 80GB HBM3"}})
    a.append("cases", [case_row("stage0_baseline", 1, status="ok"), case_row("sdpa_cudnn", 1, status="ok")])
    a.finish("complete")
    b = RunWriter(tmp_path / "b", {"suite": "tiny"})
    b.finish("partial")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{")
    (tmp_path / "not-a-run").mkdir()
    df = list_runs(tmp_path)
    assert set(df["run_id"]) == {"a", "b", "broken"}
    by = df.set_index("run_id")
    assert by.loc["a", "gpu"] == "NVIDIA H100 80GB HBM3" and by.loc["a", "n_cases"] == 2
    assert by.loc["a", "status"] == "complete" and by.loc["b", "status"] == "partial"
    assert by.loc["broken", "status"] == "corrupt" and "not valid JSON" in by.loc["broken", "error"]
    assert (df["size_mb"] >= 0).all()
    assert by.loc["a", "wall_s"] is None and by.loc["a", "invocations"] == 1  # no wall time recorded
    assert list(list_runs(a.path)["run_id"]) == ["a"]  # a run folder itself
    with pytest.raises(RunStoreError, match="does not exist"):
        list_runs(tmp_path / "nowhere")


# A writer that behaves like the collector: one part per table per case, then the case's row in `cases`,
# as fast as it can (so that the SIGKILL lands in the middle of writes).
SWEEP = textwrap.dedent("""
    import sys
    from runstore.writer import RunWriter
    run_dir, resume, total = sys.argv[1], sys.argv[2] == "resume", int(sys.argv[3])
    w = RunWriter(run_dir, {"suite": "test"}, resume=resume)
    done = w.done_cases()
    for b in range(1, total + 1):
        key = {"impl": "stage0_baseline", "config_id": f"B{b}-H2-S64-D64-causal-fp16", "B": b, "H": 2, "S": 64,
               "D": 64, "causal": True, "dtype": "fp16"}
        if (key["impl"], key["config_id"]) in done:
            continue
        w.append("correctness", [{**key, "status": "ok", "max_abs_err": 1e-3}])
        w.append("timings", [{**key, "status": "ok", "time_ms": float(b)}])
        w.append("cases", [{**key, "status": "ok"}])
        print("stored", b, flush=True)
    w.finish("complete")
""")


def test_resume_after_the_writer_is_killed_mid_sweep(tmp_path):
    run_dir, total = tmp_path / "run", 60
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SWEEP, str(run_dir), "new", str(total)],
                            stdout=subprocess.PIPE, text=True, env=env)
    stored = 0
    deadline = time.monotonic() + 120
    while stored < 5 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        stored += line.startswith("stored")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert stored >= 5, "the writer did not get going"

    killed = load_run(run_dir)  # every part on disk is whole and readable
    # it never finished: run.json still says running, and with no process holding the run's lock it reads as
    # interrupted
    assert killed.meta["status"] == "running" and killed.status == "interrupted"
    finished = killed.table("cases")
    assert 5 <= len(finished) < total
    timings = killed.table("timings")
    assert set(finished["config_id"]) <= set(timings["config_id"])

    resumed = subprocess.run([sys.executable, "-c", SWEEP, str(run_dir), "resume", str(total)],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    # only the cases that were not finished were measured again
    assert len([ln for ln in resumed.stdout.splitlines() if ln.startswith("stored")]) == total - len(finished)
    run = load_run(run_dir)
    assert run.status == "complete"
    assert run.meta["resumes"][0]["previous_status"] == "running"
    for table in ("cases", "correctness", "timings"):
        df = run.table(table)
        assert len(df) == total and df["config_id"].is_unique, table
    assert sorted(run.table("timings")["time_ms"]) == [float(b) for b in range(1, total + 1)]


def test_git_state_given_with_a_copy_wins_over_its_git(monkeypatch, tmp_path):
    """A tree copied to a GPU machine may carry a stale .git; the commit its sender names is the one recorded."""
    from collectors.sweep import env

    monkeypatch.setenv("PERFMODEL_GIT_COMMIT", "c865a86")
    monkeypatch.setenv("PERFMODEL_GIT_DIRTY", "0")
    assert env.git_state() == ({"git_commit": "c865a86", "git_dirty": False}, {})
    monkeypatch.delenv("PERFMODEL_GIT_DIRTY")
    values, missing = env.git_state()
    assert values["git_dirty"] is None and "git_dirty" in missing
    monkeypatch.delenv("PERFMODEL_GIT_COMMIT")
    values, missing = env.git_state(tmp_path)  # not a checkout, nothing given: None with the reason
    assert values == {"git_commit": None, "git_dirty": None} and "not a git checkout" in missing["git_commit"]


def test_collect_wall_time_adds_every_invocation():
    from runstore.reader import collect_wall_s

    assert collect_wall_s({"wall_s": 522.2, "resumes": [{"wall_s": 548.1}, {"wall_s": 34.5}]}) == (1104.8, 3)
    assert collect_wall_s({"wall_s": 90.3}) == (90.3, 1)
    assert collect_wall_s({}) == (None, 1)
