"""The specification: forward attention written once, plainly, in high precision.

Every stage and every peer is an implementation of `attention_reference`. Correctness is judged with an error
budget rather than a guessed tolerance (flash-attention's tests/test_flash_attn.py does the same): PyTorch's own
math in the low-precision dtype is compared with the float64 reference, and an implementation may be off by at
most `BUDGET_FACTOR` times that error, plus a floor for outputs that round to the same value.

That budget is the pass/fail rule, but it cannot see a change that costs accuracy: at every config the largest
error is set by the rounding of the output to its 16-bit dtype, the same for every correct implementation. So each
output is also compared with the reference *rounded to the output dtype* (`rounding_error`): how many units in the
last place apart they are (`ulp_distance`), how many elements are exactly the rounded reference, and the RMS of the
distances. An approximate exponential or a coarser P moves these long before it moves the largest error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def output_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of O for inputs of `dtype`: the inputs' own, bf16 for 8-bit inputs (FlashAttention-3's fp8 forward
    and kernels/_launch.py's `empty_output` write bf16; so does `attention_fp8_math`)."""
    return torch.bfloat16 if _is_8bit(dtype) else dtype


# ---- distance in units in the last place ----------------------------------------------------------------------
_BITS_AS_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_INT64_MAX = 2**63 - 1


def round_to_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`x` correctly rounded to `dtype` (to nearest, ties to even), with one rounding.

    torch converts float64 to float16 / bfloat16 through float32, which rounds twice and lands on the wrong
    neighbour when the first rounding makes a tie (1 + 2^-11 + 2^-40 becomes 1.0 in float16, not 1 + 2^-10). Here
    the float32 step rounds to odd (truncate, then set the last bit if anything was cut off), which makes the second
    rounding exact: float32 keeps more than two bits beyond every narrower float's mantissa at every exponent.
    """
    if x.dtype == dtype or x.dtype != torch.float64 or dtype.itemsize >= 4:
        return x.to(dtype)  # one rounding already (float64 -> float32 is a single hardware rounding)
    r = x.to(torch.float32)
    back = r.to(torch.float64)
    inexact = (back != x) & ~torch.isnan(x)
    bits = r.view(torch.int32)
    # rounded away from zero: one unit back towards it (the bit pattern's magnitude less one, either sign)
    bits = torch.where(inexact & (back.abs() > x.abs()), bits - 1, bits)
    bits = torch.where(inexact, bits | 1, bits)
    return bits.view(torch.float32).to(dtype)


def _ordered_bits(x: torch.Tensor) -> torch.Tensor:
    """x's bit patterns as int64 keys in the order of the values: +k for a positive pattern of magnitude k, -k for
    a negative one (so +0 and -0 are both 0, and neighbouring floats are neighbouring integers)."""
    width = x.dtype.itemsize
    bits = x.view(_BITS_AS_INT[width]).to(torch.int64)
    magnitude = bits & ((1 << (8 * width - 1)) - 1)
    return torch.where(bits < 0, -magnitude, magnitude)


def _checkable(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype.itemsize == 1 else x  # torch has no isfinite / isinf for 8-bit floats


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise distance between `a` and `b` (one floating dtype) in units in the last place of that dtype, as
    float64 (whole numbers, exact below 2^53).

    The distance is the number of representable values one must step over to get from one to the other: the
    difference of their ordered bit patterns (`_ordered_bits`). Adjacent floats are 1 apart, equal ones 0, +0 and
    -0 are the same value (0 apart), and crossing zero counts the steps on both sides (the smallest positive and
    the smallest negative subnormal are 2 apart). Infinities: equal infinities are 0 apart; an infinity against
    anything else, and a NaN on either side, is `inf` (a non-finite output has no meaningful number of steps).
    Float64's distances above 2^63 - 1 saturate there.
    """
    if a.dtype != b.dtype or not a.dtype.is_floating_point:
        raise ValueError(f"ulp_distance needs two tensors of one floating dtype, got {a.dtype} and {b.dtype}")
    ka, kb = _ordered_bits(a), _ordered_bits(b)
    hi, lo = torch.maximum(ka, kb), torch.minimum(ka, kb)
    overflow = hi > _INT64_MAX + lo.clamp(max=0)  # only 8-byte keys can get this far apart
    steps = torch.where(overflow, torch.full_like(hi, _INT64_MAX), hi - lo).to(torch.float64)
    fa, fb = _checkable(a), _checkable(b)
    nonfinite = ~torch.isfinite(fa) | ~torch.isfinite(fb)
    same_inf = torch.isinf(fa) & (fa == fb)
    return torch.where(nonfinite, torch.where(same_inf, 0.0, math.inf), steps)


