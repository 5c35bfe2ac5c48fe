"""The output against the float64 reference rounded to the output dtype (kernels.reference.rounding_error): the
ULP distance on hand-built fp16 / bf16 values, the single rounding it is measured against, a degraded
implementation that the largest error cannot tell from a good one but these figures can, the chunked check and
fp8's bf16 output, and old runs that never measured them (shown as "not measured", never a number)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from kernels.workload import AttentionConfig

from kernels.reference import (
    _causal_masked, attention_reference, compare, make_inputs, round_to_dtype, rounding_error, ulp_distance,
)

ROOT = Path(__file__).resolve().parent.parent
# a GPU run committed before the figures existed: every implementation at the seed config has max error 0.001179
OLD_RUN = ROOT / "runs" / "20261202-060607-seed-nvidia-h200"


def _t(values, dtype):
    return torch.tensor(values, dtype=dtype)


# ---- the ULP distance ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, one_ulp_above_1", [(torch.float16, 1 + 2**-10), (torch.bfloat16, 1 + 2**-7)])
def test_ulp_distance_counts_representable_steps(dtype, one_ulp_above_1):
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # the smallest positive subnormal
    a = _t([1.0, 1.0, -1.0, 2.0, 0.0, 0.0, tiny, tiny, 1.0], dtype)
    b = _t([1.0, one_ulp_above_1, -one_ulp_above_1, 2.0 + 2 * (one_ulp_above_1 - 1), -0.0, tiny, -tiny, 0.0, -1.0],
           dtype)
    want = [0,  # exact
            1,  # adjacent values
            1,  # adjacent negative values
            1,  # one step at 2 is twice the step at 1: still one ULP
            0,  # +0 and -0 are the same value
            1,  # zero to the smallest subnormal
            2,  # across zero: +tiny, 0, -tiny
            1,  # and back to zero
            2 * int(_t([1.0], dtype).view(torch.int16).item())]  # 1 to -1: every step down to 0 and back up
    got = ulp_distance(a, b)
    assert got.dtype == torch.float64 and got.tolist() == want
    assert ulp_distance(b, a).tolist() == want  # symmetric


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ulp_distance_of_infinities_and_nan(dtype):
    inf, nan, big = math.inf, math.nan, torch.finfo(dtype).max
    a = _t([inf, -inf, inf, big, nan, nan, 1.0], dtype)
    b = _t([inf, -inf, -inf, inf, nan, 1.0, nan], dtype)
    # the same infinity is exact; an infinity against anything else, or a NaN on either side, is inf: a non-finite
    # output has no meaningful number of steps (the largest finite value is one bit pattern below inf)
    assert ulp_distance(a, b).tolist() == [0, 0, inf, inf, inf, inf, inf]


def test_ulp_distance_refuses_mixed_dtypes():
    with pytest.raises(ValueError, match="one floating dtype"):
        ulp_distance(_t([1.0], torch.float16), _t([1.0], torch.bfloat16))


def test_round_to_dtype_rounds_once():
    # torch's float64 -> float16 goes through float32: 1 + 2^-11 + 2^-40 becomes 1 + 2^-11 there, a tie, then 1.0;
    # correctly rounded it is just above the midpoint of 1 and 1 + 2^-10, so 1 + 2^-10
    x = _t([1 + 2**-11 + 2**-40, 1 + 2**-11, -(1 + 2**-11 + 2**-40), 1 + 2**-11 - 2**-40, 1 + 3 * 2**-11],
           torch.float64)
    assert x.to(torch.float16).double().tolist()[0] == 1.0  # the double rounding this avoids
    assert round_to_dtype(x, torch.float16).double().tolist() == [1 + 2**-10, 1.0, -(1 + 2**-10), 1.0, 1 + 2**-9]
    y = _t([1 + 2**-8 + 2**-40, 1 + 2**-8, 2.0**-130 + 2.0**-150], torch.float64)  # bf16, a subnormal among them
    assert round_to_dtype(y, torch.bfloat16).double().tolist() == [1 + 2**-7, 1.0, 2.0**-130]
    exact = _t([0.5, -0.0, math.inf, 1e-3], torch.float64)
    assert torch.equal(round_to_dtype(exact, torch.float32), exact.float())


# ---- a degraded implementation ------------------------------------------------------------------------------------
def _flash_emulation(q, k, v, causal, exp=torch.exp, p_dtype=None):
    """A flash-attention forward in torch: float32 scores and exponentials, P optionally rounded to `p_dtype`
    for P·V, the row sum taken before that rounding, the output rounded to the inputs' dtype at the end."""
    qf, kf, vf = (t.float() for t in (q, k, v))
    s = qf @ kf.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = _causal_masked(s)
    p = exp(s - s.amax(dim=-1, keepdim=True))
    row_sum = p.sum(dim=-1, keepdim=True)
    if p_dtype is not None:
        p = p.to(p_dtype).float()
    return ((p @ vf) / row_sum).to(q.dtype)


