"""What a case's failure reads as, in one line: an exception's informative line (`one_line`: a Triton compile error's
own message and where), a user kernel's failure as its known cause (`case_error`, kernels.known_causes), and why an
output is no attention output at all (`output_problem`). The timing, the census, the ceilings and every phase of
the sweep record their failures through these.
"""

from __future__ import annotations

import re

from kernels.known_causes import known_cause

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
