"""Cached loaders: which runs the dashboard shows, and every table of a run, computed once per run.

Run folders come from the `PERFMODEL_RUN_DIRS` environment variable (os.pathsep-separated; `perfmodel dashboard`
sets it) or from the arguments after `--` on `streamlit run app/streamlit_app.py -- RUN ...`; with neither, the
run bundled with the package. Loaders are keyed by the folder and the modification time of its run.json, so a
run that is still being collected is re-read when it changes.

A run's analysis tables are computed once per process (`tables`, thread-safe) and handed to the pages through
`st.cache_data` (which gives each session its own copy). `warm` computes them in a background thread while the
server starts (`python -m app.serve`, what `perfmodel dashboard` runs), so the first page does not wait for them.
The predictive model's table (`model_cases`) is not among them (`tables` asks `reporting.collect` for no model):
only the Stages page shows it, so only that page computes it, once (it reads compiled instruction mixes from the
disk cache and the package's shipped ones, so it is quick for the bundled runs, seconds per kernel otherwise), and
`warm` computes it after every run's tables.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from perfmodel import runs as _runs
from perfmodel.errors import UserError
from perfmodel.model import model_cases as _cases
from perfmodel.reports import compare as _compare, displays as _displays, report_data as _report_data
from perfmodel.reports import timing_view as _timing_view

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
def _run_info(run_dir: str, stamp: float, table_dirs: tuple[str, ...]) -> dict:
    # keyed by the run's table folders too: a table deleted (or restored) is seen without a change to run.json
    run = _runs.load_run(run_dir)
    code = _runs.kernel_code(run)
    return {"path": run_dir, "run_id": run.run_id, "gpu": _runs.gpu_name(run) or "no GPU", "status": run.status,
            "created": str(run.meta.get("created", "")), "suite": str(run.meta.get("suite", "") or ""),
            "label": _runs.run_label(run), "note": str(run.meta.get("note", "") or ""),
            "missing_tables": run.missing_tables_problem() or "", "kernels": code.status, "kernels_line": code.line,
            "unmeasured": _runs.unmeasured_reason(run) or ""}


def _table_dirs(run_dir: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(p.name for p in (Path(run_dir) / "tables").iterdir()))
    except OSError:
        return ()


def run_info(run_dir: str) -> dict:
    """run_id, gpu, status, created, suite, label and note of a run (cheap: run.json and the names of its tables);
    `missing_tables`: the sentence naming the tables it lists and lacks ('' when none), `kernels`: whether it
    measured the installed kernel code (installed, differs, unknown) and `kernels_line` the sentence that says so
    (perfmodel.runs.kernel_code); `unmeasured`: why it holds no GPU timings ('' for a run of the GPU: an
    --interpret run's charts say this instead of guessing, perfmodel.runs.unmeasured_reason)."""
    return _run_info(run_dir, _stamp(run_dir), _table_dirs(run_dir))


_TABLES: dict[str, tuple[float, dict]] = {}  # run folder -> (run.json stamp, its tables)
_TABLES_LOCK = threading.Lock()
_RUN_LOCKS: dict[str, threading.Lock] = {}


def tables(run_dir: str, stamp: float) -> dict:
    """Every analysis table of the run (perfmodel.reports.report_data.collect) as a dict of DataFrames, computed once
    per process and run.json stamp; a second caller (the warm-up thread, a page) waits for the first."""
    with _TABLES_LOCK:
        lock = _RUN_LOCKS.setdefault(run_dir, threading.Lock())
    with lock:
        hit = _TABLES.get(run_dir)
        if hit is None or hit[0] != stamp:
            run = _runs.load_run(run_dir)
            data = _report_data.collect(run, predictive=False)  # the model: `model_table`
            hit = (stamp, {
                "timing": _timing_view.timing_lines(run),  # how the times were measured (CUDA graph, host loop)
                "gates": data.gates, "stages": data.stages, "peers": data.peers, "constraints": data.constraints,
                "stalls": data.stalls, "roofline": data.roofline, "batching": data.batching,
                "batching_summary": data.batching_summary, "headlines": data.headlines, "mapping": data.mapping,
                "evidence": data.evidence, "stall_shift": data.stall_shift, "regressions": data.regressions,
                "correctness": data.correctness,
                "timeline": data.timeline,  # perfmodel.reports.timeline_view.TimelineData, None without a timeline
            })
            _TABLES[run_dir] = hit
        return hit[1]


_MODEL: dict[str, tuple[float, pd.DataFrame]] = {}  # run folder -> (run.json stamp, model_cases.model_table)
# One model computation at a time, for every run: the census captures a stage's launch by patching its module,
# which two threads must not do at once; and the run's own lock stays free for the other pages meanwhile.
_MODEL_LOCK = threading.Lock()


def model_table(run_dir: str, stamp: float) -> pd.DataFrame:
    """The predictive model per stage case of the run (perfmodel.model.model_cases.model_table on the run's stage
    table), computed once per process and run.json stamp, one run at a time."""
    stages = tables(run_dir, stamp)["stages"]
    with _MODEL_LOCK:
        hit = _MODEL.get(run_dir)
        if hit is None or hit[0] != stamp:
            hit = (stamp, _cases.model_table(_runs.load_run(run_dir), stages))
            _MODEL[run_dir] = hit
        return hit[1]


@st.cache_data(show_spinner="Compiling each stage for the predictive model (seconds per kernel, once)…")
def _model_cases(run_dir: str, stamp: float) -> pd.DataFrame:
    return model_table(run_dir, stamp)


def model_cases(run_dir: str) -> pd.DataFrame:
    """perfmodel.model.model_cases.model_table of the run: the model's time, error, binding term and terms per case."""
    return _model_cases(run_dir, _stamp(run_dir))


@st.cache_data(show_spinner="Reading the run…")
def _bundle(run_dir: str, stamp: float) -> dict:
    return tables(run_dir, stamp)


def bundle(run_dir: str) -> dict:
    """Every analysis table of the run (perfmodel.reports.report_data.collect), as a dict of DataFrames."""
    return _bundle(run_dir, _stamp(run_dir))


@st.cache_data(show_spinner="Comparing runs…")
def _comparison(run_dir: str, base_dir: str, stamps: tuple[float, float]) -> pd.DataFrame:
    return _compare.compare_runs(_runs.load_run(run_dir), _runs.load_run(base_dir))


@st.cache_data(show_spinner="Reading the timeline…")
def _timeline_rows(run_dir: str, impl: str, config_id: str, stamp: float) -> pd.DataFrame:
    from perfmodel.reports.timeline_view import case_timeline

    return case_timeline(_runs.load_run(run_dir), impl, config_id)


def timeline_rows(run_dir: str, impl: str, config_id: str) -> pd.DataFrame:
    """The `timeline` rows of one case of the run (the scopes of its kept SMs' programs)."""
    return _timeline_rows(run_dir, impl, config_id, _stamp(run_dir))


def comparison(run_dir: str, base_dir: str) -> pd.DataFrame:
    return _comparison(run_dir, base_dir, (_stamp(run_dir), _stamp(base_dir)))


@st.cache_data(show_spinner=False)
def _premise(run_dir: str, base_dir: str, stamps: tuple[float, float]) -> _compare.Premise:
    return _compare.premise(_runs.load_run(run_dir), _runs.load_run(base_dir))


def premise(run_dir: str, base_dir: str) -> _compare.Premise:
    """perfmodel.reports.compare.premise: the GPU models and kernel code of the two runs (whether their times are
    judged)."""
    return _premise(run_dir, base_dir, (_stamp(run_dir), _stamp(base_dir)))


def config_ids(run_dir: str) -> list[str]:
    """The configs the run holds, in its stage table's order."""
    return list(dict.fromkeys(bundle(run_dir)["stages"]["config_id"]))


@functools.lru_cache(maxsize=1)
def _gate_configs() -> tuple[str, ...]:
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.plan.gate_reading import scope

    return tuple(dict.fromkeys(c.id for g in load_model().gates for c in scope(g)))


@functools.lru_cache(maxsize=1)
def batching_command() -> str:
    """The command `perfmodel gates` names for the plan's batching gate
    (perfmodel.plan.gate_reading.measure_command)."""
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.plan.gate_reading import measure_command

    return next((measure_command(g) for g in load_model().gates if g.metric.startswith("batching.")), "")


def default_config(ids: list[str]) -> int:
    """Index in `ids` of the config the sidebar opens on: the first config the plan's gates cover (the seed config,
    which the first gates read) that the run holds, else the first."""
    return next((ids.index(c) for c in _gate_configs() if c in ids), 0)


def _warm(dirs: list[str]) -> None:
    from app import charts  # the pages' imports: plotly (app.widgets imports this module: not imported here)

    for i, d in enumerate(dirs):
        try:
            t = tables(d, _stamp(d))
        except UserError:  # the page shows the message; nothing to warm
            continue
        if i == 0:  # plotly builds its trace classes on first use: draw the overview's figure once
            first = t["stages"]["config_id"].iloc[0] if not t["stages"].empty else None
            charts.stages_figure(t["stages"][t["stages"]["config_id"] == first],
                                 t["peers"][t["peers"]["config_id"] == first]).to_plotly_json()
            _displays.gates_display(t["gates"]).style.to_html()  # pandas' Styler (jinja2), as the gate table uses
    for d in dirs:  # the Stages page's model last: it compiles kernels, and no other page needs it
        try:
            model_table(d, _stamp(d))
        except UserError:
            continue


def warm(dirs: list[str]) -> None:
    """Import what the pages import and compute the runs' tables, the first run first (the sidebar opens on it),
    the last next (the Runs page compares it with the first). `app/serve.py` calls this in a background thread
    while the server waits for a browser; a run that cannot be read is left for the page to report."""
    _warm(list(dict.fromkeys([*dirs[:1], *dirs[-1:], *dirs])))


def safe(fn, *args):
    """Call a loader; a UserError (missing or corrupt run) becomes (None, message) instead of a traceback."""
    try:
        return fn(*args), None
    except UserError as e:
        return None, str(e)