def _approximate_exp(x, mantissa_bits: int = 14):
    """exp with its result cut to `mantissa_bits` bits (float32 has 23): what a cheaper exponential unit gives."""
    m, e = torch.frexp(torch.exp(x))
    return torch.ldexp(torch.floor(m * 2**mantissa_bits) / 2**mantissa_bits, e)


# fp16 inputs at a size the CPU checks in a second; causal, as the seed config
CONFIG = dict(B=1, H=4, S=256, D=64)


@pytest.mark.parametrize("degradation", [
    dict(exp=_approximate_exp),  # an approximate exponential (14 mantissa bits)
    dict(p_dtype=torch.float16),  # P rounded to fp16 for P·V (what the real kernels do; an fp32 P does not)
])
def test_a_degraded_implementation_shows_in_the_rounded_figures_not_in_the_max_error(degradation):
    q, k, v = make_inputs(**CONFIG, dtype=torch.float16, seed=0)
    ref = attention_reference(q, k, v, causal=True)
    good = compare(_flash_emulation(q, k, v, True), q, k, v, True, ref=ref)
    worse = compare(_flash_emulation(q, k, v, True, **degradation), q, k, v, True, ref=ref)
    # both pass today's rule, and today's figure puts them within 1% of each other (the output's rounding sets it)
    assert good.within_budget and worse.within_budget
    assert abs(worse.max_abs_err / good.max_abs_err - 1) < 0.01
    # the rounded-reference figures see the change, by far more than their own noise
    assert good.exact_frac > 0.99 and worse.exact_frac < good.exact_frac - 0.05
    assert worse.rms_ulp > 2 * good.rms_ulp
    assert worse.max_ulp >= good.max_ulp >= 1


def test_an_exactly_rounded_output_is_zero_ulps_and_a_nan_is_infinitely_far():
    q, k, v = make_inputs(1, 2, 64, 32, torch.bfloat16, seed=1)
    ref = attention_reference(q, k, v)
    exact = compare(round_to_dtype(ref, torch.bfloat16), q, k, v, ref=ref)
    assert (exact.max_ulp, exact.exact_frac, exact.rms_ulp) == (0.0, 1.0, 0.0)
    broken = round_to_dtype(ref, torch.bfloat16)
    broken[0, 0, 0, 0] = math.nan
    r = rounding_error(broken, ref, torch.bfloat16).figures()
    assert r["max_ulp"] == math.inf and r["rms_ulp"] == math.inf and r["exact_frac"] == 1 - 1 / broken.numel()


def test_fp8_inputs_are_measured_in_ulps_of_their_bf16_output():
    """fp8 inputs give a bf16 output (kernels.reference.output_dtype): the reference (the float64 math of the 8-bit
    values) is rounded to bf16, so an implementation's own rounding of P to e4m3 counts, not the inputs'."""
    from kernels.reference import attention_fp8_math, output_dtype

    q, k, v = (t.to(torch.float8_e4m3fn) for t in make_inputs(1, 2, 64, 32, torch.float32, seed=2))
    assert output_dtype(q.dtype) == torch.bfloat16
    ref = attention_reference(q, k, v, causal=True)
    assert rounding_error(round_to_dtype(ref, torch.bfloat16), ref, q.dtype).figures()["exact_frac"] == 1.0
    fp8_math = rounding_error(attention_fp8_math(q, k, v, causal=True), ref, q.dtype).figures()
    assert 0 < fp8_math["exact_frac"] < 1 and fp8_math["max_ulp"] >= 1
    # a wider output is rounded to bf16 first: one unit for every implementation of a config
    as_fp32 = rounding_error(ref.float(), ref, q.dtype).figures()
    assert as_fp32["max_ulp"] == 0