# The figures `rounding_error` gives, by the names the ErrorReport fields and the correctness table's columns have.
ROUNDED_FIGURES = ("max_ulp", "exact_frac", "rms_ulp")


@dataclass(frozen=True)
class RoundingError:
    """An output against the reference rounded to the output dtype, as sums over elements that add up over chunks
    (collectors/bench.py's chunked check adds one per chunk of heads)."""

    n_elements: int = 0
    n_exact: int = 0  # elements equal to the rounded reference (0 ULPs apart)
    max_ulp: float = 0.0
    sum_sq_ulp: float = 0.0

    def __add__(self, other: RoundingError) -> RoundingError:
        return RoundingError(self.n_elements + other.n_elements, self.n_exact + other.n_exact,
                             max(self.max_ulp, other.max_ulp), self.sum_sq_ulp + other.sum_sq_ulp)

    def figures(self) -> dict[str, float]:
        """The three figures an ErrorReport carries: max_ulp, exact_frac and rms_ulp (NaN for no elements)."""
        n = self.n_elements
        if n == 0:
            return dict.fromkeys(ROUNDED_FIGURES, math.nan)
        return dict(zip(ROUNDED_FIGURES, (self.max_ulp, self.n_exact / n, math.sqrt(self.sum_sq_ulp / n))))


def rounding_error(out: torch.Tensor, ref: torch.Tensor, input_dtype: torch.dtype) -> RoundingError:
    """`out` against the (float64) reference `ref` correctly rounded to the output dtype of inputs in `input_dtype`
    (`output_dtype`: bf16 for fp8 inputs), in that dtype's units in the last place.

    This is the one place the rounded-reference figures are computed: kernels.reference.compare, the collector's
    chunked check (collectors.bench.check_output, which every case, interpreted case and ablation variant goes
    through) and the tests call it. A perfectly rounded implementation is 0 ULPs from it everywhere; an output of
    a wider dtype than the rule's is rounded to it first, so every implementation of a config is measured in one
    unit. For fp8 inputs the reference is the float64 math of the 8-bit values themselves, so what is counted is
    the implementation's own error (e.g. P rounded to e4m3), not the inputs' quantization.
    """
    dtype = output_dtype(input_dtype)
    if not dtype.is_floating_point:
        raise ValueError(f"no unit in the last place for an output of {dtype}")
    steps = ulp_distance(round_to_dtype(out, dtype), round_to_dtype(ref, dtype)).flatten()
    if steps.numel() == 0:
        return RoundingError()
    return RoundingError(n_elements=steps.numel(), n_exact=int((steps == 0).sum().item()),
                         max_ulp=steps.max().item(), sum_sq_ulp=steps.square().sum().item())


@dataclass(frozen=True)
class ErrorReport:
    """How far an output is from the float64 reference, and whether it is within budget.

    The rounded-reference figures (`rounding_error`) are keyword-only and NaN where they were not measured (a
    report rebuilt from a run made before they existed)."""

    max_abs_err: float
    max_rel_err: float  # max |out - ref| / max |ref|
    rel_l2_err: float
    budget_abs_err: float
    finite: bool
    max_ulp: float = field(default=math.nan, kw_only=True)  # max ULPs of the output dtype from round(ref)
    exact_frac: float = field(default=math.nan, kw_only=True)  # fraction of elements equal to round(ref)
    rms_ulp: float = field(default=math.nan, kw_only=True)  # RMS of the ULP distances to round(ref)

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
        **rounding_error(out, ref, q.dtype).figures(),
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
