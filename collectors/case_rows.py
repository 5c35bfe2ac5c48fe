"""Small pieces every phase of `perfmodel collect` shares: a row that says why nothing was measured, the time a
row was stored, an exception as one line, and the note a failed compile leaves for the terminal.

The sweep itself is collectors/collect.py; the phases that write these rows are collectors/gpu_cases.py,
collectors/interpret_cases.py, collectors/ablation_phase.py and collectors/census_phase.py.
"""

from __future__ import annotations

import time

from collectors.schema import case_key, columns
from kernels.workload import AttentionConfig

# what the compiler printed for a launch that failed, and Triton's MLIR reproducer (collectors.preflight.compile_log)
LOGS_DIR = "logs"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


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
    end with the other problems), the output and Triton's MLIR reproducer in the run's logs/ folder."""
    kept = log.kept(failed=status == "failed") if log is not None else []
    if status == "failed" and kept:
        where = ", ".join(str(p.relative_to(writer.path)) for p in kept)
        problems.append(f"{what} failed ({(error or '').strip()[:200]}); the compiler's output is "
                        f"in {writer.path}/{where}")
