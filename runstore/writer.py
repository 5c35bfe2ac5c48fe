"""The run store: one folder per run, written so that a crash or Ctrl-C loses nothing already measured.

Layout (runstore/layout.py: the folder and run.json; runstore/schema.py documents every table's columns):

    <run_dir>/run.json                        run_id, created, status, environment, suite, configs, impls, ...
    <run_dir>/tables/<table>/part-<seq>.parquet

Every write is atomic (runstore/safe_io.py): the bytes go to a hidden temporary file in the same folder, are
flushed to disk, and are then renamed over the final name with `os.replace`, so a reader (or a resumed run) sees
either the whole part or none of it. Temporary files a killed process left behind are ignored by readers and
removed by the next writer. A writer holds the folder's lock (`<run_dir>/.lock`) from opening the run to
`finish`, so a second writer (another collect, a resume, an import) is refused in one sentence naming the holder;
new run folders are created with an exclusive mkdir, so two collectors started in the same second get two.

run.json's `tables_written` lists every table the writer stored a part of, added when its first part is written (a
`--resume` keeps the list and adds the tables it finds on disk), so a reader can tell a table the run never had from
one its copy lost (`Run.missing_tables` in runstore/reader.py).

run.json carries `schema_version` (runstore.layout.SCHEMA_VERSION); a reader refuses a newer one, a run.json whose
fields have the wrong JSON types, and table parts that are not Parquet or whose columns are not the schema's
(`check_tables`), each in one sentence. A run.json that still says `running` while no process holds the lock
was stopped without a chance to say so (kill -9, a full disk): `Run.status` reads it as `interrupted`.

Parts are numbered with one sequence across all tables, in the order they were written. A case that was measured
twice (a `--resume` re-running a case whose first attempt was cut off between two tables) keeps only its newest
rows: `Run.table` drops, for every case of a case table, the rows of all but the last part that holds that case.

This module and its reading half (runstore/reader.py, which it imports: the writer reopens a run through `Run` and
checks its tables with `check_tables`) are the store's one writer and reader; both stand on runstore/layout.py and
depend on nothing of the toolkit above the store. Errors are `RunStoreError` with a one-sentence message (the CLI
turns them into exit status 2).
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pandas as pd

from runstore.layout import (RUN_JSON, SCHEMA_VERSION, STATUSES, TABLES_DIR, TABLES_WRITTEN, RunStoreError, part_files,
                             read_json)
from runstore.reader import Run, check_tables
from runstore.safe_io import LOCK_NAME as LOCK_FILE, FolderLock, LockHeld, atomic_write_bytes, atomic_write_json
from runstore.schema import TABLES, columns


# ---- small helpers ----------------------------------------------------------------------------------------------
def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def io_problem(exc: OSError, path) -> RunStoreError:
    """A file-system error (disk full, read-only folder, a file where a folder should be) as one sentence."""
    where = exc.filename or path
    return RunStoreError(f"cannot write {where}: {exc.strerror or exc}.")


def slug(text: str) -> str:
    """Lower-case letters, digits and '-' only (for run ids and file names)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "unknown"


def new_run_id(suite: str, gpu: str | None) -> str:
    """`<yyyymmdd-hhmmss>-<suite>-<gpu>`, e.g. 20261124-163012-seed-nvidia-h100-80gb-hbm3."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(suite)}-{slug(gpu or 'no-gpu')}"


def new_run_dir(out_dir: Path, suite: str, gpu: str | None) -> Path:
    """Create and return a new, empty run folder under `out_dir` named by `new_run_id` (`-2`, `-3`, ... appended
    when taken). The folder is made with an exclusive mkdir, so two writers never get the same one."""
    out_dir, base = Path(out_dir), new_run_id(suite, gpu)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunStoreError(f"--out {out_dir} is a file, not a folder; pass the folder runs should go in.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            run_dir = out_dir / (base if n == 1 else f"{base}-{n}")
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
    except OSError as e:
        raise io_problem(e, out_dir) from None
    raise RunStoreError(f"{out_dir} already holds 999 runs named {base}; choose another --out.")


def _to_frame(table: str, rows) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        df = rows.copy()
    else:
        rows = list(rows)
        df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    return df


def _order_columns(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Schema columns first (missing ones added as null), then any extra columns in their given order."""
    schema_cols = columns(table)
    for c in schema_cols:
        if c not in df.columns:
            df[c] = None
    extra = [c for c in df.columns if c not in schema_cols]
    return df[schema_cols + extra]


