"""Cached loaders: which runs the dashboard shows, and every table of a run, computed once per run.

Run folders come from the `PERFMODEL_RUN_DIRS` environment variable (os.pathsep-separated; `perfmodel dashboard`
sets it) or from the arguments after `--` on `streamlit run app/streamlit_app.py -- RUN ...`; with neither, the
run bundled with the package. Loaders are keyed by the folder and the modification time of its run.json, so a
run that is still being collected is re-read when it changes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from perfmodel import compare as _compare
from perfmodel import report as _report
from perfmodel import runs as _runs
from perfmodel.errors import UserError

ENV_VAR = "PERFMODEL_RUN_DIRS"


def run_dirs() -> list[str]:
    """The run folders to show, in the order given."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        paths = [p for p in env.split(os.pathsep) if p]
    elif Path(sys.argv[0]).name == "streamlit_app.py" and len(sys.argv) > 1:
        paths = sys.argv[1:]
    else:
        paths = []
    return [str(p) for p in _runs.resolve_run_dirs(paths)]


def _stamp(run_dir: str) -> float:
    try:
        return (Path(run_dir) / "run.json").stat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False)
def _run_info(run_dir: str, stamp: float) -> dict:
    run = _runs.load_run(run_dir)
    return {"path": run_dir, "run_id": run.run_id, "gpu": _runs.gpu_name(run) or "no GPU", "status": run.status,
            "created": str(run.meta.get("created", "")), "suite": str(run.meta.get("suite", "")),
            "label": _runs.run_label(run), "note": str(run.meta.get("note", "") or "")}


def run_info(run_dir: str) -> dict:
    """run_id, gpu, status, created, suite, label and note of a run (cheap: run.json only)."""
    return _run_info(run_dir, _stamp(run_dir))


@st.cache_data(show_spinner="Reading the run…")
def _bundle(run_dir: str, stamp: float) -> dict:
    data = _report.collect(_runs.load_run(run_dir))
    return {
        "gates": data.gates, "stages": data.stages, "peers": data.peers, "constraints": data.constraints,
        "stalls": data.stalls, "roofline": data.roofline, "batching": data.batching,
        "batching_summary": data.batching_summary, "headlines": data.headlines, "mapping": data.mapping,
    }


def bundle(run_dir: str) -> dict:
    """Every analysis table of the run (perfmodel.report.collect), as a dict of DataFrames."""
    return _bundle(run_dir, _stamp(run_dir))


@st.cache_data(show_spinner="Comparing runs…")
def _comparison(run_dir: str, base_dir: str, stamps: tuple[float, float]) -> pd.DataFrame:
    return _compare.compare_runs(_runs.load_run(run_dir), _runs.load_run(base_dir))


def comparison(run_dir: str, base_dir: str) -> pd.DataFrame:
    return _comparison(run_dir, base_dir, (_stamp(run_dir), _stamp(base_dir)))


def safe(fn, *args):
    """Call a loader; a UserError (missing or corrupt run) becomes (None, message) instead of a traceback."""
    try:
        return fn(*args), None
    except UserError as e:
        return None, str(e)
