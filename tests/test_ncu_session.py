"""The ncu session's process handling, with a stand-in `ncu` (no GPU here): a normal end, a Ctrl-C that keeps the
report of what was profiled so far, a Ctrl-C before any report, a session past its time limit, and the counter
permission error. The stand-in reads the real command line `collectors.ncu.profile.build_command` writes
(`-o REPORT`)."""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time

import pytest

from collectors.ncu import profile as ncu_profile

FAKE_NCU = """#!{python}
import json, signal, sys, time
args = sys.argv[1:]
report = args[args.index("-o") + 1] + ".ncu-rep"
mode = {mode!r}

def on_sigint(*_):
    if mode == "report-on-interrupt":
        open(report, "w").write("partial report")
        print("==PROF== Report: " + report, flush=True)
    sys.exit(130)

signal.signal(signal.SIGINT, on_sigint)
print("==PROF== Connected to process 1", flush=True)
if mode == "progress":  # the worker's lines appear one by one while the session runs
    worker_log = args[args.index("--report") + 1]
    for i in range(3):
        with open(worker_log, "a") as f:
            print(json.dumps(dict(range="case%d" % i, status="ok")), file=f)
        time.sleep(0.3)
    mode = "finish"
if mode == "finish":
    open(report, "w").write("report")
    print("==PROF== Report: " + report, flush=True)
    sys.exit(0)
if mode == "permission":
    print("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance Counters",
          flush=True)
    sys.exit(1)
time.sleep(60)
"""


def _fake_ncu(tmp_path, mode: str):
    path = tmp_path / f"ncu-{mode}"
    path.write_text(FAKE_NCU.format(python=sys.executable, mode=mode))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _session(tmp_path, mode, **kw):
    run_dir = tmp_path / "run"
    cases = ncu_profile.write_cases_file(run_dir / "ncu" / "cases-1.json", [], 0)
    return ncu_profile.run_session(_fake_ncu(tmp_path, mode), run_dir, cases,
                                   ["stage0_baseline:B1-H1-S64-D64-full-fp16"], metrics=[], **kw)


def _ctrl_c_after(seconds: float):
    """SIGINT to this process only (as a signal sent to the collector alone would be): run_session forwards it."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_a_finished_session_returns_its_report(tmp_path):
    s = _session(tmp_path, "finish")
    assert s.report.is_file() and s.returncode == 0 and not s.interrupted
    assert s.log.read_text().startswith("$ ")


def test_ctrl_c_keeps_the_report_of_what_was_profiled(tmp_path):
    timer = _ctrl_c_after(1.5)
    t0 = time.monotonic()
    s = _session(tmp_path, "report-on-interrupt")
    timer.join()
    assert s.interrupted and s.report.read_text() == "partial report"
    assert time.monotonic() - t0 < 1.5 + ncu_profile.NCU_INTERRUPT_GRACE_S
    assert "interrupted" in s.log.read_text()


def test_ctrl_c_without_a_report_interrupts(tmp_path, monkeypatch):
    monkeypatch.setattr(ncu_profile, "NCU_INTERRUPT_GRACE_S", 2.0)
    timer = _ctrl_c_after(1.5)
    with pytest.raises(KeyboardInterrupt):
        _session(tmp_path, "exit-on-interrupt")
    timer.join()


def test_a_session_past_its_limit_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(ncu_profile, "NCU_INTERRUPT_GRACE_S", 2.0)
    with pytest.raises(ncu_profile.NcuFailed, match="wrote no report"):
        _session(tmp_path, "exit-on-interrupt", timeout_s=1.0)
    assert "stopped after 1 s" in (tmp_path / "run" / "ncu" / "profile.log").read_text()


def test_counter_permission_is_one_clear_error(tmp_path):
    with pytest.raises(ncu_profile.NcuPermission, match="ERR_NVGPUCTRPERM"):
        _session(tmp_path, "permission")


def test_a_missing_ncu_binary(tmp_path):
    run_dir = tmp_path / "run"
    cases = ncu_profile.write_cases_file(run_dir / "ncu" / "cases-1.json", [], 0)
    with pytest.raises(ncu_profile.NcuMissing):
        ncu_profile.run_session(tmp_path / "no-such-ncu", run_dir, cases, ["x:y"], metrics=[])


def test_progress_reports_each_case_as_the_worker_finishes_it(tmp_path):
    seen = []
    s = _session(tmp_path, "progress", on_case=lambda rec: seen.append((rec["range"], time.monotonic())))
    assert [r for r, _ in seen] == ["case0", "case1", "case2"] and s.returncode == 0
    assert seen[-1][1] - seen[0][1] > 0.3  # reported while the session ran, not all at its end
