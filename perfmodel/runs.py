"""The analysis layer's door to run folders.

Reports, gates and the dashboard read runs only through here: it wraps the run store's reader
(`runstore.reader.load_run`), checks every table part before anything is computed (`check_tables`: corrupt or
truncated Parquet, renamed columns, text in number columns, a future schema version, mistyped run.json fields),
turns a corrupt or missing run into a `UserError` with one clear sentence (also for a damaged part found only
when a table is read), and
finds the runs that ship with the package (`perfmodel/bundled/<run_id>/`) and the one `perfmodel report`, `gates`
and `dashboard` read when no run is given (`default_run_dir`), and says whether a run measured the kernel code
installed here (`kernel_code`: run.json's hash of the kernels package against the installed package's, so it works
without git).
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kernels.source import COLLECTED_KERNELS_SOURCE, kernels_code
from perfmodel.errors import UserError
from runstore.layout import RunStoreError
from runstore.reader import Run, check_tables, list_runs as _list_runs, load_run as _load_run

__all__ = ["Run", "load_run", "load_runs", "bundled_run_dirs", "default_run_dir", "resolve_run_dirs",
           "list_runs", "gpu_name", "run_label", "unmeasured_reason", "created", "KernelCode", "kernel_code",
           "installed_kernels"]


class CachedRun(Run):
    """A Run whose tables are read from disk once: the analyses read the same tables many times.

    `table()` hands out a copy, so a caller that changes its frame never changes what the next caller sees."""

    def table(self, name: str):
        cache = self.__dict__.setdefault("_tables", {})
        if name not in cache:
            try:
                cache[name] = super().table(name)
            except RunStoreError as e:
                raise _user_error(e) from None
        return cache[name].copy()


def per_run(run: Run, key: str, compute):
    """`compute(run)`, computed once per run object and kept on it: the analyses derive the same frames from a run
    many times, and a run folder is read-only to them. The caller copies a mutable result before changing it."""
    memo = run.__dict__.setdefault("_per_run", {})
    if key not in memo:
        memo[key] = compute(run)
    return memo[key]


def _user_error(e: RunStoreError) -> UserError:
    return UserError(str(e).rstrip(".") + ".")


def load_run(path: str | Path) -> Run:
    """Open the run folder at `path` (raises UserError when it is missing or not a run)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"run folder {str(p)!r} does not exist.")
    if not p.is_dir():
        raise UserError(f"{str(p)!r} is a file, not a run folder (a run folder holds run.json and tables/).")
    try:
        run = _load_run(p)
        check_tables(run.path)
    except RunStoreError as e:
        raise _user_error(e) from None
    return CachedRun(run.path, run.meta)


def load_runs(paths: list[str | Path]) -> list[Run]:
    return [load_run(p) for p in paths]


def list_runs(root: str | Path):
    """Runs under `root` as a DataFrame (see runstore.reader.list_runs), with each readable run's `kernel_code`
    (column `kernels`: installed, differs or unknown, and `kernels_line`: its sentence, '' when installed)."""
    try:
        df = _list_runs(Path(root).expanduser())
    except RunStoreError as e:
        raise _user_error(e) from None
    codes = []
    for path, status in zip(df["path"], df["status"]):
        try:
            codes.append(kernel_code(_load_run(path)) if status != "corrupt" else None)
        except RunStoreError:
            codes.append(None)
    df["kernels"] = [c.status if c else None for c in codes]
    df["kernels_line"] = [c.line if c else "" for c in codes]
    return df


def bundled_run_dirs() -> list[Path]:
    """Run folders shipped inside the package under perfmodel/bundled/, newest name last."""
    root = importlib.resources.files("perfmodel") / "bundled"
    try:
        entries = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    dirs = [Path(str(e)) for e in entries if e.is_dir() and (e / "run.json").is_file()]
    return sorted(dirs, key=lambda p: p.name)


def default_run_dir() -> Path:
    """The bundled run a command reads when none is given: the newest (run.json `created`) of the bundled runs that
    measured the installed kernel code (`kernel_code`), else the newest bundled run. So a run measured on kernels
    that are gone (the H100 run of 2026-11-24, on the `tl` stages 1-5 of then) is never the default while a run of
    today's kernels ships; every other bundled run is named by its id (`perfmodel report <id>`)."""
    dirs = bundled_run_dirs()
    if not dirs:
        raise UserError("no run was given and none is bundled with this install; pass a run folder "
                        "(e.g. one made by `perfmodel collect`).")
    found = []
    for d in dirs:
        try:
            found.append((d, _load_run(d)))
        except RunStoreError:
            continue  # a damaged bundled run is refused when it is named, in one sentence
    if not found:
        return dirs[-1]
    newest = sorted(found, key=lambda dr: (created(dr[1]), dr[0].name))
    today = [dr for dr in newest if kernel_code(dr[1]).status == "installed"]
    return (today or newest)[-1][0]


