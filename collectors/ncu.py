"""Nsight Compute: find `ncu`, run ONE profiling session over the worker process, export and parse the report.

The session (ANCHORS.md, "Nsight Compute facts", ncu 2025.3.1):

    ncu --nvtx --nvtx-include "perfmodel@<impl>:<config_id>/" ...   one include per case (push/pop ranges end
                                                                     in '/'; includes are OR-ed)
        --clock-control none            the GPU's own clocks, as in the timings (the default locks them low)
        --replay-mode kernel            each profiled kernel is replayed until every counter is read
        --section <the 7 of collectors.metrics.SECTIONS> --metrics <collectors.metrics.METRICS>
        -f -o <run_dir>/profile         the .ncu-rep stays in the run folder for the Nsight Compute GUI
        python -m collectors.worker --cases <run_dir>/ncu/cases.json

then two exports of the report, saved under <run_dir>/ncu/:

    ncu --import profile.ncu-rep --csv --page raw     --print-units base   > raw.csv
    ncu --import profile.ncu-rep --csv --page details --print-units base   > details.csv

The raw page has one header row, one units row, then one row per profiled kernel; numbers carry thousands
separators. The details page has one row per (kernel, section, metric) with Section Name / Metric Name /
Metric Unit / Metric Value columns, plus rows for the sections' rules. Both carry the NVTX state of each kernel
in a column whose name mentions the push/pop range ("thread Domain:Push/Pop_Range:PL_Type:PL_Value:..."): the
parser finds it by name and recovers the case from the range name inside it.

Problems a user can cause end in one sentence: `NcuMissing`, `NcuPermission` (ERR_NVGPUCTRPERM),
`NcuNoKernels` ("No kernels were profiled"), `NcuFailed` (anything else, with the tail of ncu's log).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collectors import metrics as M
from collectors.schema import PROBE_CONFIG_ID

NVTX_DOMAIN = "perfmodel"
DEFAULT_PATHS = ("/usr/local/cuda/bin/ncu",)
DEFAULT_GLOBS = ("/opt/nvidia/nsight-compute/*/ncu",)
REPORT_NAME = "profile"  # -> <run_dir>/profile.ncu-rep
NCU_DIR = "ncu"  # <run_dir>/ncu/{raw.csv,details.csv,cases-1.json,profile.log,profile.worker.jsonl}


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
    """NVTX range name of one case. '/' and '@' are NVTX filter syntax, so neither may appear."""
    name = f"{impl}:{config_id}"
    if "/" in name or "@" in name:
        raise ValueError(f"NVTX range name {name!r} may not contain '/' or '@'.")
    return name


def nvtx_includes(range_names: list[str]) -> list[str]:
    """`--nvtx-include` values selecting exactly these push/pop ranges of the perfmodel domain."""
    return [f"{NVTX_DOMAIN}@{name}/" for name in range_names]


def build_command(ncu: str | os.PathLike, report_path: str | os.PathLike, target: list[str], range_names: list[str],
                  metrics: list[str] | None = None, sections: tuple[str, ...] = M.SECTIONS) -> list[str]:
    """The one ncu command line that profiles every case's NVTX range in `target` (the worker)."""
    if not range_names:
        raise ValueError("no NVTX ranges to profile.")
    cmd = [str(ncu), "--nvtx"]
    for inc in nvtx_includes(range_names):
        cmd += ["--nvtx-include", inc]
    cmd += ["--clock-control", "none", "--replay-mode", "kernel", "--target-processes", "all"]
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
    target = [python or sys.executable, "-m", "collectors.worker", "--cases", str(cases_file),
              "--report", str(worker_log)]
    cmd = build_command(ncu, report_base, target, range_names, metrics)
    project_root = str(Path(__file__).resolve().parent.parent)
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
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=run_env, cwd=project_root)
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


# ---- parsing ----------------------------------------------------------------------------------------------------
_NUMBER_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d*)?([eE][+-]?\d+)?$|^[+-]?\.\d+([eE][+-]?\d+)?$")


def to_number(text) -> float:
    """A number from an ncu CSV cell ("1,234.5" -> 1234.5); NaN for empty, "n/a" and non-numeric cells."""
    if text is None:
        return math.nan
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    if not s or not _NUMBER_RE.match(s):
        return math.nan
    return float(s.replace(",", ""))


def _csv_rows(text: str) -> list[list[str]]:
    # ncu may print its own log lines (==PROF==, ==WARNING==) before the CSV.
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("==")]
    return list(csv.reader(io.StringIO("\n".join(lines))))


def is_metric_column(name: str) -> bool:
    """Raw ncu metric columns look like `unit__counter[.rollup...]`; identification columns do not."""
    return "__" in name and " " not in name.strip()


def find_nvtx_column(columns) -> str | None:
    """The export's column that holds each kernel's NVTX push/pop ranges (its name varies with ncu versions)."""
    cols = list(columns)
    for needle in ("push/pop", "pushpop", "nvtx", "start/stop", "range"):
        for c in cols:
            if needle in str(c).lower():
                return c
    return None