def test_the_chunked_check_gives_the_whole_tensor_figures():
    from collectors.timing import bench

    q, k, v = make_inputs(2, 3, 33, 16, torch.float16, seed=3)
    out = _flash_emulation(q, k, v, True, exp=_approximate_exp)
    whole = compare(out, q, k, v, True)
    chunked = bench.check_output(out, q, k, v, True, chunk_bytes=33 * 33 * 8)  # one head per chunk
    assert chunked.max_ulp == whole.max_ulp and chunked.exact_frac == whole.exact_frac
    assert chunked.rms_ulp == pytest.approx(whole.rms_ulp, rel=1e-12)
    # the correctness table's row and perfmodel bench's CSV carry them
    result = bench.CaseResult("x", AttentionConfig(B=2, H=3, S=33, D=16, causal=True), "ok", correctness=chunked)
    row = result.correctness_row("run")
    assert (row["max_ulp"], row["exact_frac"], row["rms_ulp"]) == (chunked.max_ulp, chunked.exact_frac,
                                                                  chunked.rms_ulp)
    csv = bench.bench_table([result], {}).iloc[0]
    assert (csv["max_ulp"], csv["exact_frac"]) == (chunked.max_ulp, chunked.exact_frac)


# ---- runs that never measured them --------------------------------------------------------------------------------
def test_an_old_run_reads_not_measured_never_a_number():
    from perfmodel.reports.correctness import correctness_summary, correctness_table
    from perfmodel.reports.displays import correctness_display, correctness_summary_display, rounded_summary_texts
    from perfmodel.runs import load_run

    table = correctness_table(load_run(OLD_RUN))
    checked = table["status"].isin(["ok", "wrong"])
    assert checked.sum() == 11 and table[["max_ulp", "exact_frac", "rms_ulp"]].isna().all().all()
    assert not table["rounded_measured"].any()
    shown = correctness_display(table)
    for col in ("max ULPs vs rounded ref", "exactly rounded", "RMS ULPs vs rounded ref"):
        assert (shown.loc[checked, col] == "not measured").all(), col
        assert (shown.loc[~checked, col] == "—").all(), col  # fa3: unavailable, nothing to measure
    summary = correctness_summary_display(correctness_summary(table))
    assert set(summary["worst max ULPs"]) == {"not measured", "—"}
    assert set(rounded_summary_texts(table).values()) == {"not measured"}


def test_the_dashboard_and_report_show_the_figures_of_a_run_that_has_them(tmp_path, monkeypatch, capsys):
    from streamlit.testing.v1 import AppTest

    from perfmodel.cli import main
    from perfmodel.reports.report_data import SECTION_INTRO
    from synthetic_run import make_run

    run = make_run(tmp_path, name="rounded", rounded=True)
    assert main(["report", str(run), "--format", "md", "--out", "-"]) == 0
    section = capsys.readouterr().out.split("## Correctness against the float64 reference")[1]
    assert "| stage5_full | stage | 2 of 2 | 2 | 2 | 2 | 0.50 | 3 | 75.00% | 0.9 |" in section
    assert "not measured" not in section.replace(SECTION_INTRO["correctness"], "")
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(run))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("app_pages/correctness.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["worst max ULPs"], metrics["lowest exactly rounded"], metrics["worst RMS ULPs"]) == \
        ("3", "75.00%", "0.9")
    assert not at.info  # nothing is "not measured" here
    per_case = at.dataframe[0].value.set_index("impl")
    assert per_case.loc["stage5_full", "exactly rounded"] == "75.00%"
    assert per_case.loc["stage0_baseline", "max ULPs vs rounded ref"] == "1"
