"""The analysis layer's door to run folders.

Reports, gates and the dashboard read runs only through here: it wraps the run store's reader
(`collectors.store.load_run`), checks every table part before anything is computed (`check_tables`: corrupt or
truncated Parquet, renamed columns, text in number columns, a future schema version, mistyped run.json fields),
turns a corrupt or missing run into a `UserError` with one clear sentence (also for a damaged part found only
when a table is read), and
finds the run that ships with the package (`perfmodel/bundled/<run_id>/`), which is what `perfmodel report` and
`perfmodel dashboard` show when no run is given.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from collectors.store import Run, RunStoreError, check_tables, list_runs as _list_runs, load_run as _load_run
from perfmodel.errors import UserError

__all__ = ["Run", "load_run", "load_runs", "bundled_run_dirs", "default_run_dir", "resolve_run_dirs",
           "list_runs", "gpu_name", "run_label"]


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
    """Runs under `root` as a DataFrame (see collectors.store.list_runs)."""
    try:
        return _list_runs(Path(root).expanduser())
    except RunStoreError as e:
        raise _user_error(e) from None


def bundled_run_dirs() -> list[Path]:
    """Run folders shipped inside the package under perfmodel/bundled/, newest name last."""
    root = importlib.resources.files("perfmodel") / "bundled"
    try:
        entries = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    dirs = [Path(str(e)) for e in entries if e.is_dir() and (e / "run.json").is_file()]
    return sorted(dirs, key=lambda p: p.name)


# The bundled run a command reads when none is given: the H100 run of 48 cases (every stage on the seed config and
# the fa3-grid configs it names), the widest view of the plan. The H200 seed run with the Gluon stages, Nsight
# Compute and the ablation ships beside it; a bundled run is also named by its id (`perfmodel report <id>`).
DEFAULT_BUNDLED_RUN = "20261124-173318-custom-nvidia-h100-80gb-hbm3"


def default_run_dir() -> Path:
    """The bundled run (DEFAULT_BUNDLED_RUN, else the last one by name)."""
    dirs = bundled_run_dirs()
    if not dirs:
        raise UserError("no run was given and none is bundled with this install; pass a run folder "
                        "(e.g. one made by `perfmodel collect`).")
    return next((d for d in dirs if d.name == DEFAULT_BUNDLED_RUN), dirs[-1])


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


def run_label(run: Run) -> str:
    """Short human label: run id, GPU, and 'partial' when the run did not finish."""
    gpu = gpu_name(run) or "no GPU"
    status = run.status
    tail = f" ({status})" if status and status != "complete" else ""
    return f"{run.run_id} · {gpu}{tail}"