def parse_raw_csv(text: str) -> pd.DataFrame:
    """The `--page raw` export as a wide DataFrame: one row per profiled kernel, one column per header field.

    Metric columns (see `is_metric_column`) are floats; identification columns stay text. The units row is kept
    in `df.attrs["units"]` ({column: unit}).
    """
    rows = _csv_rows(text)
    if not rows:
        raise ValueError("the raw ncu export is empty.")
    header = [h.strip() for h in rows[0]]
    if "ID" not in header and not any(is_metric_column(h) for h in header):
        raise ValueError("the raw ncu export has no header row with an ID column and metric columns.")
    body = rows[1:]
    units: dict[str, str] = {}
    if body:
        first = body[0] + [""] * (len(header) - len(body[0]))
        id_pos = header.index("ID") if "ID" in header else None
        looks_like_units = (id_pos is not None and not first[id_pos].strip()) or all(
            not first[i].strip() or math.isnan(to_number(first[i]))
            for i, h in enumerate(header) if is_metric_column(h))
        if looks_like_units:
            units = {h: first[i].strip() for i, h in enumerate(header) if first[i].strip()}
            body = body[1:]
    records = []
    for r in body:
        r = r + [""] * (len(header) - len(r))
        records.append(r[:len(header)])
    df = pd.DataFrame(records, columns=header)
    df = df.loc[:, ~pd.Index(header).duplicated()]
    for c in df.columns:
        if is_metric_column(c):
            df[c] = df[c].map(to_number).astype(float)
    if "ID" in df.columns:
        df["ID"] = df["ID"].map(to_number)
    df.attrs["units"] = units
    return df


def _col(df: pd.DataFrame, *names: str) -> str | None:
    lower = {str(c).strip().lower(): c for c in df.columns}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def parse_details_csv(text: str) -> pd.DataFrame:
    """The `--page details` export as a long DataFrame with columns
    id, kernel, nvtx, section, metric_name, unit, value (float or NaN), value_text, rule_name, rule_type,
    rule_description, estimated_speedup. Rule-only rows (no metric name) are kept with metric_name empty."""
    rows = _csv_rows(text)
    if not rows:
        raise ValueError("the details ncu export is empty.")
    header = [h.strip() for h in rows[0]]
    df = pd.DataFrame([(r + [""] * (len(header) - len(r)))[:len(header)] for r in rows[1:]], columns=header)
    section = _col(df, "Section Name")
    metric = _col(df, "Metric Name")
    value = _col(df, "Metric Value")
    if section is None or metric is None or value is None:
        raise ValueError("the details ncu export has no Section Name / Metric Name / Metric Value columns.")
    nvtx = find_nvtx_column(df.columns)
    out = pd.DataFrame({
        "id": df[_col(df, "ID")].map(to_number) if _col(df, "ID") else math.nan,
        "kernel": df[_col(df, "Kernel Name")] if _col(df, "Kernel Name") else "",
        "nvtx": df[nvtx] if nvtx else "",
        "section": df[section].str.strip(),
        "metric_name": df[metric].str.strip(),
        "unit": df[_col(df, "Metric Unit")].str.strip() if _col(df, "Metric Unit") else "",
        "value": df[value].map(to_number).astype(float),
        "value_text": df[value].str.strip(),
    })
    for name, label in (("rule_name", "Rule Name"), ("rule_type", "Rule Type"),
                        ("rule_description", "Rule Description"), ("estimated_speedup", "Estimated Speedup")):
        c = _col(df, label)
        out[name] = df[c] if c else ""
    out["estimated_speedup"] = out["estimated_speedup"].map(to_number)
    return out


# `<impl>:<config_id>` for attention cases, `<probe>:probe` for the ceiling microbenchmarks (schema.PROBE_CONFIG_ID)
_CASE_RE = re.compile(r"([A-Za-z][A-Za-z0-9_]*):(B\d+-H\d+-S\d+-D\d+-(?:causal|full)-[A-Za-z0-9]+|"
                      + re.escape(PROBE_CONFIG_ID) + r"\b)")


