"""Reading the run store (runstore/writer.py writes it): a run folder opened for reading (`Run`, `load_run`),
the check of its tables against the schema (`check_tables`), the tables a run lists but lacks
(`Run.missing_tables`: the one place that is computed), and the inventory of the run folders under a folder
(`list_runs`). What the store guarantees and how a case measured twice is resolved is runstore/writer.py's
docstring; the folder's layout and run.json's checks are runstore/layout.py's, the tables' columns
runstore/schema.py's. The writer imports this module (it reopens runs through `Run`), never the reverse.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from runstore.layout import RUN_JSON, TABLES_DIR, TABLES_WRITTEN, RunStoreError, part_files, read_json
from runstore.safe_io import lock_holder
from runstore.schema import CASE_ID, TABLES, column_problem, columns


# ---- reading ----------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A run folder opened for reading."""

    path: Path
    meta: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def status(self) -> str:
        """run.json's status, except that `running` with no process holding the run's lock is `interrupted`
        (its writer was killed, or could not record how it ended: a full disk)."""
        status = str(self.meta.get("status", "unknown"))
        if status == "running" and lock_holder(self.path) is None:
            return "interrupted"
        return status

    @property
    def environment(self) -> dict:
        env = self.meta.get("environment")
        return env if isinstance(env, dict) else {}

    def tables(self) -> list[str]:
        """Names of the tables that have at least one part in this run."""
        root = self.path / TABLES_DIR
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if d.is_dir() and part_files(d))

    def table(self, name: str) -> pd.DataFrame:
        """All parts of table `name`, concatenated in write order; the schema's columns, empty when absent."""
        if name not in TABLES:
            raise RunStoreError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}.")
        parts = part_files(self.path / TABLES_DIR / name)
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns(name)})
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrows = []
        for seq, p in parts:
            try:
                t = pq.read_table(p)
            except (OSError, pa.ArrowException) as e:
                raise RunStoreError(f"{p} is corrupt and cannot be read as Parquet ({type(e).__name__}).") from None
            arrows.append(t.append_column("_part", pa.array([seq] * t.num_rows, pa.int64())))
        try:
            merged = pa.concat_tables(arrows, promote_options="permissive").to_pandas()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            merged = pd.concat([t.to_pandas() for t in arrows], ignore_index=True)
        if TABLES[name]["case"] and not merged.empty and all(c in merged.columns for c in CASE_ID):
            # A case measured again (after --resume) keeps only the rows of its newest part.
            newest = merged.groupby(CASE_ID, dropna=False)["_part"].transform("max")
            merged = merged[merged["_part"] == newest]
        merged = merged.drop(columns="_part").reset_index(drop=True)
        for c in columns(name):
            if c not in merged.columns:
                merged[c] = None
        extra = [c for c in merged.columns if c not in columns(name)]
        return merged[columns(name) + extra]

    def listed_tables(self) -> tuple[dict[str, str], bool]:
        """({table: why the run must hold it}, whether run.json recorded the list): run.json's `tables_written`
        where the writer recorded it, else what its run.json implies (`implied_tables`)."""
        written = self.meta.get(TABLES_WRITTEN)
        if isinstance(written, list):
            return {str(t): "" for t in written if str(t) in TABLES}, True
        return implied_tables(self.meta), False

    def missing_tables(self) -> list[str]:
        """The tables the run lists (`listed_tables`) and its folder lacks (no part under tables/<name>/): a copy
        that lost them, or a folder edited by hand."""
        present = set(self.tables())
        return sorted(t for t in self.listed_tables()[0] if t not in present)

    def missing_tables_problem(self) -> str | None:
        """One sentence naming the tables the run lists and lacks, where the list comes from, and what follows;
        None when it lacks none. Reports, gates and the dashboard show this sentence (perfmodel/runs.py)."""
        missing = self.missing_tables()
        if not missing:
            return None
        listed, recorded = self.listed_tables()
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        what = f"the table {names}" if len(missing) == 1 else f"the tables {names}"
        basis = ("which its run.json lists (tables_written)" if recorded else
                 f"which its run.json implies ({listed[missing[0]]}; the run predates run.json's tables_written)")
        return (f"run {self.run_id} lacks {what} ({', '.join(f'{TABLES_DIR}/{t}/' for t in missing)}), {basis}, so "
                f"what {'it' if len(missing) == 1 else 'they'} would hold shows as not measured and no gate can pass "
                "on this run: copy the run folder again with all of its tables.")

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def implied_tables(meta: dict) -> dict[str, str]:
    """{table: why} of the tables a run without run.json's `tables_written` (every run made before it existed, the
    committed and bundled ones included) must hold, from what its run.json says finished; nothing is implied that
    the run may rightly lack:

    - a complete collect (`mode` gpu or interpret, with configs) ran each case to its end, and every case writes
      correctness, timings, launch, determinism and its cases row (collectors/sweep/gpu_cases.py, interpret_cases.py,
      from the first collector on); it measured the ceilings (rows saying not measured under --interpret), the census of
      each stage when it ran one, and the batching table when its configs hold one shape at B=1 and another B
      (collectors/sweep/census_phase.py derives it from the timings of every case);
    - an Nsight Compute session that ended ok (`ncu.status`) wrote ncu_metrics and stalls (an import too);
    - stored predictions (`predictions.status` ok) wrote predictions, a declared ablation (`ablation`) its tables.

    Not implied: timing_samples (runs before samples were kept lack it), the ablation's tables of a run that
    declared none, anything of a run that did not complete."""
    out: dict[str, str] = {}
    complete = meta.get("status") == "complete" and meta.get("mode") in ("gpu", "interpret") and meta.get("configs")
    if complete:
        for t in ("correctness", "timings", "launch", "determinism", "cases"):
            out[t] = f"a complete collect writes {t} for every case"
        out["ceilings"] = "a complete collect measures the ceilings"
        if any(isinstance(i, dict) and i.get("kind") == "stage" for i in meta.get("impls") or []):
            out["census"] = "a complete collect of a stage writes its census"
        shapes: dict[tuple, set] = {}
        for c in meta["configs"] if isinstance(meta["configs"], list) else []:
            if isinstance(c, dict):
                shapes.setdefault(tuple(c.get(k) for k in ("H", "S", "D", "causal", "dtype")), set()).add(c.get("B"))
        if any(1 in bs and len(bs) > 1 for bs in shapes.values()):
            out["batching"] = "a complete collect at B=1 and another B of one shape writes batching"
    if isinstance(meta.get("ncu"), dict) and meta["ncu"].get("status") == "ok":
        out["ncu_metrics"] = out["stalls"] = "its Nsight Compute session ended ok (run.json ncu.status)"
    if isinstance(meta.get("predictions"), dict) and meta["predictions"].get("status") == "ok":
        out["predictions"] = "its predictions were stored (run.json predictions.status)"
    if isinstance(meta.get("ablation"), dict) and meta["ablation"]:
        out["ablation_variants"] = out["ablation"] = "it records an ablation (run.json ablation)"
    return out


