"""What `perfmodel collect` checks before it measures anything, and the compiler logs of what it launches.

Each check returns the reason it refuses, one sentence, or None:

- `interpreter_problem()`: package versions known to break Triton's CPU interpreter (`INTERPRETER_BREAKS`);
- `memory_problem(configs, total_bytes, gpu)` (collectors/timing/memory.py): a config whose tensors cannot fit the
  GPU's memory, refused before anything is launched (an out-of-memory error half-way through a suite helps nobody);
- `resume_conflicts(given, run_meta)`: options given with `--resume` that differ from those the run was started
  with (a resumed run is measured as it was started, so such an option could only be ignored).

`compile_log(folder, tag)` sends what the compiler writes to file descriptor 2 during a launch (Triton prints
whole MLIR dumps there when a pass fails) into `<folder>/<tag>.log` and asks Triton for its crash reproducer
(`TRITON_REPRODUCER_PATH`) at `<folder>/<tag>.mlir`; files that stay empty are removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from importlib import metadata
from pathlib import Path

from runstore.safe_io import stderr_to

# (package, first broken version, first fixed version or None, why). NumPy 2.4 turned the conversion of a
# one-element array with ndim > 0 to a Python scalar into an error (deprecated since NumPy 1.25); Triton's
# interpreter does exactly that for every index (triton/runtime/interpreter.py, `int(self.handle.data)`).
INTERPRETER_BREAKS: tuple[tuple[str, tuple[int, ...], tuple[int, ...] | None, str], ...] = (
    ("numpy", (2, 4), None, "it makes int() of a one-element array an error, which Triton's interpreter calls "
                            "for every index"),
)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3])


def interpreter_problem(version_of=None) -> str | None:
    """Why Triton's interpreter cannot run with the installed packages (TRITON_INTERPRET=1), or None;
    `version_of(package)` gives a package's version (default: importlib.metadata.version)."""
    version_of = version_of or metadata.version
    for package, broken, fixed, why in INTERPRETER_BREAKS:
        try:
            installed = version_of(package)
        except metadata.PackageNotFoundError:
            continue
        v = _version_tuple(installed)
        if v >= broken and (fixed is None or v < fixed):
            upper = ".".join(map(str, broken))
            return (f"{package} {installed} breaks Triton's CPU interpreter used by --interpret ({why}); install "
                    f"{package}<{upper} (pip install '{package}<{upper}') in this environment.")
    return None


# ---- --resume ---------------------------------------------------------------------------------------------------
# option of CollectOptions -> the command-line option that sets it
RESUME_FIXED = {"suite": "--suite", "configs": "--config", "stages": "--stages", "refs": "--refs",
                "impls": "--impl", "interpret": "--interpret", "determinism_runs": "--determinism"}


def _short(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value) or "none"
    return str(value)


def resume_conflicts(given: dict, run_meta: dict) -> str | None:
    """Why the options `given` with --resume (option -> value; None for those not given) conflict with the run
    described by `run_meta` (its run.json), naming each, or None. `configs` are config ids, `impls` names."""
    old = dict(run_meta.get("options") or {})
    old["configs"] = [c.get("config_id") for c in run_meta.get("configs") or [] if isinstance(c, dict)]
    old["impls"] = sorted((old.get("impls") or {}).keys()) if isinstance(old.get("impls"), dict) else []
    differ = []
    for name, flag in RESUME_FIXED.items():
        value = given.get(name)
        if value is None or value is False or value == [] or name not in old:
            continue
        was = old[name]
        if name == "interpret" and bool(was):
            continue
        same = sorted(value) == sorted(was) if isinstance(value, list) else value == was
        if not same:
            differ.append(f"{flag} {_short(value)} (the run: {_short(was)})")
    if not differ:
        return None
    return ("--resume continues a run with the options it was started with, and these differ from them: "
            + "; ".join(differ) + ". Drop them, or start a new run.")


# ---- compiler logs ----------------------------------------------------------------------------------------------
class CompileLog:
    """Where one launch's compiler output went (`log`) and Triton's crash reproducer (`reproducer`)."""

    def __init__(self, folder: Path, tag: str):
        safe = re.sub(r"[^A-Za-z0-9_.#=-]+", "_", tag)
        self.log, self.reproducer = folder / f"{safe}.log", folder / f"{safe}.mlir"

    def kept(self, failed: bool = True) -> list[Path]:
        """The files that hold something (the others have been removed). Triton writes a reproducer for every pass
        pipeline it runs once TRITON_REPRODUCER_PATH is set (`<tag>.mlir.make_ttir.repro.mlir`, ...), successful
        ones included: unless the launch `failed`, those are removed too."""
        out = []
        reproducers = sorted(self.reproducer.parent.glob(glob.escape(self.reproducer.name) + "*"))
        for p in [self.log] + reproducers:
            try:
                if p.stat().st_size and (failed or p == self.log):
                    out.append(p)
                else:
                    p.unlink()
            except OSError:
                continue
        return out

    def split(self, kept: list[Path]) -> tuple[list[Path], list[Path]]:
        """`kept` (from `kept()`) as (the compiler's output, Triton's reproducers newest first). Triton writes a
        stage's reproducer before it runs that stage and rewrites it with the failing pass alone when one fails,
        so the failed stage's is the newest (up to the file system's clock resolution). With
        TRITON_REPRODUCER_PATH set, Triton prints only two lines for a failed pass (its name and location, and
        where its reproducer went), not the IR it prints otherwise."""
        output = [p for p in kept if p == self.log]
        reproducers = [p for p in kept if p != self.log]
        reproducers.sort(key=lambda p: p.stat().st_mtime_ns if p.exists() else 0, reverse=True)
        return output, reproducers


@contextlib.contextmanager
def compile_log(folder: Path, tag: str):
    """Within the block, fd 2 goes to `<folder>/<tag>.log` and a failed MLIR pass writes its reproducer to
    `<folder>/<tag>.mlir`; yields the CompileLog (call `kept()` after the block)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = CompileLog(folder, tag)
    previous = os.environ.get("TRITON_REPRODUCER_PATH")
    os.environ["TRITON_REPRODUCER_PATH"] = str(log.reproducer)
    try:
        with stderr_to(log.log):
            yield log
    finally:
        if previous is None:
            os.environ.pop("TRITON_REPRODUCER_PATH", None)
        else:
            os.environ["TRITON_REPRODUCER_PATH"] = previous
