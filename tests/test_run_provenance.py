"""What a run says about itself besides its measurements (issue 21, items 2 and 4).

- A table the run lists but lacks (a copy of a run without tables/timings/): the run store names it in one sentence
  (runstore.reader.Run.missing_tables_problem), which `perfmodel report` prints as a warning and puts in a
  banner, `perfmodel gates` prints and cannot pass on, and the dashboard shows atop every page.
- Whether the run measured the installed kernel code (perfmodel.runs.kernel_code): a line in the report's header,
  on the dashboard's overview and in `perfmodel runs`, absent when run.json's kernels hash is the installed one.

The runs here are copies of the bundled runs (real measurements) with a folder deleted or run.json's kernels hash
rewritten, and SYNTHETIC runs written with the store's own writer.
"""

from __future__ import annotations

import html
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kernels.source import kernels_code
from perfmodel import runs
from perfmodel.cli import main
from runstore.reader import load_run
from runstore.writer import RunWriter
from synthetic_run import timing_row
from test_gates_exit import write_run

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app" / "streamlit_app.py")
H100 = "20261124-173318-custom-nvidia-h100-80gb-hbm3"
H200 = "20261202-053909-seed-nvidia-h200"
PAGES = ["overview", "stages", "constraints", "stalls", "timeline", "roofline", "batching", "correctness", "runs"]


def _copy(run_id: str, dst: Path) -> Path:
    return Path(shutil.copytree(runs.resolve_run_dirs([run_id])[0], dst))


@pytest.fixture
def lost_timings(tmp_path) -> Path:
    """The bundled H200 run, copied without its timings table."""
    run = _copy(H200, tmp_path / H200)
    shutil.rmtree(run / "tables" / "timings")
    return run


def _set_kernels(run_dir: Path, code: dict | None) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    for key in ("kernels_hash", "kernels_files", "kernels_hash_source"):
        meta["environment"].pop(key, None)
    if code is not None:
        meta["environment"].update(code)
    (run_dir / "run.json").write_text(json.dumps(meta))


# ---- a table the run lists and lacks ------------------------------------------------------------------------------
def test_the_store_names_the_table_the_run_lists_and_lacks(lost_timings):
    run = load_run(lost_timings)
    assert run.missing_tables() == ["timings"]
    problem = run.missing_tables_problem()
    assert problem.startswith(f"run {H200} lacks the table timings (tables/timings/)") and problem.endswith(".")
    assert "implies" in problem and "predates run.json's tables_written" in problem  # a run made before the record
    assert load_run(runs.resolve_run_dirs([H200])[0]).missing_tables_problem() is None  # the intact run


def test_every_committed_run_lacks_no_table_its_run_json_implies():
    committed = [d for d in (ROOT / "runs").iterdir() if (d / "run.json").is_file()] + runs.bundled_run_dirs()
    for d in committed:
        run = load_run(d)
        listed, recorded = run.listed_tables()
        assert recorded or {"correctness", "timings", "cases", "ncu_metrics"} <= set(listed), d.name
        assert run.missing_tables() == [], d.name


def test_a_new_run_records_the_tables_it_wrote_and_names_one_it_lost(tmp_path):
    from kernels.suites import SEED

    w = RunWriter(tmp_path / "r", {"suite": "seed"})
    w.append("timings", [timing_row("stage0_baseline", SEED, 0.5)])
    w.append("cases", [{"impl": "stage0_baseline", "config_id": SEED.id, **SEED.as_dict(), "status": "ok"}])
    w.finish("complete")
    run = load_run(tmp_path / "r")
    assert run.meta["tables_written"] == ["cases", "timings"] == run.tables()
    assert run.missing_tables() == []  # the tables it never wrote (census, ncu_metrics, ...) are not missing
    shutil.rmtree(tmp_path / "r" / "tables" / "cases")
    problem = load_run(tmp_path / "r").missing_tables_problem()
    assert "lacks the table cases (tables/cases/), which its run.json lists (tables_written)" in problem
    RunWriter(tmp_path / "r", {}, resume=True).finish("complete")  # a --resume keeps the record
    assert load_run(tmp_path / "r").missing_tables() == ["cases"]


