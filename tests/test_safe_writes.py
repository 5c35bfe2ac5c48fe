"""Safe writes and processes (issue 12, items 3 and 4): one writer per run folder, exclusive new run folders, outputs
written whole or not at all, SIGTERM like Ctrl-C, children that end with their parent, stall rows that a crash
cannot lose, and a dashboard that one PID stops and that reports a busy port before any success line."""

from __future__ import annotations

import errno
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from perfmodel import runs
from perfmodel.cli import main
from runstore import safe_io, writer as store
from runstore.layout import RunStoreError
from runstore.reader import load_run
from runstore.writer import RunWriter, new_run_dir

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours is gone for this purpose
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False


# ---- one writer per run folder ----------------------------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from runstore.writer import RunWriter
    w = RunWriter(sys.argv[1], {}, resume=sys.argv[2] == "resume")
    print("holding", flush=True)
    time.sleep(120)
""")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = {"config_id": "B1-H1-S16-D64-full-fp16", "B": 1, "H": 1, "S": 16, "D": 64, "causal": False, "dtype": "fp16"}
    w = RunWriter(run_dir, {"configs": [cfg], "options": {"suite": "tiny", "stages": "stage0_baseline",
                                                         "refs": "none", "interpret": True, "ncu": False}})
    w.finish("interrupted")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), "resume"], stdout=subprocess.PIPE,
                              text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunStoreError) as e:
            RunWriter(run_dir, {}, resume=True)
        msg = str(e.value)
        assert f"process {holder.pid} on {socket.gethostname()}" in msg and "since 20" in msg
        assert msg.count(".") >= 1 and "\n" not in msg
        # and through the CLI: collect --resume is one sentence naming it
        assert main(["collect", "--resume", str(run_dir), "--interpret"]) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and "Traceback" not in err
        assert load_run(run_dir).status == "running"  # the holder is alive: it really is running
    finally:
        holder.kill()
        holder.wait()
    # the holder died without finishing: its lock went with it, the run reads as interrupted, a writer may resume
    assert load_run(run_dir).status == "interrupted"
    RunWriter(run_dir, {}, resume=True).finish("complete")
    assert not (run_dir / safe_io.LOCK_NAME).exists()


def test_the_same_process_cannot_open_two_writers_on_one_run(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    with pytest.raises(RunStoreError, match=f"process {os.getpid()}"):
        RunWriter(tmp_path / "r", {}, resume=True)
    w.close()
    RunWriter(tmp_path / "r", {}, resume=True).close()


def test_reparse_takes_the_lock(tmp_path):
    from collectors.sweep import ncu_phase

    w = RunWriter(tmp_path / "r", {})
    with pytest.raises(safe_io.LockHeld, match="is being written by"):
        ncu_phase.reparse(w.path, tmp_path / "profile.ncu-rep")
    w.close()


def test_new_run_folders_are_created_exclusively(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "new_run_id", lambda suite, gpu: "20261202-000000-seed-gpu")
    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(new_run_dir(tmp_path, "seed", "gpu"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert sorted(p.name for p in made)[0] == "20261202-000000-seed-gpu"


def test_import_gets_a_new_folder_even_when_its_name_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "new_run_id", lambda suite, gpu: "same")
    (tmp_path / "same").mkdir()
    (tmp_path / "same" / "run.json").write_text("{}")
    assert new_run_dir(tmp_path, "imported", None).name == "same-2"


# ---- outputs whole or not at all ----------------------------------------------------------------------------------
def test_report_out_is_replaced_whole_or_not_at_all(tmp_path, capsys, monkeypatch):
    out = tmp_path / "report.md"
    assert main(["report", "--format", "md", "--out", str(out)]) == 0
    good = out.read_text()
    capsys.readouterr()

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safe_io.os, "replace", full)
    assert main(["report", "--format", "md", "--out", str(out)]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith("perfmodel: error: cannot write") and "No space left on device" in err
    assert out.read_text() == good  # the good report is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # and no temporary file is left


# ---- SIGTERM like Ctrl-C; children end with their parent -------------------------------------------------------------
@pytest.mark.interpreter
def test_sigterm_stops_collect_like_ctrl_c(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "perfmodel", "collect", "--interpret", "--stages",
                             "stage0_baseline", "--refs", "triton_tl", "--no-ablation", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    deadline = time.monotonic() + 120
    worker = None
    while time.monotonic() < deadline and worker is None:  # wait for the interpreter worker to start
        for d in out.glob("*/interpret/worker.log"):
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            pids = children.read_text().split() if children.is_file() else []
            worker = int(pids[0]) if pids else None
        time.sleep(0.1)
    assert worker is not None, proc.communicate(timeout=60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    (run_dir,) = out.iterdir()
    assert load_run(run_dir).meta["status"] == "interrupted"
    assert _gone(worker), "the interpreter worker outlived the collector"


def test_a_child_ends_when_its_parent_is_killed(tmp_path):
    spawn = textwrap.dedent("""
        import subprocess, sys, time
        from runstore.safe_io import child_process_options
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], **child_process_options())
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True, env=ENV)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    assert _gone(child), "the child outlived its parent"


