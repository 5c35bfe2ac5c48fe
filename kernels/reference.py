"""The specification: forward attention written once, plainly, in high precision.

Every stage and every peer is an implementation of `attention_reference`. Correctness is judged with an error
budget rather than a guessed tolerance (flash-attention's tests/test_flash_attn.py does the same): PyTorch's own
math in the low-precision dtype is compared with the float64 reference, and an implementation may be off by at
most `BUDGET_FACTOR` times that error, plus a floor for outputs that round to the same value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# An implementation may err at most this many times PyTorch's own low-precision math (flash-attention's rule).
BUDGET_FACTOR = 2.0


def _causal_masked(scores: torch.Tensor) -> torch.Tensor:
    """Scores with every key after its query set to -inf (top-left aligned: query i sees keys 0..i)."""
    keep = torch.ones(scores.shape[-2], scores.shape[-1], dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~keep, float("-inf"))


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    sm_scale: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """softmax(Q Kᵀ · scale + causal mask) V computed in `dtype` (float64 by default); inputs are [B, H, S, D].

    The causal mask is the top-left aligned one (query i sees keys 0..i), as in the document and in SDPA's
    `is_causal=True` for equal query and key lengths.
    """
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(q.shape[-1])
    qf, kf, vf = (t.to(dtype) for t in (q, k, v))
    scores = torch.matmul(qf, kf.transpose(-2, -1)) * sm_scale
    if causal:
        scores = _causal_masked(scores)
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, vf)


def _is_8bit(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point and dtype.itemsize == 1


def attention_fp8_math(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    """PyTorch's math of an fp8 (e4m3) forward, which has no fp8 matmul of its own to measure: the products of the
    8-bit inputs summed in float32 (as the tensor cores do), the softmax in float32 with each row's probabilities
    kept unnormalized (exp(s - row max), at most 1) and rounded to e4m3 for P·V, the sum taken before rounding,
    and the output rounded to bf16 (FlashAttention-3's fp8 forward does each of these)."""
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(q.shape[-1])
    qf, kf, vf = (t.to(torch.float32) for t in (q, k, v))
    scores = torch.matmul(qf, kf.transpose(-2, -1)) * sm_scale
    if causal:
        scores = _causal_masked(scores)
    p = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    out = torch.matmul(p.to(q.dtype).to(torch.float32), vf) / p.sum(dim=-1, keepdim=True)
    return out.to(torch.bfloat16)


def attention_lowp_math(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    """PyTorch's plain math in the inputs' own dtype: scores, softmax and PV all rounded to that dtype (8-bit
    inputs: `attention_fp8_math`).

    This is the "PyTorch's own low-precision error" that the budget is measured from.
    """
    if _is_8bit(q.dtype):
        return attention_fp8_math(q, k, v, causal, sm_scale)
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-2, -1)) * sm_scale
    if causal:
        scores = _causal_masked(scores)
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(probs, v)


@dataclass(frozen=True)
class ErrorReport:
    """How far an output is from the float64 reference, and whether it is within budget."""

    max_abs_err: float
    max_rel_err: float  # max |out - ref| / max |ref|
    rel_l2_err: float
    budget_abs_err: float
    finite: bool

    @property
    def within_budget(self) -> bool:
        return self.finite and self.max_abs_err <= self.budget_abs_err

    def passes_doc_allclose(self, out: torch.Tensor, ref: torch.Tensor) -> bool:
        """The design document's check: torch.allclose(out, ref, rtol=1e-3, atol=2e-3)."""
        return bool(torch.allclose(out.to(ref.dtype), ref, rtol=1e-3, atol=2e-3))


def budget_floor(dtype: torch.dtype) -> float:
    """The smallest budget an output of inputs in `dtype` gets (see `error_budget`): one unit in the last place at
    1.0 of the dtype, of the bf16 output for 8-bit inputs."""
    if not dtype.is_floating_point:
        return 0.0
    return torch.finfo(torch.bfloat16 if _is_8bit(dtype) else dtype).eps


def error_budget(q, k, v, causal: bool = False, sm_scale: float | None = None, ref: torch.Tensor | None = None,
                 floor: float | None = None) -> float:
    """Max abs error an implementation may have: BUDGET_FACTOR x that of PyTorch's own math in q's dtype.

    `floor` (default: one unit in the last place of the dtype at 1.0) keeps the budget from collapsing to zero
    for float32, where PyTorch's math can be nearly exact on small inputs. For 8-bit inputs it is the unit of the
    bf16 output: e4m3's own (0.125) would allow far more than the math errs.
    """
    if ref is None:
        ref = attention_reference(q, k, v, causal, sm_scale)
    lowp = attention_lowp_math(q, k, v, causal, sm_scale)
    torch_err = (lowp.to(torch.float64) - ref).abs().max().item()
    if floor is None:
        floor = budget_floor(q.dtype)
    return BUDGET_FACTOR * max(torch_err, floor)


def compare(out: torch.Tensor, q, k, v, causal: bool = False, sm_scale: float | None = None,
            ref: torch.Tensor | None = None, budget: float | None = None) -> ErrorReport:
    """Compare `out` with the float64 reference of (q, k, v) and its error budget."""
    if ref is None:
        ref = attention_reference(q, k, v, causal, sm_scale)
    if budget is None:
        budget = error_budget(q, k, v, causal, sm_scale, ref=ref)
    diff = (out.to(torch.float64) - ref).abs()
    finite = bool(torch.isfinite(out).all().item())
    ref_max = ref.abs().max().item() or 1.0
    ref_norm = ref.norm().item() or 1.0
    return ErrorReport(
        max_abs_err=diff.max().item() if finite else float("inf"),
        max_rel_err=(diff.max().item() / ref_max) if finite else float("inf"),
        rel_l2_err=((out.to(torch.float64) - ref).norm().item() / ref_norm) if finite else float("inf"),
        budget_abs_err=budget,
        finite=finite,
    )


def make_inputs(B: int, H: int, S: int, D: int, dtype: torch.dtype, device="cpu", seed: int | None = None,
                layout: str = "bhsd") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fresh random q, k, v of shape [B, H, S, D]; `layout="bshd"` returns transposed views of [B, S, H, D]."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed if seed is not None else torch.seed() % 2**31)
    shape = (B, S, H, D) if layout == "bshd" else (B, H, S, D)
    tensors = [torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
               for _ in range(3)]
    if layout == "bshd":
        tensors = [t.transpose(1, 2) for t in tensors]
    return tensors[0], tensors[1], tensors[2]
