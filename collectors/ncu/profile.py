"""Nsight Compute, the collection step: find `ncu`, run ONE profiling session over the worker process, export CSVs.

(nsight-python's split: annotation is the worker's NVTX ranges (collectors/sweep/worker.py), collection is this module,
extraction is collectors/ncu/read.py (the .ncu-rep through NVIDIA's `ncu_report`) with collectors/ncu/parse.py
(the CSV exports) as its fallback, and the collector's phase that ties them together is collectors/sweep/ncu_phase.py.)

The session (ANCHORS.md, "Nsight Compute facts", ncu 2025.3.1):

    ncu --nvtx --nvtx-include "perfmodel@<impl>:<config_id>/" ...   one include per case (push/pop ranges end
                                                                     in '/'; includes are OR-ed)
        --clock-control none            the GPU's own clocks, as in the timings (the default locks them low)
        --replay-mode kernel            each profiled kernel is replayed until every counter is read
        --import-source yes             the kernels' source files go into the report, so the Nsight Compute GUI
                                        shows the Triton source beside the SASS on a machine without this checkout
        --section <the 7 of collectors.ncu.metrics.SECTIONS> --metrics <collectors.ncu.metrics.extra_metrics()>
        -f -o <run_dir>/profile         the .ncu-rep stays in the run folder for the Nsight Compute GUI
        python -m collectors.sweep.worker --cases <run_dir>/ncu/cases-1.json --report <run_dir>/ncu/profile.worker.jsonl

and, only where the report cannot be read through `ncu_report`, two exports of it under <run_dir>/ncu/:

    ncu --import profile.ncu-rep --csv --page raw     --print-units base   > raw.csv
    ncu --import profile.ncu-rep --csv --page details --print-units base   > details.csv

(collectors/ncu/parse.py describes their layout; they round every value to two decimals.)

Problems a user can cause end in one sentence: `NcuMissing`, `NcuPermission` (ERR_NVGPUCTRPERM),
`NcuNoKernels` ("No kernels were profiled"), `NcuFailed` (anything else, with the tail of ncu's log).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from collectors.ncu import metrics as M
from runstore.safe_io import child_process_options

NVTX_DOMAIN = "perfmodel"
DEFAULT_PATHS = ("/usr/local/cuda/bin/ncu",)
DEFAULT_GLOBS = ("/opt/nvidia/nsight-compute/*/ncu",)
REPORT_NAME = "profile"  # -> <run_dir>/profile.ncu-rep
# <run_dir>/ncu/{cases-1.json,profile.log,profile.worker.jsonl} and, when the CSV fallback read the report, raw.csv
# and details.csv
NCU_DIR = "ncu"


class NcuError(RuntimeError):
    """Nsight Compute could not produce counters; the message is one sentence."""


class NcuMissing(NcuError):
    pass


class NcuPermission(NcuError):
    pass


class NcuNoKernels(NcuError):
    pass


class NcuFailed(NcuError):
    pass


# ---- finding ncu ------------------------------------------------------------------------------------------------
def _version_key(path: str) -> tuple:
    return tuple(int(x) if x.isdigit() else 0 for x in re.findall(r"\d+", path))


def find_ncu(explicit: str | os.PathLike | None = None) -> Path | None:
    """The ncu executable: `explicit`, $PERFMODEL_NCU, PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-compute/*."""
    for candidate in (explicit, os.environ.get("PERFMODEL_NCU")):
        if candidate:
            p = Path(candidate)
            return p if p.is_file() and os.access(p, os.X_OK) else None
    on_path = shutil.which("ncu")
    if on_path:
        return Path(on_path)
    for p in DEFAULT_PATHS:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return Path(p)
    for pattern in DEFAULT_GLOBS:
        found = sorted((p for p in glob.glob(pattern) if os.access(p, os.X_OK)), key=_version_key)
        if found:
            return Path(found[-1])
    return None


def require_ncu(explicit: str | os.PathLike | None = None) -> Path:
    path = find_ncu(explicit)
    if path is None:
        raise NcuMissing(
            "Nsight Compute (ncu) was not found on PATH, in /usr/local/cuda/bin or /opt/nvidia/nsight-compute; "
            "install it, put it on PATH, or run with --no-ncu."
        )
    return path


def ncu_version(path: str | os.PathLike) -> str | None:
    """`ncu --version`'s version number (e.g. 2025.3.1.0), or None when it cannot be read."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Version\s+([0-9][0-9.]*)", out.stdout + out.stderr)
    return m.group(1) if m else None


# ---- which metrics this GPU has ---------------------------------------------------------------------------------
def query_metrics(ncu: str | os.PathLike, chip: str | None = None, timeout_s: float = 120) -> set[str] | None:
    """Counter names (`unit__counter`, without rollups) that `ncu --query-metrics` lists for the attached GPU or
    `chip`; None when the query fails (then nothing is filtered)."""
    cmd = [str(ncu), "--query-metrics"]
    if chip:
        cmd += ["--chip", chip]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    names = set()
    for line in out.stdout.splitlines():
        token = line.strip().split(" ", 1)[0] if line.strip() else ""
        if "__" in token and not token.startswith("=="):
            names.add(M.base_name(token))
    return names or None


def filter_available(wanted: list[str], available: set[str] | None) -> tuple[list[str], list[str]]:
    """(kept, dropped): the metrics of `wanted` this GPU has, judged by their counter (the part before the first
    dot) against `available` (query_metrics). A counter whose unit prefix (`sm__`, `launch__`, ...) the listing
    does not cover at all is kept: the listing says nothing about it. With no listing, everything is kept."""
    if not available:
        return list(wanted), []
    bases = {M.base_name(n) for n in available}
    units = {b.split("__", 1)[0] for b in bases}
    kept, dropped = [], []
    for name in wanted:
        base = M.base_name(name)
        if base in bases or base.split("__", 1)[0] not in units:
            kept.append(name)
        else:
            dropped.append(name)
    return kept, dropped


# ---- the session ------------------------------------------------------------------------------------------------
def range_name(impl: str, config_id: str) -> str:
    """NVTX range name of one case. '/' and '@' are NVTX filter syntax, so neither may appear ('#', as in the label
    `stage5_full#v3` of an extra case, may)."""
    name = f"{impl}:{config_id}"
    if "/" in name or "@" in name:
        raise ValueError(f"NVTX range name {name!r} may not contain '/' or '@'.")
    return name


def nvtx_includes(range_names: list[str]) -> list[str]:
    """`--nvtx-include` values selecting exactly these push/pop ranges of the perfmodel domain."""
    return [f"{NVTX_DOMAIN}@{name}/" for name in range_names]


def build_command(ncu: str | os.PathLike, report_path: str | os.PathLike, target: list[str], range_names: list[str],
                  metrics: list[str] | None = None, sections: tuple[str, ...] = M.SECTIONS) -> list[str]:
    """The one ncu command line that profiles every case's NVTX range in `target` (the worker), with the kernels'
    source files imported into the report (`--import-source yes`, see the module docstring)."""
    if not range_names:
        raise ValueError("no NVTX ranges to profile.")
    cmd = [str(ncu), "--nvtx"]
    for inc in nvtx_includes(range_names):
        cmd += ["--nvtx-include", inc]
    cmd += ["--clock-control", "none", "--replay-mode", "kernel", "--import-source", "yes",
            "--target-processes", "all"]
    for s in sections:
        cmd += ["--section", s]
    metrics = M.extra_metrics() if metrics is None else metrics
    if metrics:
        cmd += ["--metrics", ",".join(metrics)]
    cmd += ["-f", "-o", str(report_path)]
    return cmd + list(target)


def classify_failure(log: str) -> NcuError | None:
    """The user-facing error a session log shows, or None when it shows none."""
    if "ERR_NVGPUCTRPERM" in log:
        return NcuPermission(
            "ncu has no permission to read the GPU's performance counters (ERR_NVGPUCTRPERM); run as root or "
            "allow non-admin profiling (NVreg_RestrictProfilingToAdminUsers=0), or run with --no-ncu."
        )
    if "No kernels were profiled" in log:
        return NcuNoKernels(
            "ncu profiled no kernels: no case ran inside its NVTX range (see ncu/profile.log in the run folder)."
        )
    return None


@dataclass(frozen=True)
class Session:
    """What one ncu session left behind."""

    command: list[str]
    returncode: int
    report: Path | None  # the .ncu-rep, when ncu wrote one
    log: Path
    wall_s: float
    # True when the session was stopped by Ctrl-C (SIGINT) before its worker finished: the report then holds the
    # kernels ncu had profiled by then, which the collector keeps (`--resume` profiles the rest)
    interrupted: bool = False
    worker_log: Path | None = None  # the worker's JSON lines, one per case it ran


# Seconds ncu gets to write the report of what it profiled after a Ctrl-C before it is killed: short enough to fit
# the 30 s a batch system's `timeout -k 30` leaves between SIGINT and SIGKILL, with the export after it.
NCU_INTERRUPT_GRACE_S = 12.0


def run_session(ncu: str | os.PathLike, run_dir: str | os.PathLike, cases_file: str | os.PathLike,
                range_names: list[str], metrics: list[str] | None = None, timeout_s: float | None = None,
                python: str | None = None, env: dict | None = None, report_name: str = REPORT_NAME,
                on_case=None) -> Session:
    """Run the worker under ncu once for all cases; raises an NcuError subclass when no report came out.

    `on_case(record)` is called with each line the worker writes (a case done: its range has been profiled), while
    the session runs: progress for a session that can take minutes.

    The report is `<run_dir>/<report_name>.ncu-rep`; ncu's output goes to `<run_dir>/ncu/<report_name>.log`
    and the worker's per-case status lines to `<run_dir>/ncu/<report_name>.worker.jsonl` (`Session.worker_log`).
    """
    import time

    run_dir = Path(run_dir)
    ncu_dir = run_dir / NCU_DIR
    ncu_dir.mkdir(parents=True, exist_ok=True)
    report_base = run_dir / report_name
    worker_log = ncu_dir / f"{report_name}.worker.jsonl"
    worker_log.write_text("")  # this session's cases only
    target = [python or sys.executable, "-m", "collectors.sweep.worker", "--cases", str(cases_file),
              "--report", str(worker_log)]
    cmd = build_command(ncu, report_base, target, range_names, metrics)
    project_root = str(Path(__file__).resolve().parents[2])
    run_env = dict(os.environ if env is None else env)
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, run_env.get("PYTHONPATH")) if p)
    run_env.setdefault("PYTHONUNBUFFERED", "1")
    # torch.compile (the flex peer) would otherwise start a pool of compile processes that ncu follows.
    run_env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    log_path = ncu_dir / f"{report_name}.log"
    t0 = time.perf_counter()
    interrupted = False
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(_quote(c) for c in cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=run_env, cwd=project_root,
                                    **child_process_options())  # ncu ends with the collector
        except OSError as e:
            raise NcuMissing(f"ncu at {ncu} could not be started ({e.strerror or e}).") from None
        try:
            rc = _wait(proc, timeout_s, worker_log, on_case)
        except subprocess.TimeoutExpired:
            rc = _stop(proc)
            log.write(f"\nperfmodel: ncu session stopped after {timeout_s:.0f} s.\n")
        except KeyboardInterrupt:
            # ncu stops its target and writes the report of the kernels profiled so far when it gets SIGINT
            # (a terminal's Ctrl-C reaches it directly; send it again for a SIGINT sent to this process alone)
            rc = _stop(proc)
            interrupted = True
            log.write("\nperfmodel: ncu session interrupted (Ctrl-C); keeping the kernels profiled so far.\n")
    wall = time.perf_counter() - t0
    text = log_path.read_text(errors="replace")
    report = report_base.parent / f"{report_base.name}.ncu-rep"
    if interrupted and not report.is_file():
        raise KeyboardInterrupt
    error = classify_failure(text)
    if error is not None and not interrupted:
        raise error
    if not report.is_file():
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        raise NcuFailed(f"ncu exited with status {rc} and wrote no report ({tail[:300]}).")
    return Session(command=cmd, returncode=rc, report=report, log=log_path, wall_s=wall, interrupted=interrupted,
                   worker_log=worker_log)


def _wait(proc: subprocess.Popen, timeout_s: float | None, worker_log: Path, on_case) -> int:
    """Wait for ncu (subprocess.TimeoutExpired past `timeout_s`), passing each new worker line to `on_case`."""
    import time

    if on_case is None:
        return proc.wait(timeout=timeout_s)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = 0
    while True:
        try:
            rc = proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            rc = None
        lines = worker_log.read_text(errors="replace").split("\n")[:-1]  # complete lines only
        for line in lines[seen:]:
            seen += 1
            try:
                on_case(json.loads(line))
            except json.JSONDecodeError:
                continue
        if rc is not None:
            return rc
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout_s)


def _stop(proc: subprocess.Popen) -> int:
    """SIGINT to ncu, NCU_INTERRUPT_GRACE_S to write its report, then SIGKILL; the exit status."""
    import signal

    try:
        proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=NCU_INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        proc.kill()
        proc.wait()
        raise


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def export_csv(ncu: str | os.PathLike, report: str | os.PathLike, out_dir: str | os.PathLike,
               timeout_s: float = 600, suffix: str = "") -> tuple[Path, Path]:
    """Write `raw<suffix>.csv` and `details<suffix>.csv` (base units) of `report` into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for page in ("raw", "details"):
        cmd = [str(ncu), "--import", str(report), "--csv", "--page", page, "--print-units", "base"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.SubprocessError) as e:
            raise NcuFailed(f"exporting the {page} page of {report} failed ({e}).") from None
        if out.returncode != 0 or not out.stdout.strip():
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise NcuFailed(f"exporting the {page} page of {report} failed ({last[:300]}).")
        path = out_dir / f"{page}{suffix}.csv"
        path.write_text(out.stdout)
        paths.append(path)
    return paths[0], paths[1]


# ---- cases file shared with the worker --------------------------------------------------------------------------
def write_cases_file(path: str | os.PathLike, cases: list[dict], seed: int = 0) -> Path:
    """The worker's input: [{"impl", "config": {B, H, S, D, causal, dtype}, "range": name}, ...]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"domain": NVTX_DOMAIN, "seed": seed, "cases": cases}
    path.write_text(json.dumps(payload, indent=1))
    return path