def test_sigterm_as_interrupt_raises_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with safe_io.sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ---- a crash between the ncu_metrics and stalls writes ------------------------------------------------------------------
def test_a_crash_after_the_stall_rows_loses_nothing(tmp_path, monkeypatch):
    from collectors.ncu import profile as NP
    from collectors.sweep import ncu_phase
    from kernels.workload import AttentionConfig

    bundled = runs.load_run(runs.default_run_dir())
    metrics = bundled.table("ncu_metrics")
    case = metrics.iloc[0]
    tidy = metrics[(metrics["impl"] == case["impl"]) & (metrics["config_id"] == case["config_id"])]
    cfg = AttentionConfig(B=int(case["B"]), H=int(case["H"]), S=int(case["S"]), D=int(case["D"]),
                          causal=bool(case["causal"]), dtype=str(case["dtype"]))
    w = RunWriter(tmp_path / "run", {"configs": [{"config_id": cfg.id, **cfg.as_dict()}]})
    w.append("correctness", [{"impl": case["impl"], "config_id": cfg.id, **cfg.as_dict(), "status": "ok"}])
    report = tmp_path / "run" / "profile.ncu-rep"
    report.write_bytes(b"")
    monkeypatch.setattr(NP, "query_metrics", lambda ncu: None)
    monkeypatch.setattr(NP, "run_session", lambda *a, **kw: NP.Session(
        command=["ncu"], returncode=0, report=report, log=report, wall_s=1.0, interrupted=False, worker_log=None))
    monkeypatch.setattr(ncu_phase, "read_counters", lambda *a, **kw: (tidy.drop(columns="run_id"), {}))
    real_append = RunWriter.append

    def crash_on_metrics(self, table, rows):
        if table == "ncu_metrics":
            raise SystemExit("killed between the two writes")
        return real_append(self, table, rows)

    monkeypatch.setattr(RunWriter, "append", crash_on_metrics)
    with pytest.raises(SystemExit):
        ncu_phase.profile(w, Path("ncu"), "2025.3.1.0", [cfg])
    monkeypatch.setattr(RunWriter, "append", real_append)
    run = load_run(w.path)
    assert not run.table("stalls").empty  # the stall rows are on disk
    assert ncu_phase.profiled_cases(run) == set()  # and the case is still to be profiled: --resume redoes both
    ncu_phase.profile(w, Path("ncu"), "2025.3.1.0", [cfg])
    run = load_run(w.path)
    assert ncu_phase.profiled_cases(run) == {(case["impl"], cfg.id)}
    stalls = run.table("stalls")
    assert not stalls.duplicated(["impl", "config_id", "kernel_index", "reason"]).any()  # newest part wins
    w.close()


# ---- the dashboard process ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_busy_port_is_reported_before_any_success_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboard", "--port", str(port), "--address", "127.0.0.1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"port {port} on 127.0.0.1 is already in use" in err


SERVE_WAIT_S = 180.0  # the dashboard's own limit is 120 s (perfmodel/commands/dashboard.py SERVE_TIMEOUT_S)


def _start_dashboard(tmp_path, own_group: bool = False, lines: queue.Queue | None = None):
    """`perfmodel dashboard` serving; `own_group`: in a process group of its own, as a terminal starts a command
    (Ctrl-C there signals the whole group); `lines` gets every line of its output, then ''."""
    pytest.importorskip("streamlit")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "perfmodel", "dashboard", "--port", str(port), "--address",
                             "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
                            cwd=tmp_path, start_new_session=own_group)
    # The server's own banner shares the pipe, and two processes write to it: Streamlit can write a line's text
    # and its newline separately, so the success line may arrive glued to the end of a banner line. Look for it
    # anywhere in a line, and give up after SERVE_WAIT_S instead of blocking on a line that never comes.
    lines = queue.Queue() if lines is None else lines

    def pump():  # every line of the pipe, then "" at its end
        for line in iter(proc.stdout.readline, ""):
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    seen, deadline = [], time.monotonic() + SERVE_WAIT_S
    while not any("perfmodel dashboard on http://127.0.0.1:" in line for line in seen):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no success line within {SERVE_WAIT_S} s: {seen}") from None
        assert line, f"the dashboard ended before its success line: {seen}"
        seen.append(line)
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # serving once the line is printed
    server = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
    return proc, server, port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["term", "int", "kill"])
def test_one_pid_stops_the_dashboard(tmp_path, sig):
    proc, server, port = _start_dashboard(tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _gone(server, 20), "the Streamlit server kept running"
    assert _nothing_listens(port), f"something still accepts connections on port {port}"


def test_ctrl_c_in_a_terminal_stops_the_server_once(tmp_path):
    # a terminal's Ctrl-C signals the whole foreground process group: the server, sharing it, stopped on that
    # SIGINT and again on the SIGTERM the dashboard then sent ("Stopping..." printed twice)
    lines: queue.Queue = queue.Queue()
    proc, server, port = _start_dashboard(tmp_path, own_group=True, lines=lines)
    assert os.getpgid(server) != os.getpgid(proc.pid)  # the server's own session: the group's signal is not its
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    out = []
    while (line := lines.get(timeout=30)) != "":
        out.append(line)
    assert _gone(server, 20) and _nothing_listens(port)
    assert "".join(out).count("Stopping...") == 1, out


def test_the_server_shows_no_deploy_button():
    from perfmodel.commands.dashboard import command

    argv = command([], 8501, "localhost")
    assert argv[argv.index("--client.toolbarMode") + 1] == "minimal"  # Streamlit's "Deploy" is not this app's


def _nothing_listens(port: int, attempts: int = 3) -> bool:
    """True when a connection to the port is refused. A connection that succeeds only because the client's
    ephemeral port happened to be the same port (a TCP self-connect on loopback, which the ephemeral range the
    free port came from allows) is no listener; a real listener accepts every attempt."""
    for _ in range(attempts):
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            return True
        with conn:
            if conn.getsockname() == conn.getpeername():
                return True
        time.sleep(1)
    return False
