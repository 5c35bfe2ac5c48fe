"""Small pieces every phase of `perfmodel collect` shares: a row that says why nothing was measured, the time a
row was stored, and the note a failed compile leaves for the terminal (a failure's one line, and whether a kernel's
output is an attention output at all, are collectors/timing/failures.py's).

The sweep itself is collectors/sweep/collect.py; the phases that write these rows are collectors/sweep/gpu_cases.py,
collectors/sweep/interpret_cases.py, collectors/sweep/ablation_phase.py and collectors/sweep/census_phase.py.
"""

from __future__ import annotations

import time

from kernels.workload import AttentionConfig
from runstore.schema import case_key, columns

# what the compiler printed for a launch that failed, and Triton's MLIR reproducer
# (collectors.sweep.preflight.compile_log)
LOGS_DIR = "logs"


def status_row(table: str, impl: str, config: AttentionConfig, status: str, error: str | None) -> dict:
    """A row of `table` with every value null: `status` says why (not_measured, failed, wrong, unavailable)."""
    row = {c: None for c in columns(table) if c != "run_id"}
    row.update(case_key(impl, config))
    row["status"] = status
    if "error" in row:
        row["error"] = error
    return row


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def note_compile_log(problems: list[str], writer, what: str, status: str, error: str | None, log) -> None:
    """A launch that failed with compiler output: one line for the terminal (appended to `problems`, printed at the
    end with the other problems), the output and Triton's MLIR reproducers in the run's logs/ folder."""
    kept = log.kept(failed=status == "failed") if log is not None else []
    if status == "failed" and kept:
        output, reproducers = log.split(kept)
        parts = []
        if output:
            parts.append(f"the compiler's output is in {writer.path}/{output[0].relative_to(writer.path)}")
        if reproducers:
            names = ", ".join(str(p.relative_to(writer.path)) for p in reproducers)
            parts.append(f"Triton's MLIR reproducers (the input and pass pipeline of each compiler stage it ran, "
                         f"newest first, for `triton-opt --run-reproducer`) are {writer.path}/{names}")
        problems.append(f"{what} failed ({(error or '').strip()[:200]}); " + "; ".join(parts))
