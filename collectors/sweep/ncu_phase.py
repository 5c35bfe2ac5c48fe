"""The collector's Nsight Compute phase: ONE session over every correct case not profiled yet, plus the extra cases
other phases hand in, read into the ncu_metrics and stalls tables, and what it did in run.json's `ncu`.

    profile(writer, ncu, ncu_version, configs, tuned_configs=..., extra_cases=[...], seed=0, timeout_s=3600,
            steps=None) -> problems

is what `perfmodel collect` calls (collectors/sweep/collect.py); `reparse(run_dir, report)` replaces a finished run's
counters with those read again from its report (runs whose counters came from the rounded CSV exports).

An extra case is {"impl": <name the worker resolves, e.g. "stage5_full">, "label": <the `impl` its rows carry,
e.g. "stage5_full#3fa9c2d1">, "config": AttentionConfig, "tuned_config": <the config string the worker pins>};
its NVTX range is `<label>:<config_id>` (so a label may hold '#' but never '/' or '@'), and like every case it is
profiled once per run: a `--resume` skips the cases whose rows are stored already.

The report is read exactly through NVIDIA's ncu_report (collectors/ncu/read.py); only when that module cannot be
imported, or cannot open the report, are the CSV exports made and parsed (collectors/ncu/parse.py). Each entry of
run.json's `ncu.sessions` says which: `parsed_from` ("ncu_report" | "csv"), `ncu_report` ({module, version, path}
of the module that read it, or null) and, for the CSV, `csv_reason`. It also keeps `metrics_dropped`: the requested
metrics this GPU does not list, left off the command line (the phase's problems name them, so collect prints them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from collectors.ncu import metrics as M, parse as P, profile as NP, read as ncu_read
from runstore.layout import RUN_JSON, TABLES_DIR
from runstore.reader import load_run
from runstore.safe_io import FolderLock, atomic_write_bytes, atomic_write_json
from runstore.schema import CONFIG_COLUMNS, PROBE_CONFIG_ID, columns
from runstore.writer import RunWriter

# what a probe's (collectors.ceilings.ceilings.PROBES) rows hold in the config columns
PROBE_COLUMNS = {c: None for c in CONFIG_COLUMNS if c != "config_id"}


# ---- what the session profiles ----------------------------------------------------------------------------------
def profiled_cases(run) -> set[tuple[str, str]]:
    """(impl, config_id) of every case with counters stored in the run (what a `--resume` skips)."""
    df = run.table("ncu_metrics")
    return set(zip(df["impl"].astype(str), df["config_id"].astype(str))) if not df.empty else set()


def plan_cases(correctness: pd.DataFrame, configs, tuned_configs: dict[tuple[str, str], str] | None = None,
               extra_cases: list[dict] | None = None, have: set[tuple[str, str]] = frozenset()
               ) -> tuple[list[dict], dict[str, dict]]:
    """(the worker's cases, {range name: the case's columns in ncu_metrics}) of one session: every case that is
    correct in `correctness`, of a config in `configs`, then `extra_cases`, then the ceiling probes, leaving out
    those in `have`. The probes ride along only when there is something else to profile: their counters, and a
    kernel with no branch at all (ANCHORS.md: branch uniformity then reads 0)."""
    by_id = {c.id: c for c in configs}
    tuned_configs = tuned_configs or {}
    cases: list[dict] = []
    mapping: dict[str, dict] = {}

    def add(impl: str, label: str, cfg, tuned: str | None) -> None:
        name = NP.range_name(label, cfg.id)
        if (label, cfg.id) in have or name in mapping:
            return
        case = {"impl": impl, "config": cfg.as_dict(), "range": name}
        if tuned:
            case["tuned_config"] = tuned  # the worker profiles the config that was timed
        cases.append(case)
        mapping[name] = {"impl": label, "config_id": cfg.id, **cfg.as_dict()}

    ok = correctness[correctness["status"] == "ok"]
    for impl, config_id in zip(ok["impl"].astype(str), ok["config_id"].astype(str)):
        if config_id in by_id:
            add(impl, impl, by_id[config_id], tuned_configs.get((impl, config_id)))
    for extra in extra_cases or []:
        add(extra["impl"], extra["label"], extra["config"], extra.get("tuned_config"))
    if cases:
        from collectors.ceilings.ceilings import PROBES

        for probe in PROBES:
            name = NP.range_name(probe, PROBE_CONFIG_ID)
            if (probe, PROBE_CONFIG_ID) not in have:
                cases.append({"impl": probe, "config": None, "range": name})
                mapping[name] = {"impl": probe, "config_id": PROBE_CONFIG_ID, **PROBE_COLUMNS}
    return cases, mapping


# ---- reading a report -------------------------------------------------------------------------------------------
def read_counters(report: Path, cases: dict[str, dict], ncu: Path | None = None, export_dir: Path | None = None,
                  suffix: str = "") -> tuple[pd.DataFrame, dict]:
    """(ncu_metrics rows, how they were read) of a session's report: through ncu_report (in a child process,
    collectors/ncu/read.py says why) when it imports and reads the report, else from the CSV exports `ncu` writes
    into `export_dir` (raw<suffix>.csv, details<suffix>.csv)."""
    module = ncu_read.load_module(ncu)
    if module is not None:
        try:
            return (ncu_read.read_in_child(report, cases, ncu),
                    {"parsed_from": "ncu_report", "ncu_report": module.describe()})
        except ncu_read.ReportUnreadable as exc:
            reason = str(exc)
    else:
        reason = "NVIDIA's ncu_report module could not be imported (pip install ncu-report)."
    if ncu is None or export_dir is None:
        raise NP.NcuError(reason)
    raw_path, details_path = NP.export_csv(ncu, report, export_dir, suffix=suffix)
    raw = P.parse_raw_csv(raw_path.read_text())
    details = P.parse_details_csv(details_path.read_text())
    return (P.tidy_metrics(raw, details, cases),
            {"parsed_from": "csv", "ncu_report": None, "csv_reason": reason})


def dropped_problem(dropped: list[str]) -> str:
    """The one line collect prints for the metrics a session left off because this GPU does not list them."""
    return (f"ncu does not list {len(dropped)} requested metric(s) on this GPU, so they were not collected: "
            f"{', '.join(dropped)}.")


# ---- the phase --------------------------------------------------------------------------------------------------
def profile(writer: RunWriter, ncu: Path, ncu_version: str | None, configs, *,
            tuned_configs: dict[tuple[str, str], str] | None = None, extra_cases: list[dict] | None = None,
            seed: int = 0, timeout_s: float | None = 3600.0, steps=None) -> list[str]:
    """One ncu session over every correct case of the run not profiled yet and `extra_cases` (module docstring);
    its counters go to ncu_metrics and stalls, its account to run.json's `ncu`. Returns the problems to print,
    one sentence each.

    `tuned_configs` maps (impl, config_id) to the config the run timed for a tuning stage (the worker pins it).
    `steps` (collect's progress) gets `expect(n)` once and `step(label)` for each case as the worker finishes it.
    A Ctrl-C keeps the cases whose range had ended and raises KeyboardInterrupt (`--resume` profiles the rest).
    """
    run = load_run(writer.path)
    have = profiled_cases(run)
    cases, mapping = plan_cases(run.table("correctness"), configs, tuned_configs, extra_cases, have)
    info = dict(writer.meta.get("ncu") or {})
    info.update(path=str(ncu), version=ncu_version)
    if not cases:
        info.setdefault("status", "ok" if have else "not_measured")
        if not have:
            info["reason"] = "no correct case to profile"
        writer.update_meta(ncu=info)
        return []
    n = len(info.get("sessions", [])) + 1
    report_name = NP.REPORT_NAME if n == 1 else f"{NP.REPORT_NAME}-{n}"
    ncu_dir = writer.path / NP.NCU_DIR
    cases_file = NP.write_cases_file(ncu_dir / f"cases-{n}.json", cases, seed)
    available = NP.query_metrics(ncu)
    kept, dropped = NP.filter_available(M.extra_metrics(), available)
    session_info = {"report": f"{report_name}.ncu-rep", "cases": len(cases), "metrics_dropped": dropped,
                    "metrics_checked": available is not None}
    problems = [dropped_problem(dropped)] if dropped else []
    on_case = None
    if steps is not None:
        steps.expect(len(cases))

        def on_case(rec: dict, n_cases=len(cases)) -> None:
            steps.step(f"ncu {rec.get('range')} ({rec.get('status')}; session {n}, {n_cases} cases)")
    try:
        session = NP.run_session(ncu, writer.path, cases_file, list(mapping), metrics=kept, timeout_s=timeout_s,
                                 report_name=report_name, on_case=on_case)
        tidy, source = read_counters(session.report, mapping, ncu, ncu_dir, suffix="" if n == 1 else f"-{n}")
    except NP.NcuError as exc:
        session_info.update(status="failed", error=str(exc))
        info.update(status="failed", error=str(exc), sessions=[*info.get("sessions", []), session_info])
        writer.update_meta(ncu=info)
        return [*problems, str(exc)]
    session_info.update(source)
    records = _worker_records(session.worker_log, mapping)
    if session.interrupted and not tidy.empty:
        # keep the cases whose range had ended (the worker writes a case's line after it); the case ncu was
        # inside when the Ctrl-C came may have only some of its kernels in the report
        ended = {(mapping[r["range"]]["impl"], mapping[r["range"]]["config_id"]) for r in records}
        keep = [(i, c) in ended for i, c in zip(tidy["impl"], tidy["config_id"])]
        tidy = tidy[keep].reset_index(drop=True)
    # stalls first: a case counts as profiled once its ncu_metrics are stored (profiled_cases, what --resume
    # skips), so a crash between the two writes leaves a case to profile again, never a case without its stalls
    writer.append("stalls", P.stalls_table(tidy))
    writer.append("ncu_metrics", tidy)
    got = set(zip(tidy["impl"], tidy["config_id"])) if not tidy.empty else set()
    missing = sorted(name for name, c in mapping.items() if (c["impl"], c["config_id"]) not in got)
    failed = [f"{r.get('range')}: {r.get('error')}" for r in records if r.get("status") != "ok"]
    # where the session's wall time went: the worker's set-up of each case (inputs, compilation, outside the
    # ranges), the profiled ranges (ncu's replay passes) and the rest (process start, imports, report writing)
    session_info.update(worker_warmup_s=round(sum(r.get("warmup_s") or 0.0 for r in records), 1),
                        worker_profiled_s=round(sum(r.get("profiled_s") or 0.0 for r in records), 1))
    session_info.update(status="interrupted" if session.interrupted else "ok", wall_s=round(session.wall_s, 1),
                        returncode=session.returncode,
                        kernels=int(len(tidy[["impl", "config_id", "kernel_index"]].drop_duplicates()))
                        if not tidy.empty else 0,
                        cases_profiled=len(got), cases_without_kernels=missing, worker_failures=failed,
                        command=" ".join(session.command))
    info.update(status="ok" if not missing else "partial", sessions=[*info.get("sessions", []), session_info])
    info.pop("error", None)
    writer.update_meta(ncu=info)
    if session.interrupted:
        raise KeyboardInterrupt  # the run is interrupted; `--resume` profiles the cases not profiled yet
    if missing:
        problems.append(f"ncu recorded no kernels for {len(missing)} case(s): {', '.join(missing[:5])}.")
    return problems


def _worker_records(worker_log: Path | None, mapping: dict[str, dict]) -> list[dict]:
    """The worker's status lines of this session's cases (one per case it finished)."""
    records = []
    if worker_log is not None and worker_log.is_file():
        for line in worker_log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("range") in mapping:
                records.append(rec)
    return records


# ---- reading a finished run's report again ----------------------------------------------------------------------
def reparse(run_dir: str | Path, report: str | Path) -> dict:
    """Replace the counters of the cases `report` (.ncu-rep or .ncu-rep.gz) holds in the run at `run_dir` with the
    exact values ncu_report reads from it: their ncu_metrics and stalls rows are rewritten, those of other cases
    kept, and the session of that report (by file name) records `parsed_from`, `ncu_report` and `reparsed_from`
    in run.json. Returns {"cases", "kernels", "ncu_metrics_rows", "stalls_rows"}.

    Needs ncu_report (pip install ncu-report): rounding the report through the CSV again would gain nothing.
    """
    with FolderLock(run_dir):  # a writer like collect: one at a time (LockHeld names the holder)
        return _reparse(load_run(run_dir), report)


def _reparse(run, report) -> dict:
    module = ncu_read.load_module()
    if module is None:
        raise NP.NcuError("re-reading a report needs NVIDIA's ncu_report module (pip install ncu-report).")
    found = ncu_read.read_report(report, None, module)
    if found.empty:
        raise NP.NcuError(f"{report} holds no kernel of a perfmodel case, so there is nothing to re-read.")
    configs = {c["config_id"]: {k: c.get(k) for k in PROBE_COLUMNS} for c in run.meta.get("configs") or []}
    cases = {}
    for impl, config_id in set(zip(found["impl"], found["config_id"])):
        cols = PROBE_COLUMNS if config_id == PROBE_CONFIG_ID else configs.get(config_id)
        if cols is not None:
            cases[NP.range_name(impl, config_id)] = {"impl": impl, "config_id": config_id, **cols}
    tidy = P.tidy_frame(found[P.TIDY_COLUMNS].to_dict("records"), cases)
    stalls = P.stalls_table(tidy)
    redone = set(zip(tidy["impl"], tidy["config_id"]))
    out = {"cases": len(redone), "kernels": int(len(tidy[["impl", "config_id", "kernel_index"]].drop_duplicates()))}
    for table, new in (("ncu_metrics", tidy), ("stalls", stalls)):
        old = run.table(table)
        other = old[[k not in redone for k in zip(old["impl"].astype(str), old["config_id"].astype(str))]]
        merged = pd.concat([df for df in (other, new.assign(run_id=run.run_id)) if not df.empty], ignore_index=True)
        _replace_table(run.path, table, merged)
        out[f"{table}_rows"] = len(merged)
    meta = json.loads((run.path / RUN_JSON).read_text())
    info = dict(meta.get("ncu") or {})
    stamp = {"parsed_from": "ncu_report", "ncu_report": module.describe(), "reparsed_from": str(report),
             "reparsed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    name = Path(report).name.removesuffix(".gz")
    sessions = [dict(s) for s in info.get("sessions") or []]
    matched = [s for s in sessions if s.get("report") == name]
    for s in matched:
        s.update(stamp)
    if not matched:
        sessions.append({"report": name, "status": "reparsed", **stamp})
    info["sessions"] = sessions
    meta["ncu"] = info
    meta["updated"] = stamp["reparsed_at"]
    atomic_write_json(run.path / RUN_JSON, meta)
    return out


def _replace_table(run_dir: Path, table: str, df: pd.DataFrame) -> None:
    """`df` becomes the one part of `table`: written atomically under a sequence number above every part of the
    run (runstore/writer.py numbers parts across tables), then the table's older parts are removed, so a reader
    sees the old rows or the new ones (after a crash in between, the new ones win for every case they hold)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = run_dir / TABLES_DIR
    seq = max((int(p.stem.split("-", 1)[1]) for p in tables.glob("*/part-*.parquet")), default=0) + 1
    table_dir = tables / table
    table_dir.mkdir(parents=True, exist_ok=True)
    old_parts = sorted(table_dir.glob("part-*.parquet"))
    schema_cols = columns(table)
    df = df.copy()
    for c in schema_cols:
        if c not in df.columns:
            df[c] = None
    df = df[schema_cols + [c for c in df.columns if c not in schema_cols]]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
    atomic_write_bytes(table_dir / f"part-{seq:06d}.parquet", sink.getvalue().to_pybytes())
    for p in old_parts:
        p.unlink()
