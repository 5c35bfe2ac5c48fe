"""What a run folder is on disk: its files, the parts of its tables, and run.json's format, read and checked.

A run is a folder:

    <run_dir>/
      run.json                 environment, suite, configs, implementations, status, command line
      tables/<table>/part-*.parquet   one file per write (atomic: written to a temp name, then renamed);
                               a case written twice (after --resume) keeps its newest rows (runstore/writer.py)
      profile.ncu-rep          the Nsight Compute report (when ncu ran); open it in the Nsight Compute GUI
      ncu/                     raw.csv and details.csv (the exports the parser read), cases-1.json (what the
                               worker ran), profile.log (ncu's output), profile.worker.jsonl (per case: the
                               worker's status, seconds before its range and inside it); a session stopped by
                               Ctrl-C keeps what it profiled, and the next `--resume` adds profile-2.ncu-rep,
                               raw-2.csv, ... for the rest. run.json's `ncu.sessions` says what each one did.
      interpret/               with --interpret: the CPU worker's cases, per-case results and log
      logs/                    what the compiler printed for a launch or census that failed (<impl>-<config>.log) and
                               Triton's MLIR crash reproducer (<impl>-<config>.mlir), when it wrote one
      shards/                  a merged run (perfmodel merge): each shard's own files under its run id (its run.json as
                               shard.json); a --devices run: plan.json (the split) and each worker's shard run folder
                               shard-I-of-N/ with its log
      .lock                    while a writer (collect, --resume, import, reparse) works on the run: who it is
                               (runstore/safe_io.py); a second writer is refused, the file goes when it finishes

The tables' columns are runstore/schema.py's. run.json's `environment.clocks_during_timing` (a `--resume`'s in its
`resumes` entry) summarises the GPU state over the invocation's timings: source (nvml or the nvidia-smi query),
n_samples, min / median / max of sm_clock_mhz, mem_clock_mhz and power_w, temperature_c's max,
clock_event_reasons_seen (every reason, idle included), throttle_reasons_seen, n_cases and n_cases_throttled, and
`missing` (why a field was never read).

run.json's `shard` (a `--shard I/N` run: index, count, its configs, the suite's, the plan's id and assignment, the
predicted cost per config and shard, `balanced_by`: which cases were costed by the model, the bound or their FLOPs),
`merged_from` and `merge` (a merged run: each shard's run id, folder, shard, status, host, GPU, commit, wall time;
how many shards, which are missing or given twice) and `devices` (a --devices run: the GPU of each worker, its shard
and folder, the elapsed time) are provenance: nothing else reads a merged run differently (collectors/sweep/merge.py).

run.json says which `schema_version` of this layout it follows (SCHEMA_VERSION below); a reader refuses a newer one,
a run.json whose fields have the wrong JSON types (`meta_problem`), and a `status` that is not one of STATUSES, each
in one sentence (`read_json`). The writer (runstore/writer.py) and the reader (runstore/reader.py) both stand on this
module; its errors are `RunStoreError` with a one-sentence message (the CLI turns them into exit status 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

RUN_JSON = "run.json"
TABLES_DIR = "tables"
TABLES_WRITTEN = "tables_written"  # run.json: the tables the writer stored a part of (runstore/writer.py)
STATUSES = ("running", "partial", "complete", "failed", "interrupted")
_PART_RE = re.compile(r"^part-(\d{6,})\.parquet$")

# run.json's format. A reader refuses a higher version than this (written by a newer toolkit); runs written before
# the field existed (every run committed up to 2026-12-02 and the bundled one) are version 1, the same format.
# A column added to a table (correctness's max_ulp, exact_frac, rms_ulp) keeps the version: a part without it
# reads as null there (runstore/reader.py), which readers show as not measured. Version 2 changed what a
# column means: timings.time_ms is the GPU's time by CUDA graph where the call could be captured (timing_method);
# in version 1 every time was the host loop's (perfmodel.runs.timing_method reads both).
SCHEMA_VERSION = 2

# run.json's top-level fields and the JSON type each must have where present (a run written by hand or damaged
# is refused in one sentence rather than read as something else). Fields not listed are kept as they are.
_NUMBER = (int, float)
RUN_JSON_FIELDS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,), "run_id": (str,), "created": (str,), "updated": (str,), "finished": (str,),
    "status": (str,), "suite": (str,), "mode": (str,), "note": (str,), "error": (str,),
    "environment": (dict,), "options": (dict,), "ncu": (dict,), "ablation": (dict,), "source": (dict,),
    "phases_s": (dict,), "configs": (list,), "impls": (list,), "resumes": (list,), "problems": (list,),
    "predictions": (dict,), "shard": (dict,), "merged_from": (list,), "merge": (dict,), "devices": (dict,),
    "command_line": (str, list), "wall_s": _NUMBER, "tables_written": (list,),
}
_JSON_NAMES = {int: "a whole number", float: "a number", str: "text", dict: "an object", list: "a list"}


class RunStoreError(Exception):
    """A run folder that cannot be read or written; the message is one sentence."""


def meta_problem(meta: dict) -> str | None:
    """Why run.json's `meta` cannot be read by this version (one sentence without the file name), or None."""
    version = meta.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"its schema_version must be a whole number of at least 1, got {version!r}"
    if version > SCHEMA_VERSION:
        return (f"it was written in run format version {version}, newer than this toolkit reads "
                f"(version {SCHEMA_VERSION}); update perfmodel to read it")
    if not meta.get("run_id"):
        return "it has no run_id"
    for key, types in RUN_JSON_FIELDS.items():
        value = meta.get(key)
        if value is None or (isinstance(value, types) and not (isinstance(value, bool) and bool not in types)):
            continue
        want = "a number" if types == _NUMBER else " or ".join(_JSON_NAMES[t] for t in types)
        got = "true/false" if isinstance(value, bool) else _JSON_NAMES.get(type(value), type(value).__name__)
        return f"its field {key!r} must be {want}, got {got} {json.dumps(value, default=str)[:40]}"
    return None


def part_files(table_dir: Path) -> list[tuple[int, Path]]:
    """(sequence number, path) of every part of the table folder `table_dir`, in write order (none: no folder)."""
    if not table_dir.is_dir():
        return []
    out = []
    for p in table_dir.iterdir():
        m = _PART_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_json(path: Path) -> dict:
    """A run's run.json, checked (`meta_problem`, a known status); RunStoreError in one sentence when it cannot be
    read as one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RunStoreError(f"{path.parent} is not a run folder: it has no {RUN_JSON}.") from None
    except OSError as e:
        raise RunStoreError(f"cannot read {path}: {e.strerror or e}.") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunStoreError(f"{path} is corrupt: it is not valid JSON ({e.msg} at line {e.lineno}).") from None
    if not isinstance(meta, dict):
        raise RunStoreError(f"{path} is corrupt: it holds {type(meta).__name__}, not an object.")
    problem = meta_problem(meta)
    if problem is None and meta.get("status") not in (None, *STATUSES):
        problem = f"its status {meta['status']!r} is not one of {', '.join(STATUSES)}"
    if problem:
        raise RunStoreError(f"{path} cannot be read: {problem}.")
    return meta