def test_report_warns_and_shows_a_banner(lost_timings, tmp_path, capsys):
    problem = load_run(lost_timings).missing_tables_problem()
    out = tmp_path / "r.html"
    assert main(["report", str(lost_timings), "--no-model", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"perfmodel: warning: {problem}\n" in err
    text = out.read_text(encoding="utf-8")
    assert f'<p class="banner" role="alert">{html.escape(problem)}</p>' in text
    assert text.index('class="banner"') < text.index('<dl class="meta">')  # above everything
    assert main(["report", str(lost_timings), "--no-model", "--format", "md", "--out", "-"]) == 0
    assert f"> **Warning:** {problem}" in capsys.readouterr().out
    assert main(["report", H200, "--no-model", "--out", str(out)]) == 0  # the intact run: no banner, no warning
    assert "warning" not in capsys.readouterr().err and 'class="banner"' not in out.read_text(encoding="utf-8")


def test_gates_cannot_pass_on_a_run_that_lacks_a_table(tmp_path, capsys):
    run = write_run(tmp_path, "plan")  # SYNTHETIC: every gate passes
    assert main(["gates", str(run)]) == 0
    capsys.readouterr()
    shutil.rmtree(run / "tables" / "batching")  # read by the batching gates and, as a fallback, the TFLOP/s gates
    problem = load_run(run).missing_tables_problem()
    for extra in ([], ["--allow-missing"]):
        assert main(["gates", str(run), *extra, "--format", "csv"]) == 3
        out, err = capsys.readouterr()
        assert f"perfmodel: {problem}\n" in err
    from perfmodel.plan.gates import evaluate_gates

    g = evaluate_gates(load_run(run)).set_index("gate")
    assert "pass" not in set(g.loc[["stage3_batching", "stage5_tflops"], "status"])
    assert "lacks the table batching it lists, so this cannot pass" in g.loc["stage5_tflops", "detail"]
    assert g.loc["stage5_correctness_20_configs", "status"] == "pass"  # read from correctness only: still a pass


def test_dashboard_shows_the_banner_on_every_page(lost_timings, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import data

    problem = load_run(lost_timings).missing_tables_problem()
    assert data.run_info(str(lost_timings))["missing_tables"] == problem
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(lost_timings))
    at = AppTest.from_file(APP, default_timeout=60).run()
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any(w.value == problem for w in at.warning), page


def test_the_dashboard_command_warns_before_it_serves(lost_timings, monkeypatch, capsys):
    from perfmodel.commands import dashboard

    class Server:  # the Streamlit server, stood in for: the command reads the runs while it starts
        returncode = 0

        def poll(self):
            return None

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(dashboard.subprocess, "Popen", lambda *a, **k: Server())
    monkeypatch.setattr(dashboard, "wait_serving", lambda *a, **k: None)
    monkeypatch.setattr(dashboard, "stop", lambda proc: None)
    assert main(["dashboard", str(lost_timings), "--port", "8599"]) == 0
    err = capsys.readouterr().err
    assert f"perfmodel: warning: {load_run(lost_timings).missing_tables_problem()}" in err


# ---- the kernel code a run measured -------------------------------------------------------------------------------
def test_the_report_header_says_when_the_kernel_code_differs(tmp_path, capsys):
    assert main(["report", H100, "--no-model", "--format", "md", "--out", "-"]) == 0
    line = runs.kernel_code(runs.load_run(runs.resolve_run_dirs([H100])[0])).line
    assert line.startswith("measured with kernel code that differs from the installed kernels/ (run: 60cd5aa3508c")
    assert f"- **kernels**: {line}" in capsys.readouterr().out
    same = _copy(H200, tmp_path / "same")
    _set_kernels(same, kernels_code())  # as collect records it on this install
    assert runs.kernel_code(runs.load_run(same)).status == "installed"
    assert main(["report", str(same), "--no-model", "--format", "md", "--out", "-"]) == 0
    assert "**kernels**" not in capsys.readouterr().out
    out = tmp_path / "r.html"
    assert main(["report", H100, "--no-model", "--out", str(out)]) == 0
    assert f'<dt>kernels</dt><dd class="warn">{html.escape(line)}</dd>' in out.read_text(encoding="utf-8")


def test_a_run_whose_kernel_code_is_not_recorded_says_so(tmp_path):
    unknown = _copy(H200, tmp_path / "unknown")
    _set_kernels(unknown, None)
    code = runs.kernel_code(runs.load_run(unknown))
    assert code.status == "unknown" and "is not recorded" in code.line and "only the git commit 07d4ee7" in code.line
    meta = json.loads((unknown / "run.json").read_text())
    meta["mode"] = "import"
    (unknown / "run.json").write_text(json.dumps(meta))
    assert "an imported profile does not record it" in runs.kernel_code(runs.load_run(unknown)).line


def test_a_resume_on_other_kernel_code_is_named(tmp_path):
    resumed = _copy(H200, tmp_path / "resumed")
    _set_kernels(resumed, kernels_code())
    meta = json.loads((resumed / "run.json").read_text())
    meta["resumes"] = [{"at": "2026-12-03T00:00:00+0000", "environment": {"kernels_hash": "0123456789ab"}}]
    (resumed / "run.json").write_text(json.dumps(meta))
    code = runs.kernel_code(runs.load_run(resumed))
    assert code.status == "differs" and "a --resume of it ran kernel code 0123456789ab" in code.line


def test_the_overview_shows_the_kernel_code_line_only_for_other_code(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    same = _copy(H200, tmp_path / "same")
    _set_kernels(same, kernels_code())
    h100 = runs.resolve_run_dirs([H100])[0]
    for run_dir, shown in ((h100, True), (same, False)):
        monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(run_dir))
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception
        lines = [m.value for m in [*at.warning, *at.info] if m.value.startswith("Kernel code: ")]
        assert bool(lines) == shown, (run_dir, lines)


def test_perfmodel_runs_has_a_kernel_code_column_and_line(tmp_path, capsys):
    _copy(H100, tmp_path / H100)
    _set_kernels(_copy(H200, tmp_path / "same"), kernels_code())
    assert main(["runs", str(tmp_path)]) == 0
    header, *rows, line = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "kernels"
    assert {r.split()[0]: r.split()[-1] for r in rows} == {H100: "differs", H200: "installed"}
    assert line.startswith(f"{H100}: measured with kernel code that differs")  # one line: the run of other code


def test_new_runs_of_merge_carry_the_kernel_code_and_refuse_shards_of_other_code():
    from collectors.sweep.merge import VERSION_FIELDS

    assert "kernels_hash" in VERSION_FIELDS  # a merged run's environment is its shards', which must agree on it


def _backfill_script():
    path = ROOT / "scripts" / "backfill_kernels_hash.py"
    spec = importlib.util.spec_from_file_location("backfill_kernels_hash", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("git") is None or subprocess.run(["git", "-C", str(ROOT), "rev-parse"],
                                                                  capture_output=True).returncode != 0,
                    reason="needs this checkout's git history")
def test_the_backfilled_hashes_are_those_of_each_runs_commit():
    from kernels.source import kernels_digest

    backfill = _backfill_script()
    for d in runs.bundled_run_dirs():
        env = runs.load_run(d).environment
        assert env["kernels_hash_source"].startswith(f"backfilled from git commit {env['git_commit'][:7]}")
        assert kernels_digest(backfill.kernels_at(env["git_commit"])) == {
            "kernels_hash": env["kernels_hash"], "kernels_files": env["kernels_files"]}, d.name
        assert backfill.backfill(d / "run.json", write=False).startswith("has kernels_hash")  # done once