# ---- writing ----------------------------------------------------------------------------------------------------
class RunWriter:
    """Creates (or, with `resume=True`, reopens) a run folder and appends table parts to it.

    `meta` holds what run.json should say besides the fields this class owns (`run_id`, `created`, `status`,
    `updated`): environment, suite, configs, impls, command_line, options. On resume the existing run.json is
    kept as it is and a `resumes` entry records when, from what status, on which host, plus `meta`'s fields.
    """

    def __init__(self, run_dir: str | os.PathLike, meta: dict | None = None, *, resume: bool = False,
                 run_id: str | None = None):
        self.path = Path(run_dir)
        meta = dict(meta or {})
        try:
            if not resume:
                self.path.mkdir(parents=True, exist_ok=True)
            self._lock = FolderLock(self.path).acquire()
        except LockHeld as e:
            raise RunStoreError(str(e)) from None
        except OSError as e:
            raise io_problem(e, self.path) from None
        try:
            self._open(meta, resume, run_id)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, meta: dict, resume: bool, run_id: str | None) -> None:
        if resume:
            self.meta = read_json(self.path / RUN_JSON)
            check_tables(self.path)
            resumes = list(self.meta.get("resumes", []))
            resumes.append({"at": _now_iso(), "previous_status": self.meta.get("status"),
                            "host": socket.gethostname(), **meta})
            self.meta["resumes"] = resumes
        else:
            if any(p.name != LOCK_FILE for p in self.path.iterdir()):
                raise RunStoreError(f"{self.path} already exists and is not empty; choose another --out "
                                    "or resume it with --resume.")
            self.meta = {"schema_version": SCHEMA_VERSION,
                         "run_id": run_id or meta.pop("run_id", None) or self.path.name, "created": _now_iso()}
            self.meta.update({k: v for k, v in meta.items() if k not in ("run_id", "created", "status")})
        self.meta["status"] = "running"
        self.meta["schema_version"] = SCHEMA_VERSION  # a version-1 run resumed is still version 1
        try:
            (self.path / TABLES_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise io_problem(e, self.path / TABLES_DIR) from None
        self._clean_temporaries()
        self._seq = self._last_seq()
        on_disk = [d.name for d in (self.path / TABLES_DIR).iterdir() if d.is_dir() and part_files(d)]
        self.meta[TABLES_WRITTEN] = sorted({*(self.meta.get(TABLES_WRITTEN) or []), *on_disk})
        self._write_meta()

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])

    # -- internals
    def _clean_temporaries(self) -> None:
        for p in (self.path / TABLES_DIR).glob("*/.*.tmp-*"):
            try:
                p.unlink()
            except OSError:
                pass
        for p in self.path.glob(f".{RUN_JSON}.tmp-*"):
            try:
                p.unlink()
            except OSError:
                pass

    def _last_seq(self) -> int:
        last = 0
        for table_dir in (self.path / TABLES_DIR).iterdir():
            for seq, _ in part_files(table_dir):
                last = max(last, seq)
        return last

    def _write_meta(self) -> None:
        self.meta["updated"] = _now_iso()
        try:
            atomic_write_json(self.path / RUN_JSON, self.meta)
        except OSError as e:
            raise io_problem(e, self.path / RUN_JSON) from None

    # -- public
    def update_meta(self, **fields) -> None:
        """Add or replace top-level fields of run.json (written atomically at once)."""
        for key in ("run_id", "created"):
            if key in fields:
                raise RunStoreError(f"run.json's {key} cannot be changed.")
        self.meta.update(fields)
        self._write_meta()

    def append(self, table: str, rows) -> Path | None:
        """Write `rows` (list of dicts or a DataFrame) as the next part of `table`; returns the part's path.

        `run_id` is filled in; columns are put in schema order, schema columns that are missing are added as
        null, extra columns are kept after them. An empty `rows` writes nothing and returns None.
        """
        if table not in TABLES:
            raise RunStoreError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}.")
        df = _to_frame(table, rows)
        if df.empty:
            return None
        df["run_id"] = self.run_id
        df = _order_columns(table, df)
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            arrow = pa.Table.from_pandas(df, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Mixed Python types in one column (e.g. numbers and strings): store that column as text.
            for c in df.columns:
                if df[c].dtype == object:
                    df[c] = df[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
            arrow = pa.Table.from_pandas(df, preserve_index=False)
        table_dir = self.path / TABLES_DIR / table
        try:
            table_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise io_problem(e, table_dir) from None
        self._seq += 1
        final = table_dir / f"part-{self._seq:06d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(arrow, sink)
        try:
            atomic_write_bytes(final, sink.getvalue().to_pybytes())
        except OSError as e:
            raise io_problem(e, final) from None
        if table not in self.meta[TABLES_WRITTEN]:  # after the part is on disk: the list never names a table it lacks
            self.meta[TABLES_WRITTEN] = sorted([*self.meta[TABLES_WRITTEN], table])
            self._write_meta()
        return final

    def done_cases(self, table: str = "cases") -> set[tuple[str, str]]:
        """(impl, config_id) of every case already recorded in `table` (the sweep's log), for --resume."""
        df = Run(self.path, self.meta).table(table)
        if df.empty:
            return set()
        return {(str(i), str(c)) for i, c in zip(df["impl"], df["config_id"])}

    def finish(self, status: str, **fields) -> None:
        """Mark the run `status` (complete, partial, failed or interrupted) with the time it ended; a complete
        run's tables are compacted to one part each (see `compact_tables`)."""
        if status not in STATUSES:
            raise RunStoreError(f"unknown run status {status!r}; expected one of {', '.join(STATUSES)}.")
        try:
            if status == "complete":
                compact_tables(self.path)
            self.meta.update(fields)
            self.meta["status"] = status
            self.meta["finished"] = _now_iso()
            self._write_meta()
        except OSError as e:
            raise io_problem(e, self.path) from None
        finally:
            self.close()

    def close(self) -> None:
        """Release the folder's lock (finish does; a writer abandoned without finishing releases it at exit)."""
        self._lock.release()


def compact_tables(run_dir: str | os.PathLike) -> None:
    """Rewrite each table of a run as one part (the many per-case parts cost ~10 KB of Parquet overhead each).

    The merged part is written (atomically) under a sequence number above every existing part before the old
    parts are removed, so a crash in between leaves the newest rows readable and nothing lost.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(run_dir)
    run = Run(path, read_json(path / RUN_JSON))
    seq = max((s for t in run.tables() for s, _ in part_files(path / TABLES_DIR / t)), default=0)
    for name in run.tables():
        parts = part_files(path / TABLES_DIR / name)
        if len(parts) < 2:
            continue
        df = run.table(name)
        seq += 1
        sink = pa.BufferOutputStream()
        try:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue  # a table whose parts disagree on a column's type stays as it was written
        atomic_write_bytes(path / TABLES_DIR / name / f"part-{seq:06d}.parquet", sink.getvalue().to_pybytes())
        for _, p in parts:
            p.unlink()