def resolve_run_dirs(paths: list[str | Path] | None) -> list[Path]:
    """The given run folders (a bundled run's id names it, unless a folder of that name exists here), or the
    default bundled run when none is given."""
    if not paths:
        return [default_run_dir()]
    bundled = {d.name: d for d in bundled_run_dirs()}
    out = []
    for p in paths:
        path = Path(p).expanduser()
        out.append(bundled[str(p)] if not path.exists() and str(p) in bundled else path)
    return out


_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def created(run: Run) -> datetime:
    """When the run started (run.json `created`); runs without a readable time sort first."""
    text = str(run.meta.get("created") or "")
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            t = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return _OLDEST


# ---- which kernel code a run measured ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def installed_kernels() -> dict:
    """kernels.source.kernels_code() of the kernels package installed here, read once per process."""
    return kernels_code()


@dataclass(frozen=True)
class KernelCode:
    """How the kernel code a run measured compares with the installed kernels package."""

    status: str  # "installed" (the same sources), "differs", or "unknown" (either side not recorded or unreadable)
    run_hash: str | None
    installed_hash: str | None
    line: str  # one sentence for a report header, the dashboard's overview and `perfmodel runs`; "" when installed


def _names(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def kernel_code(run: Run) -> KernelCode:
    """Whether `run` measured the kernel code installed here: run.json's `environment.kernels_hash` (written by
    collect and merge, or backfilled from the run's git commit for the runs committed before it existed:
    `environment.kernels_hash_source` says so) against the hash of the installed kernels package
    (kernels.source.kernels_code). A `--resume` that ran other kernel code makes the run differ too."""
    env = _env(run)
    code = installed_kernels()
    installed = code.get("kernels_hash")
    mine = env.get("kernels_hash") if isinstance(env.get("kernels_hash"), str) else None
    if not mine:
        commit = env.get("git_commit")
        if run.meta.get("mode") == "import":
            why = "an imported profile does not record it"
        elif commit:
            why = f"run.json has no kernels_hash, only the git commit {str(commit)[:12]}"
        else:
            why = "run.json records neither a kernels_hash nor a git commit"
        return KernelCode("unknown", None, installed, f"the kernel code this run measured is not recorded ({why}), "
                                                      "so whether its stage figures are of today's stages is unknown.")
    if not installed:
        return KernelCode("unknown", mine, None, f"the installed kernels package cannot be read ({code.get('why')}), "
                                                 f"so whether this run's kernel code ({mine}) is today's is unknown.")
    resumed = sorted({h for r in run.meta.get("resumes") or [] if isinstance(r, dict)
                      for h in [((r.get("environment") or {}) if isinstance(r.get("environment"), dict) else {})
                                .get("kernels_hash")] if h and h != mine})
    if mine == installed and not resumed:
        return KernelCode("installed", mine, installed, "")
    source = env.get("kernels_hash_source")
    source = f", {source}" if source and source != COLLECTED_KERNELS_SOURCE else ""
    theirs, ours = env.get("kernels_files"), code.get("kernels_files") or {}
    files = ""
    if isinstance(theirs, dict) and mine != installed:  # name the fewer: the files that differ, or those that do not
        every = sorted({*theirs, *ours})
        differ = [n for n in every if theirs.get(n) != ours.get(n)]
        same = [n for n in every if n not in differ]
        if differ and (len(differ) <= 4 or len(same) > 4):
            files = f"; {len(differ)} of {len(every)} files differ, are new or are gone: {_names(differ)}"
        elif differ:
            files = (f"; every file differs, is new or is gone but {_names(same)}" if same else
                     "; every file differs, is new or is gone")
    again = f"; a --resume of it ran kernel code {', '.join(resumed)}" if resumed else ""
    return KernelCode("differs", mine, installed,
                      f"measured with kernel code that differs from the installed kernels/ (run: {mine}{source}; "
                      f"installed: {installed}{files}{again}): its figures are of that code, not of the installed "
                      "one.")


def _env(run: Run) -> dict:
    env = run.meta.get("environment")
    return env if isinstance(env, dict) else {}


def gpu_name(run: Run) -> str | None:
    """The GPU the run was measured on, as torch names it (None for a run made without one)."""
    for source in (_env(run), run.meta):
        name = source.get("gpu_name") or source.get("gpu")
        if name:
            return str(name)
    return None


def unmeasured_reason(run: Run) -> str | None:
    """Why the run holds no GPU timings (and, for --interpret, no counters), as a clause a chart or a page says in
    place of a guess; None for a run of the GPU."""
    mode = run.meta.get("mode")
    if mode == "interpret":
        return ("the run was made with --interpret (the kernels ran on the CPU interpreter), so it holds no GPU "
                "timings or counters")
    if mode == "import":
        return "the run was imported from an Nsight Compute report, which holds counters but no timings"
    return None


def run_label(run: Run) -> str:
    """Short human label: run id, GPU, and 'partial' when the run did not finish."""
    gpu = gpu_name(run) or "no GPU"
    status = run.status
    tail = f" ({status})" if status and status != "complete" else ""
    return f"{run.run_id} · {gpu}{tail}"
