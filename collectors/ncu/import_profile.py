"""An Nsight Compute report of any kernels as a run folder (`perfmodel import`).

Reads the report the way the collector reads its own sessions (collectors/ncu/read.py for .ncu-rep through
ncu_report, exact values; collectors/ncu/parse.py for CSV exports) but keeps every kernel (`any_kernel`), then
writes ncu_metrics and stalls into a new run folder whose run.json says where the profile came from.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from collectors.ncu import parse as P
from runstore.writer import RunWriter, new_run_dir


class ImportProblem(ValueError):
    """The profile cannot be imported, in one sentence."""


def _text(path: Path) -> str:
    """A CSV export's text, plain or gzipped."""
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def _read(profile: Path, details: Path | None) -> tuple[pd.DataFrame, dict]:
    name = profile.name.lower()
    if name.endswith(".ncu-rep") or name.endswith(".ncu-rep.gz"):
        from collectors.ncu.profile import NcuError
        from collectors.ncu.read import read_in_child

        if details is not None:
            raise ImportProblem("--details goes with a raw CSV export, not with a .ncu-rep (which holds both).")
        info: dict = {}
        try:
            tidy = read_in_child(profile, None, any_kernel=True, info=info)
        except NcuError as exc:
            raise ImportProblem(str(exc)) from None
        return tidy, {"source_format": "ncu-rep", **info}
    try:
        raw = P.parse_raw_csv(_text(profile))
        det = P.parse_details_csv(_text(details)) if details is not None else None
    except OSError as exc:
        raise ImportProblem(f"cannot read {exc.filename}: {exc.strerror}.") from None
    except ValueError as exc:
        raise ImportProblem(f"{profile} is not an Nsight Compute raw CSV export ({exc})") from None
    return P.tidy_metrics(raw, det, None, any_kernel=True), {"source_format": "csv", "gpu_name": None}


def import_profile(profile: Path, out_dir: Path, details: Path | None = None) -> tuple[Path, str]:
    """Write the run folder of `profile` under `out_dir`; returns (its path, a one-line summary)."""
    if not profile.is_file():
        raise ImportProblem(f"{profile} does not exist or is not a file.")
    if details is not None and not details.is_file():
        raise ImportProblem(f"--details {details} does not exist or is not a file.")
    tidy, info = _read(profile, details)
    if tidy.empty:
        raise ImportProblem(f"{profile} holds no profiled kernel with metrics.")
    stalls = P.stalls_table(tidy)
    impls = list(dict.fromkeys(tidy["impl"]))
    gpu = info.get("gpu_name")
    meta = {
        "suite": "imported", "mode": "import", "configs": [],
        "impls": [{"name": n, "kind": "imported", "description": f"profiled kernel(s) from {profile.name}",
                   "available": True, "reason": None} for n in impls],
        "source": {"profile": str(profile.resolve()), "details": str(details.resolve()) if details else None,
                   "format": info.get("source_format")},
        "environment": {"gpu_name": gpu, "missing": {} if gpu else {
            "gpu_name": "not in the profile (a CSV export names no GPU; a .ncu-rep without device attributes)"}},
        "ncu": {"status": "ok", "imported": True},
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        run_dir = new_run_dir(out_dir, "imported", gpu)
        writer = RunWriter(run_dir, meta, run_id=run_dir.name)
        writer.append("ncu_metrics", tidy)
        writer.append("stalls", stalls)
        writer.finish("complete")
    except OSError as exc:
        raise ImportProblem(f"cannot write the run under {out_dir}: {exc.strerror or exc}.") from None
    kernels = tidy.groupby(["impl", "config_id", "kernel_index"]).ngroups
    return run_dir, (f"imported {kernels} kernel(s) of {len(impls)} implementation(s) ({', '.join(impls[:6])}"
                     f"{', ...' if len(impls) > 6 else ''}) from {profile.name}" + (f" on {gpu}" if gpu else ""))