def case_of(nvtx_cell: str, known: dict[str, tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """(impl, config_id) of the perfmodel range in one NVTX cell, or None.

    With `known` ({range name: (impl, config_id)}) the longest known name found in the cell wins; otherwise the
    cell is searched for `<impl>:<config_id>` with config ids as kernels.workload writes them.
    """
    cell = str(nvtx_cell or "")
    if known:
        hits = [name for name in known if name in cell]
        if hits:
            return known[max(hits, key=len)]
    for m in _CASE_RE.finditer(cell):
        if m.group(1) != NVTX_DOMAIN:
            return m.group(1), m.group(2)
    return None


# canonical units of short names, and how to get there from what ncu may print
_SCALE_TO = {
    "_ns": ("ns", {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6,
                   "second": 1e9, "s": 1e9}),
    "_bytes": ("byte", {"byte": 1, "kbyte": 1e3, "mbyte": 1e6, "gbyte": 1e9, "tbyte": 1e12}),
    "_hz": ("Hz", {"hz": 1, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "cycle/second": 1, "cycle/usecond": 1e6,
                   "cycle/nsecond": 1e9, "cycle/msecond": 1e3}),
}


def _canonical(short: str, value: float, unit: str) -> tuple[float, str]:
    for suffix, (target, scale) in _SCALE_TO.items():
        if short.endswith(suffix):
            factor = scale.get(unit.strip().lower())
            if factor is not None:
                return value * factor, target
    return value, unit


def tidy_metrics(raw: pd.DataFrame, details: pd.DataFrame | None = None,
                 cases: dict[str, dict] | None = None) -> pd.DataFrame:
    """Long rows of the ncu_metrics table (collectors/schema.py) from parsed exports.

    `cases` maps range names to the case's columns ({"impl", "config_id", "B", ..., "dtype"}); kernels whose
    NVTX cell names no case are kept with impl and config_id from the cell when it has the perfmodel form, and
    dropped otherwise (they were not ours to profile). `kernel_index` numbers the kernels of one case in the
    order ncu profiled them. Details rows are added with source "details" and metric "<Section>: <Metric>".
    """
    known = {name: (c["impl"], c["config_id"]) for name, c in (cases or {}).items()}
    by_case = {(c["impl"], c["config_id"]): c for c in (cases or {}).values()}
    nvtx_col = find_nvtx_column(raw.columns)
    kernel_col = _col(raw, "Kernel Name") or _col(raw, "Function Name")
    units = raw.attrs.get("units", {})
    rows = []
    kernel_ids: dict[float, tuple] = {}
    counters: dict[tuple[str, str], int] = {}
    order = raw.sort_values("ID") if "ID" in raw.columns else raw
    for _, r in order.iterrows():
        case = case_of(r[nvtx_col], known) if nvtx_col else None
        if case is None:
            continue
        index = counters.get(case, 0)
        counters[case] = index + 1
        kernel = str(r[kernel_col]) if kernel_col else ""
        if "ID" in raw.columns:
            kernel_ids[r["ID"]] = (case, kernel, index)
        base = {"impl": case[0], "config_id": case[1], "kernel": kernel, "kernel_index": index}
        for col in raw.columns:
            if not is_metric_column(col):
                continue
            value = r[col]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            short = M.short_name(col)
            v, unit = _canonical(short, float(value), units.get(col, ""))
            rows.append({**base, "metric": short, "raw_metric": col, "source": "raw", "value": v, "unit": unit})
    if details is not None and not details.empty:
        for _, d in details.iterrows():
            if not d["metric_name"] or (isinstance(d["value"], float) and math.isnan(d["value"])):
                continue
            hit = kernel_ids.get(d["id"])
            if hit is None:
                case = case_of(d["nvtx"], known)
                if case is None:
                    continue
                hit = (case, str(d["kernel"]), None)
            case, kernel, index = hit
            label = f"{d['section']}: {d['metric_name']}"
            rows.append({"impl": case[0], "config_id": case[1], "kernel": kernel, "kernel_index": index,
                         "metric": label, "raw_metric": label, "source": "details", "value": float(d["value"]),
                         "unit": d["unit"]})
    df = pd.DataFrame(rows, columns=["impl", "config_id", "kernel", "kernel_index", "metric", "raw_metric",
                                     "source", "value", "unit"])
    if by_case and not df.empty:
        extra = pd.DataFrame([{k: v for k, v in c.items()} for c in by_case.values()])
        keep = [c for c in extra.columns if c not in ("impl", "config_id")]
        df = df.merge(extra[["impl", "config_id", *keep]], on=["impl", "config_id"], how="left")
    return df


def stalls_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Rows of the stalls table: per (case, kernel) and stall reason, the warp cycles stalled per issued
    instruction and its fraction of the sum over all reasons (which ncu reports as Warp Cycles Per Issued
    Instruction). Kernels without stall metrics contribute no rows."""
    cols = ["impl", "config_id", "kernel", "kernel_index", "reason", "cycles_per_issue", "fraction"]
    if tidy.empty:
        return pd.DataFrame(columns=cols)
    raw = tidy[tidy["source"] == "raw"].copy()
    raw["reason"] = raw["raw_metric"].map(M.stall_reason)
    st = raw[raw["reason"].notna()].copy()
    if st.empty:
        return pd.DataFrame(columns=cols)
    keys = ["impl", "config_id", "kernel", "kernel_index"]
    st = st.rename(columns={"value": "cycles_per_issue"})
    total = st.groupby(keys, dropna=False)["cycles_per_issue"].transform("sum")
    st["fraction"] = (st["cycles_per_issue"] / total).where(total > 0)
    extra = [c for c in ("B", "H", "S", "D", "causal", "dtype") if c in st.columns]
    return st[cols + extra].reset_index(drop=True)


# ---- cases file shared with the worker --------------------------------------------------------------------------
def write_cases_file(path: str | os.PathLike, cases: list[dict], seed: int = 0) -> Path:
    """The worker's input: [{"impl", "config": {B, H, S, D, causal, dtype}, "range": name}, ...]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"domain": NVTX_DOMAIN, "seed": seed, "cases": cases}
    path.write_text(json.dumps(payload, indent=1))
    return path
