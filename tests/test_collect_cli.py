"""`perfmodel collect` and `perfmodel runs` on bad input: one sentence on stderr, exit status 2, no traceback, and
nothing measured or left half-made."""

from __future__ import annotations

import pytest

from collectors.ncu import profile as ncu_profile
from perfmodel.cli import main
from runstore.writer import RunWriter


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("perfmodel: error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def no_gpu(monkeypatch):
    import collectors.timing.measure

    monkeypatch.setattr(collectors.timing.measure, "cuda_available", lambda: False)


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--suite", "nope", "--interpret"], ["unknown suite 'nope'", "seed"]),
        (["--interpret", "--stages", "stage9_magic"], ["unknown stage", "stage9_magic"]),
        (["--interpret", "--refs", "fa4"], ["unknown peer", "fa4"]),
        (["--interpret", "--stages", "none", "--refs", "none"], ["no implementation selected"]),
        (["--interpret", "--config", "B=0,H=1,S=64,D=64"], ["B must be at least 1"]),
        (["--interpret", "--config", "B=1,H=1,S=64"], ["missing D"]),
        (["--interpret", "--determinism", "0"], ["--determinism"]),
        (["--interpret", "--config", "B=16,H=16,S=2048,D=64,causal"], ["too large for the CPU interpreter"]),
        # an empty value given is refused, never read as the default (the seed config, every stage, a new run)
        (["--interpret", "--config", ""], ["empty config"]),
        (["--interpret", "--stages", ""], ["the stage list '' names no stage"]),
        (["--interpret", "--refs", ""], ["the peer list '' names no peer"]),
    ],
    ids=["suite", "stage", "peer", "nothing", "config-value", "config-missing", "determinism", "interpret-size",
         "config-blank", "stages-blank", "refs-blank"],
)
def test_bad_collect_arguments(capsys, tmp_path, argv, needles):
    code, _, err = run_cli(capsys, "collect", "--out", str(tmp_path / "runs"), *argv)
    assert_one_sentence(code, err, *needles)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_an_empty_resume_is_refused_not_a_new_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "collect", "--interpret", "--resume", "")
    assert_one_sentence(code, err, "is not a run folder")
    assert list(tmp_path.iterdir()) == []


def test_no_gpu_without_interpret_says_what_to_do(capsys, tmp_path, no_gpu):
    for extra in ([], ["--no-ncu"]):
        code, _, err = run_cli(capsys, "collect", "--out", str(tmp_path / "runs"), *extra)
        assert_one_sentence(code, err, "no CUDA GPU", "--interpret")
    assert not (tmp_path / "runs").exists()


def test_ncu_missing_is_reported_before_anything_is_measured(capsys, tmp_path, monkeypatch):
    import collectors.timing.measure

    monkeypatch.setattr(collectors.timing.measure, "cuda_available", lambda: True)  # as if on a GPU machine
    monkeypatch.delenv("PERFMODEL_NCU", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(ncu_profile, "DEFAULT_PATHS", ())
    monkeypatch.setattr(ncu_profile, "DEFAULT_GLOBS", ())
    code, _, err = run_cli(capsys, "collect", "--out", str(tmp_path / "runs"))
    assert_one_sentence(code, err, "Nsight Compute (ncu) was not found", "--no-ncu")
    assert not (tmp_path / "runs").exists()


def test_resume_of_something_that_is_not_a_run(capsys, tmp_path):
    code, _, err = run_cli(capsys, "collect", "--resume", str(tmp_path / "missing"))
    assert_one_sentence(code, err, "does not exist")
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "collect", "--resume", str(tmp_path / "empty"))
    assert_one_sentence(code, err, "not a run folder")


def test_runs_lists_runs_and_reports_a_corrupt_one(capsys, tmp_path):
    good = RunWriter(tmp_path / "20261124-101010-seed-h100", {"suite": "seed",
                                                               "environment": {"gpu_name": "NVIDIA H100 80GB HBM3"}})
    good.finish("complete")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text('{"run_id": ')
    code, out, err = run_cli(capsys, "runs", str(tmp_path))
    assert code == 0 and "Traceback" not in err
    assert "20261124-101010-seed-h100" in out and "NVIDIA H100 80GB HBM3" in out and "complete" in out
    assert "corrupt" in out and "not valid JSON" in out


def test_runs_of_a_missing_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, "runs", str(tmp_path / "nowhere"))
    assert_one_sentence(code, err, "does not exist")


def test_runs_of_an_empty_folder(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "runs", str(tmp_path))
    assert code == 0 and "no runs" in out


def test_progress_count_follows_the_ncu_session(capsys):
    """The ncu session announces its cases when it starts; the count and ETA then cover them."""
    from collectors.sweep.local import _Steps

    steps = _Steps(3, None)
    for label in ("case a", "case b", "ncu starting"):
        steps.step(label)
    steps.expect(2)  # the session's two cases
    steps.step("ncu a")
    steps.step("ncu b")
    err = capsys.readouterr().err
    assert "[4/5] ncu a" in err and "[5/5] ncu b" in err and "ETA -1" not in err and "/3] ncu a" not in err


def test_interpret_with_a_relative_out_from_another_folder(tmp_path, monkeypatch):
    # the interpreter child runs in the project folder: a relative --out (here the default, runs/) must still work
    from runstore.reader import load_run

    monkeypatch.chdir(tmp_path)
    assert main(["collect", "--interpret", "--stages", "stage0_baseline", "--refs", "none", "--config",
                 "B=1,H=1,S=16,D=64", "--no-ncu", "--determinism", "1"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert list(load_run(run_dir).table("correctness")["status"]) == ["ok"]
