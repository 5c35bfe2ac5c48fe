"""Nsight Compute, the extraction step: a .ncu-rep read through NVIDIA's `ncu_report` module into ncu_metrics rows.

The values are the report's own, unrounded (the CSV exports round them to two decimals, so small stall reasons
such as branch_resolving read 0 there). The module is NVIDIA's (its licence is NVIDIA's, not this project's) and
is found in this order:

1. `import ncu_report`: the PyPI package `ncu-report` (this project's `[ncu]` extra); it needs no ncu install,
   and its 2026.3.1 reads the reports of ncu 2025.3.1 (ANCHORS.md);
2. the copy shipped with the Nsight Compute that ran the session: `<install>/extras/python/ncu_report.py`, where
   `<install>` is the folder of the ncu executable (/opt/nvidia/nsight-compute/2025.3.1/ncu), or, for the CUDA
   toolkit's `bin/ncu` (a script that runs the newest install), `<toolkit>/nsight-compute-*` and
   collectors.ncu.profile.DEFAULT_GLOBS' installs, newest first.

`load_module` returns None when neither imports; the collector then falls back to the CSV exports
(collectors/ncu/parse.py). The module is native code that can take its process down (the copy shipped with
ncu 2025.3.1 died with SIGSEGV in `IMetric.unit()` on the lent H200, where the PyPI 2026.3.1 reads the same
reports), so the collector reads a session's report in a child process, `python -m collectors.ncu.read`
(`read_in_child`): a crash there is a `ReportUnreadable` and the CSV fallback, not a lost run.

The rows are built with ncu_parse's helpers, so both sources give the same frame:

- raw rows: every numeric metric of each profiled kernel (`IAction.metric_names()`), as the `--page raw`
  export lists them, with short names and canonical units (`ncu_parse.raw_row`);
- details rows: each section's header metrics as `<Section>: <label>` (`ncu_parse.details_row`), which are the
  metric rows of the `--page details` export (that export also shows three L2-compression rows of the memory
  workload analysis that the report's sections do not carry as metrics; they have no counterpart here);
- the case of a kernel: its NVTX push/pop ranges (`IAction.nvtx_state()`: domains and their ranges), mapped by
  `ncu_parse.case_of_ranges` with the same rule as a CSV cell;
- `kernel`: the report's demangled name (`IAction.NameBase_DEMANGLED`); for templated kernels it spells the
  template arguments' casts out (`(int)64`) where the CSV export prints `64`.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import importlib
import importlib.metadata
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collectors.ncu import parse as P
from collectors.ncu.profile import DEFAULT_GLOBS, NcuError

MODULE = "ncu_report"
DISTRIBUTION = "ncu-report"  # on PyPI
SHIPPED_DIR = Path("extras") / "python"  # inside an Nsight Compute install


class ReportUnreadable(NcuError):
    """ncu_report could not open a report; the message is one sentence."""


@dataclass(frozen=True)
class ReportModule:
    """An imported ncu_report and where it came from (what run.json records of it)."""

    module: object
    path: str  # the folder it was imported from
    version: str | None  # the PyPI package's version, or the Nsight Compute install's

    def describe(self) -> dict:
        return {"module": MODULE, "version": self.version, "path": self.path}


def _version_key(path) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", str(path)))


def shipped_dirs(ncu: str | Path | None) -> list[Path]:
    """The `extras/python` folders that may hold the ncu_report of the Nsight Compute behind `ncu`, best first."""
    if ncu is None:
        return []
    exe = Path(ncu).resolve()
    installs = [exe.parent]
    installs += sorted((Path(p) for p in glob.glob(str(exe.parent.parent / "nsight-compute-*"))),
                       key=_version_key, reverse=True)
    installs += sorted((Path(p).parent for p in {g for pattern in DEFAULT_GLOBS for g in glob.glob(pattern)}),
                       key=_version_key, reverse=True)
    dirs = []
    for install in installs:
        d = install / SHIPPED_DIR
        if (d / f"{MODULE}.py").is_file() and d not in dirs:
            dirs.append(d)
    return dirs


def _found(module) -> ReportModule:
    """Where an imported ncu_report came from: the PyPI package (a package folder, with its distribution's
    version) or an install's `extras/python/ncu_report.py` (with the install's version, from its path)."""
    where = Path(module.__file__).resolve()
    if where.name == "__init__.py":
        try:
            version = importlib.metadata.version(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            version = None
        return ReportModule(module, str(where.parent), version)
    m = re.search(r"(\d{4}\.\d+(?:\.\d+)*)", str(where.parent))
    return ReportModule(module, str(where.parent), m.group(1) if m else None)


def _import(folder: Path | None = None) -> ReportModule | None:
    """ncu_report as `import ncu_report` finds it, or from `folder` (the shipped ncu_report.py imports its
    extension `_ncu_report` from its own folder, so the folder goes on sys.path while it is imported)."""
    if folder is not None:
        sys.path.insert(0, str(folder))
    try:
        return _found(importlib.import_module(MODULE))
    except ImportError:
        return None
    finally:
        if folder is not None:
            sys.path.remove(str(folder))


def load_module(ncu: str | Path | None = None) -> ReportModule | None:
    """ncu_report from PyPI, else from the Nsight Compute install of the executable `ncu`; None when neither
    can be imported (the caller falls back to the CSV exports)."""
    found = _import()
    for folder in ([] if found else shipped_dirs(ncu)):
        found = _import(folder)
        if found:
            break
    return found


def _number(metric) -> float | None:
    """A metric's value as a float, or None when it has none or it is text (as the CSV export's n/a cells)."""
    try:
        value = metric.value()
    except Exception:  # a metric the module cannot decode has no value here, as it has none in the export
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _text(metric) -> str | None:
    """A text metric's value (e.g. the device's name), or None."""
    if metric is None:
        return None
    try:
        value = metric.as_string()
    except Exception:  # not a text metric, or one the module cannot decode
        return None
    return str(value).strip() or None


def push_pop_ranges(action) -> list[tuple[str, str]]:
    """[(domain name, range name), ...] of the NVTX push/pop ranges a profiled kernel ran inside."""
    state = action.nvtx_state()
    if state is None:
        return []
    out = []
    for domain_id in state.domains():
        domain = state.domain_by_id(domain_id)
        out += [(domain.name(), str(name)) for name in domain.push_pop_ranges()]
    return out


def _actions(context):
    for r in range(context.num_ranges()):
        rng = context.range_by_idx(r)
        for a in range(rng.num_actions()):
            yield rng.action_by_idx(a)


def _open(module: ReportModule, path: Path):
    try:
        return module.module.load_report(str(path))
    except Exception as exc:  # the module raises plain exceptions (FileNotFoundError, RuntimeError) with a reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReportUnreadable(f"ncu_report could not read {path} ({reason[:200]}).") from None


def read_report(path: str | Path, cases: dict[str, dict] | None = None,
                module: ReportModule | None = None, any_kernel: bool = False,
                info: dict | None = None) -> pd.DataFrame:
    """The ncu_metrics rows of a .ncu-rep (or a gzipped .ncu-rep.gz), as `ncu_parse.tidy_metrics` gives them
    from that report's CSV exports but with exact values.

    `cases` is the session's {range name: case columns}; kernels outside every case are left out, as there, unless
    `any_kernel` (an imported profile: every kernel, named by `ncu_parse.imported_case`). `info`, when given, gets
    the report's GPU (`gpu_name`, from the first kernel's device__attribute_display_name).
    Raises ReportUnreadable when the report cannot be opened, NcuError when no ncu_report can be imported.
    """
    module = module or load_module()
    if module is None:
        raise NcuError("NVIDIA's ncu_report module is not installed (pip install ncu-report).")
    path = Path(path)
    if path.suffix == ".gz":
        with tempfile.TemporaryDirectory(prefix="ncu-rep-") as tmp:
            plain = Path(tmp) / path.stem
            with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return read_report(plain, cases, module, any_kernel, info)
    known = P.known_ranges(cases)
    rows: list[dict] = []
    counters: dict[tuple[str, str], int] = {}
    for action in _actions(_open(module, path)):
        if info is not None and "gpu_name" not in info:
            info["gpu_name"] = _text(action.metric_by_name("device__attribute_display_name"))
        ranges = push_pop_ranges(action)
        case = P.case_of_ranges(ranges, known)
        if case is None and any_kernel:
            case = P.imported_case([name for _, name in ranges], action.name(action.NameBase_DEMANGLED))
        if case is None:
            continue
        index = counters.get(case, 0)
        counters[case] = index + 1
        base = {"impl": case[0], "config_id": case[1], "kernel": action.name(action.NameBase_DEMANGLED),
                "kernel_index": index}
        for name in dict.fromkeys(action.metric_names()):
            if not P.is_metric_column(name):
                continue
            metric = action.metric_by_name(name)
            value = _number(metric) if metric is not None else None
            if value is not None:
                rows.append(P.raw_row(base, name, value, metric.unit()))
        for section in sorted(action.sections(), key=lambda s: s.order()):
            for metric in section.header_metrics():
                value = _number(metric)
                if value is not None:
                    rows.append(P.details_row(base, section.name(), metric.label() or metric.name(), value,
                                              metric.unit()))
    return P.tidy_frame(rows, cases)


# ---- in a child process -----------------------------------------------------------------------------------------
def read_in_child(path: str | Path, cases: dict[str, dict] | None = None, ncu: str | Path | None = None,
                  timeout_s: float = 1800, any_kernel: bool = False, info: dict | None = None) -> pd.DataFrame:
    """`read_report` run by `python -m collectors.ncu.read` (module docstring: why); ReportUnreadable when that
    process fails (the module crashed, could not be imported, or could not open the report)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="ncu-read-") as tmp:
        cases_file, out = Path(tmp) / "cases.json", Path(tmp) / "tidy.parquet"
        cases_file.write_text(json.dumps(cases or {}))
        # the child runs in the checkout (cwd=root): a path relative to the caller's folder must be made absolute
        cmd = [sys.executable, "-m", "collectors.ncu.read", str(Path(path).resolve()), "--cases", str(cases_file),
               "--out", str(out)]
        if ncu is not None:
            cmd += ["--ncu", str(ncu)]
        if any_kernel:
            cmd.append("--any-kernel")
        info_file = Path(tmp) / "info.json"
        if info is not None:
            cmd += ["--info", str(info_file)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root)
        except subprocess.TimeoutExpired:
            raise ReportUnreadable(f"ncu_report took over {timeout_s:.0f} s to read {path}.") from None
        if proc.returncode != 0:
            if proc.returncode < 0:
                how = f"killed by {signal.Signals(-proc.returncode).name}"
            else:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                if proc.returncode in (2, 3):  # main's own one-sentence reasons
                    raise ReportUnreadable(last)
                how = f"exit status {proc.returncode}: {last[:200]}"
            raise ReportUnreadable(f"ncu_report stopped while reading {path} ({how}).")
        if info is not None and info_file.exists():
            info.update(json.loads(info_file.read_text()))
        return pd.read_parquet(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collectors.ncu.read",
                                     description="Read a .ncu-rep into ncu_metrics rows (a Parquet file).")
    parser.add_argument("report", help=".ncu-rep or .ncu-rep.gz")
    parser.add_argument("--cases", help="JSON file: {range name: case columns}")
    parser.add_argument("--out", required=True, help="Parquet file to write")
    parser.add_argument("--ncu", help="the ncu executable whose install may ship ncu_report")
    parser.add_argument("--any-kernel", action="store_true", help="keep kernels outside the toolkit's ranges")
    parser.add_argument("--info", help="JSON file to write the report's GPU name to")
    args = parser.parse_args(argv)
    module = load_module(args.ncu)
    if module is None:
        print("NVIDIA's ncu_report module could not be imported (pip install ncu-report).", file=sys.stderr)
        return 3
    cases = json.loads(Path(args.cases).read_text()) if args.cases else None
    try:
        info: dict = {}
        tidy = read_report(args.report, cases, module, args.any_kernel, info)
    except ReportUnreadable as exc:
        print(str(exc), file=sys.stderr)
        return 2
    tidy.to_parquet(args.out, index=False)
    if args.info:
        Path(args.info).write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
