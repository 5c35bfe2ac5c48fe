"""Small pieces every phase of `perfmodel collect` shares: a row that says why nothing was measured, the time a
row was stored, an exception as one line (and a user kernel's failure as its known cause), whether a kernel's
output is an attention output at all, and the note a failed compile leaves for the terminal.

The sweep itself is collectors/collect.py; the phases that write these rows are collectors/gpu_cases.py,
collectors/interpret_cases.py, collectors/ablation_phase.py and collectors/census_phase.py.
"""

from __future__ import annotations

import re
import time

from collectors.schema import case_key, columns
from kernels.known_causes import known_cause
from kernels.workload import AttentionConfig

# what the compiler printed for a launch that failed, and Triton's MLIR reproducer (collectors.preflight.compile_log)
LOGS_DIR = "logs"


# Triton's CompilationError: "at LINE:COL:", the kernel's source up to there, a caret, then the error itself
_SOURCE_EXCERPT = re.compile(r"^at (\d+:\d+):$")


def one_line(exc: BaseException) -> str:
    """`Type: message` in one line: the message's first line, or for one that opens with a source excerpt (Triton's
    compile errors: `at 12:4:`, the code, a caret, then the error) its last line and where."""
    text = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not text:
        return type(exc).__name__
    excerpt = _SOURCE_EXCERPT.match(text[0].strip())
    if excerpt and len(text) > 1:
        return f"{type(exc).__name__}: {text[-1].strip()[:300]} (at line {excerpt.group(1)} of the kernel)"
    return f"{type(exc).__name__}: {text[0][:300]}"


def case_error(name: str, exc: BaseException) -> str:
    """What a case of implementation `name` that raised `exc` records: the known cause in one sentence
    (kernels.known_causes: a GPU-driver or torch.cuda query without a GPU, a multi-config autotune), else one_line."""
    return known_cause(exc, name) or one_line(exc)


def output_problem(name: str, out, q) -> str | None:
    """Why `out`, what implementation `name` returned for inputs `q`, is not an attention output: not a tensor
    (None, a tuple), not q's [B, H, S, D] shape, not the output dtype of q's (kernels.reference.output_dtype); None
    when it is one. A case with such an output is `failed` with this sentence."""
    import torch

    from kernels.reference import output_dtype

    if out is None:
        return f"{name} returned None, not a tensor; return the [B, H, S, D] output"
    if isinstance(out, (tuple, list)):
        return (f"{name} returned a {type(out).__name__} of {len(out)}, not a tensor; return the [B, H, S, D] "
                "output alone (e.g. `return out`, not `return out, lse`)")
    if not isinstance(out, torch.Tensor):
        return f"{name} returned a {type(out).__name__}, not a tensor; return the [B, H, S, D] output"
    if tuple(out.shape) != tuple(q.shape):
        B, H, S, D = q.shape
        hint = "; it is [B, S, H, D]: transpose(1, 2) it back" if tuple(out.shape) == (B, S, H, D) else ""
        return f"{name} returned shape {tuple(out.shape)}, not q's [B, H, S, D] {tuple(q.shape)}{hint}"
    want = output_dtype(q.dtype)
    if out.dtype != want:
        return (f"{name} returned {str(out.dtype).replace('torch.', '')} for {str(q.dtype).replace('torch.', '')} "
                f"inputs, where the output is {str(want).replace('torch.', '')} (kernels.reference.output_dtype); "
                f"cast it, e.g. `out.to({'torch.bfloat16' if want != q.dtype else 'q.dtype'})`")
    return None


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