def load_run(path: str | os.PathLike) -> Run:
    """Open the run folder at `path` (or the folder of a run.json); RunStoreError when it is not a readable run."""
    p = Path(path)
    if p.name == RUN_JSON and p.is_file():
        p = p.parent
    if not p.exists():
        raise RunStoreError(f"{p} does not exist.")
    if not p.is_dir():
        raise RunStoreError(f"{p} is not a run folder.")
    return Run(p, read_json(p / RUN_JSON))


def check_tables(run_dir: str | os.PathLike) -> None:
    """Refuse, in one sentence, a run whose tables this version cannot read: a folder under tables/ that is no
    table of the schema, a part that is not Parquet (corrupt, truncated), or a part whose columns are not the
    table's (a key column missing, a column renamed, a number column holding text). Reads only the parts'
    footers, so it is cheap; a damaged page inside a part is reported when the table is read (`Run.table`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(run_dir) / TABLES_DIR
    if not root.is_dir():
        return
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name not in TABLES:
            near = difflib.get_close_matches(d.name, list(TABLES), n=1, cutoff=0.8)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise RunStoreError(f"{d} is not a table this version knows{hint}; known tables: {', '.join(TABLES)}.")
        for _, part in part_files(d):
            try:
                schema = pq.read_schema(part)
            except (OSError, pa.ArrowException) as e:
                raise RunStoreError(f"{part} is corrupt or truncated and cannot be read as Parquet "
                                    f"({type(e).__name__}).") from None
            problem = column_problem(d.name, schema.names, schema.types)
            if problem:
                raise RunStoreError(f"{part} {problem}.")


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_JSON).is_file()


LIST_COLUMNS = ["run_id", "path", "gpu", "created", "status", "size_mb", "n_cases", "suite", "wall_s", "invocations",
                "missing_tables", "error"]


def collect_wall_s(meta: dict) -> tuple[float | None, int]:
    """(seconds the collector ran over all its invocations, how many invocations) from run.json: the first
    invocation's `wall_s` plus each `--resume`'s; None where none recorded it (runs older than that field)."""
    walls = [meta.get("wall_s"), *((r or {}).get("wall_s") for r in meta.get("resumes") or [])]
    known = [float(w) for w in walls if isinstance(w, (int, float))]
    return (round(sum(known), 1) if known else None), len(walls)


def list_runs(root: str | os.PathLike) -> pd.DataFrame:
    """One row per run folder directly under `root` (or `root` itself when it is one), newest first;
    `missing_tables` is `Run.missing_tables_problem`'s sentence (None when the run lacks no table it lists).

    A folder whose run.json cannot be read is listed with status `corrupt` and the reason in `error`, so one
    broken folder does not hide the others. Folders without run.json are not runs and are skipped.
    """
    root = Path(root)
    if not root.exists():
        raise RunStoreError(f"{root} does not exist.")
    if not root.is_dir():
        raise RunStoreError(f"{root} is not a folder.")
    candidates = [root] if is_run_dir(root) else sorted(d for d in root.iterdir() if d.is_dir() and is_run_dir(d))
    rows = []
    for d in candidates:
        size_mb = round(sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) / 1e6, 3)
        try:
            run = load_run(d)
        except RunStoreError as e:
            rows.append({"run_id": d.name, "path": str(d), "gpu": None, "created": None, "status": "corrupt",
                         "size_mb": size_mb, "n_cases": None, "suite": None, "wall_s": None, "invocations": None,
                         "missing_tables": None, "error": str(e)})
            continue
        try:
            check_tables(d)
            n_cases = len(run.table("cases"))
            error = None
        except RunStoreError as e:
            n_cases, error = None, str(e)
        wall_s, invocations = collect_wall_s(run.meta)
        rows.append({
            "run_id": run.run_id, "path": str(d), "gpu": run.environment.get("gpu_name"),
            "created": run.meta.get("created"), "status": run.status, "size_mb": size_mb, "n_cases": n_cases,
            "suite": run.meta.get("suite"), "wall_s": wall_s, "invocations": invocations,
            "missing_tables": run.missing_tables_problem(), "error": error,
        })
    df = pd.DataFrame(rows, columns=LIST_COLUMNS)
    if not df.empty:
        df = df.sort_values("created", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return df
