"""The timeline phase of `perfmodel collect --timeline` (on by default in `--suite plan`): for each Gluon stage and
each kernel of the user's that launches Triton kernels, at each config, one Proton-instrumented launch
(collectors/timeline/case.py) after the cases, so that only a correct case is captured and a tuning stage is
captured at the kernel config the sweep timed.

Per case, in this order: the trace of the kept SMs' programs under `timeline/<impl>-<config_id>.chrome_trace.gz`
in the run folder with its `.meta.json` (the warp layout that reading it again needs), then the `timeline` rows,
the `timeline_figures` rows and last the case's `timeline_cases` row, which is what `--resume` skips (a case cut
off before it is captured again, and its newer rows replace the older ones: runstore/reader.py). What the phase
did is in run.json's `timeline`: {status, reason} when it could not run at all (Proton's instrumentation mode is
not available here and the suite, not `--timeline`, asked for it), and the cases it refused or failed.
"""

from __future__ import annotations

import gzip
import json

from kernels.workload import AttentionConfig
from runstore.reader import load_run
from runstore.safe_io import atomic_write_bytes
from runstore.schema import case_key

TRACE_DIR = "timeline"


def timeline_impls(impls) -> list:
    """The implementations a timeline is recorded for: the Gluon stages (Proton 3.6 instruments the Gluon front
    end only) and the user's kernels that may launch Triton kernels (one that declares no scope is recorded as
    not measured, with the reason)."""
    from kernels import GLUON_STAGES

    return [i for i in impls if i.name in GLUON_STAGES or (i.kind == "user" and i.triton is not False)]


def timeline_todo(writer, impls, configs) -> list[tuple[object, AttentionConfig]]:
    """(impl, config) pairs of `timeline_impls` with no timeline_cases row yet."""
    done = writer.done_cases("timeline_cases")
    return [(i, c) for c in configs for i in timeline_impls(impls) if (i.name, c.id) not in done]


def trace_path(impl: str, config_id: str) -> str:
    """Where a case's trace lies, relative to the run folder."""
    return f"{TRACE_DIR}/{impl}-{config_id}.chrome_trace.gz"


def run_timelines(opts, writer, todo, steps, record=None) -> list[str]:
    """One instrumented launch per (impl, config) of `todo`, stored as it finishes; returns the problems to print
    (the cases that failed, one sentence each). `record` is collectors.timeline.case.record_case (a test hands
    in a stand-in)."""
    from collectors.sweep.census_phase import tuned_configs
    from collectors.timeline import case as C

    record = record or C.record_case
    run = load_run(writer.path)
    corr = run.table("correctness")
    status = {(str(i), str(c)): str(s) for i, c, s in zip(corr["impl"], corr["config_id"], corr["status"])}
    tuned = tuned_configs(run)
    problems, counts = [], dict(writer.meta.get("timeline") or {}).get("counts") or {}
    for impl, cfg in todo:
        steps.step(f"timeline {impl.name} {cfg.id}")
        got = status.get((impl.name, cfg.id))
        if got != "ok":
            case = C.not_run(C.NOT_MEASURED, f"the case was not correct here (correctness: {got or 'not run'}), so "
                                             "no timeline was recorded.")
        else:
            case = record(impl, cfg, tuned_config=tuned.get((impl.name, cfg.id)), seed=opts.seed,
                          warmup_ms=opts.warmup_ms, rep_ms=opts.rep_ms)
        store_case(writer, impl.name, cfg, case)
        counts[case.row["status"]] = counts.get(case.row["status"], 0) + 1
        if case.row["status"] == C.FAILED:
            problems.append(f"timeline {impl.name} {cfg.id} failed: {case.row['reason']}")
        writer.update_meta(timeline={"status": "ok", "counts": counts})
    return problems


def store_case(writer, impl: str, cfg: AttentionConfig, case) -> None:
    """The case's trace file and rows, its timeline_cases row last."""
    key = case_key(impl, cfg)
    row = dict(case.row)
    if case.trace is not None:
        rel = trace_path(impl, cfg.id)
        path = writer.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, gzip.compress(json.dumps(case.trace, separators=(",", ":")).encode(), 6))
        meta = {**case.meta, "row": {k: _plain(v) for k, v in row.items()}}
        atomic_write_bytes(path.with_name(path.name.replace(".chrome_trace.gz", ".meta.json")),
                           (json.dumps(meta, indent=1) + "\n").encode())
        row["trace_file"] = rel
    if case.timeline is not None and not case.timeline.empty:
        writer.append("timeline", case.timeline.assign(**key))
    if case.figures is not None and not case.figures.empty:
        writer.append("timeline_figures", case.figures.rename(columns={"partition": "partition_label"}).assign(**key))
    writer.append("timeline_cases", [{**key, **row}])


def not_measured(writer, reason: str) -> None:
    """The phase could not run here at all: run.json says why."""
    writer.update_meta(timeline={"status": "not_measured", "reason": reason})


def _plain(v):
    import math

    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v
