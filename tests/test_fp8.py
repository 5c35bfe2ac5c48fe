"""fp8 (e4m3) as a dtype a config names, in `perfmodel bench` and `perfmodel collect`: the config and its counts,
the error budget (kernels.reference.attention_fp8_math against the float64 math of the 8-bit values, bf16 output),
stage 0 under the interpreter and compiled for sm_90, and the implementations that do not run fp8 recorded as not
run with their own reason (kernels.registry.Impl.refusal), never called, never a failure."""

from __future__ import annotations

import re

import pytest
import torch

from kernels import STAGES, get_stage
from kernels.hardware import GPUS
from kernels.peers import PEERS
from kernels.reference import attention_fp8_math, attention_reference, compare, error_budget, make_inputs, output_dtype
from kernels.registry import Impl
from kernels.suites import SEED, get_suite
from kernels.workload import OUTPUT_DTYPES, TORCH_DTYPE_NAMES, AttentionConfig, parse_config, torch_dtype
from perfmodel.cli import main

E4M3 = torch.float8_e4m3fn
# the implementations whose launchers take e4m3 inputs; every other stage and peer but fa3 refuses them
RUNS_FP8 = {"stage0_baseline", "stage5_full", "fa3"}


# ---- the config -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["B=1,H=2,S=64,D=64,fp8", "B=1,H=2,S=64,D=64,dtype=e4m3",
                                  "B=1,H=2,S=64,D=64,dtype=float8_e4m3fn", "B=1,H=2,S=64,D=64,dtype=FP8"])
def test_every_spelling_is_one_dtype_with_one_id(text):
    config = parse_config(text)
    assert config.dtype == "fp8" and config.id == "B1-H2-S64-D64-full-fp8"
    assert torch_dtype(config.dtype) == E4M3


def test_fp8_counts_the_same_flops_and_its_own_bytes():
    fp8 = SEED.with_(dtype="fp8")
    assert fp8.flops == SEED.flops and fp8.exps == SEED.exps
    assert (fp8.elem_bytes, fp8.out_dtype, fp8.out_elem_bytes) == (1, "bf16", 2)
    n = SEED.B * SEED.H * SEED.S * SEED.D
    assert fp8.min_hbm_bytes == 3 * n + 2 * n  # Q, K, V in e4m3 read once, O in bf16 written once
    assert SEED.out_dtype == "fp16" and SEED.min_hbm_bytes == 8 * n


def test_the_output_dtype_is_one_fact_in_both_places():
    """kernels.workload (no torch) and kernels.reference (torch dtypes) say the same dtype of O for every input."""
    for short, name in TORCH_DTYPE_NAMES.items():
        assert torch_dtype(OUTPUT_DTYPES.get(short, short)) == output_dtype(getattr(torch, name)), short


def test_the_fp8_tensor_peak_is_twice_fp16_on_hopper():
    # the H100 whitepaper's Table 3 (kernels/hardware.py cites it): dense fp8 1978.9 against fp16 989.4
    for key in ("h100-sxm", "h200-sxm"):
        gpu = GPUS[key]
        assert gpu.mma_tflops("fp8") == pytest.approx(2 * gpu.mma_tflops("fp16"), rel=1e-3)


def test_the_bound_runs_fp8_on_the_fp8_rate_and_bytes():
    from perfmodel.model import bound

    gpu = GPUS["h100-sxm"]
    fp16, fp8 = bound.predict_stage(SEED, 5, gpu), bound.predict_stage(SEED.with_(dtype="fp8"), 5, gpu)
    assert fp8.tensor_ms == pytest.approx(fp16.tensor_ms / 2, rel=1e-3)  # 1978.9 against 2 x 989.4
    assert fp8.hbm_ms == pytest.approx(fp16.hbm_ms * 5 / 8)
    assert fp8.exp_ms == pytest.approx(fp16.exp_ms)  # the same exponentials


def test_the_fa3_grid_in_fp8_is_a_suite():
    grid, fp8 = get_suite("fa3-grid"), get_suite("fa3-grid-fp8")
    assert [c.with_(dtype="fp16") for c in fp8] == grid and {c.dtype for c in fp8} == {"fp8"}
    assert {c.dtype for c in get_suite("tiny-fp8")} == {"fp8"}


# ---- the error budget -----------------------------------------------------------------------------------------
def test_the_budget_is_pytorchs_fp8_math_against_the_8bit_values():
    """The reference is the float64 math of the e4m3 values themselves: their quantization is no error. The budget
    is 2x what PyTorch's fp8 math (P rounded to e4m3, bf16 out) errs from it, and that math itself is within it."""
    from collectors.timing.bench import check_output

    q, k, v = make_inputs(2, 3, 200, 64, E4M3, seed=4)
    ref = attention_reference(q, k, v, causal=True)
    lowp = attention_fp8_math(q, k, v, causal=True)
    err = (lowp.double() - ref).abs().max().item()
    budget = error_budget(q, k, v, causal=True)
    assert budget == pytest.approx(2 * max(err, torch.finfo(torch.bfloat16).eps))
    # the collector's chunked check gives the same budget, a bf16 output in bf16 ULPs
    chunked = check_output(lowp, q, k, v, True, chunk_bytes=1)
    assert chunked.budget_abs_err == pytest.approx(budget) and chunked.within_budget
    assert compare(lowp, q, k, v, True).within_budget
    # the exactly rounded reference is within (0 ULPs); a kernel that lost the causal mask is not
    exact = compare(ref.to(torch.bfloat16), q, k, v, True)
    assert exact.within_budget and exact.max_ulp <= 1
    assert not compare(attention_fp8_math(q, k, v, causal=False), q, k, v, True).within_budget


# ---- who runs fp8 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", [*STAGES, *PEERS.values()], ids=lambda i: i.name)
def test_each_implementation_says_whether_it_runs_fp8(impl):
    fp8 = SEED.with_(dtype="fp8")
    reason = impl.refusal(fp8)
    if impl.name in RUNS_FP8:
        assert reason is None
    else:
        assert reason.startswith(f"{impl.name} does not run fp8 inputs: ") and reason.endswith("; not run")
    assert impl.refusal(SEED) is None  # fp16 is refused by none


@pytest.mark.interpreter
@pytest.mark.parametrize("name", [s.name for s in STAGES] + ["triton_tl"])
def test_the_refusals_agree_with_the_launchers(name):
    """A stage or tl peer that declares it does not run fp8 has a launcher that refuses e4m3 inputs (its input
    check), and one that declares nothing accepts them (stage 0 runs; Gluon stage 5 gets past the check to the
    interpreter's refusal)."""
    from kernels._launch import NoInterpreter

    impl = PEERS[name] if name in PEERS else get_stage(name)
    q, k, v = make_inputs(1, 2, 64, 64, E4M3, seed=1)
    if impl.refusal("fp8"):
        with pytest.raises(ValueError, match="dtype torch.float8_e4m3fn is not supported"):
            impl.launcher(q, k, v, causal=True)
    else:
        with pytest.raises(NoInterpreter):  # past the input check: Gluon's, or the interpreter's e4m3 rounding
            impl.launcher(q, k, v, causal=True)


# stage 0 in e4m3 under the interpreter: (B, H, S, D, causal, layout) and why each is here
FP8_CASES = [
    # S = 17 < BLOCK_N: the only key block is the masked tail
    pytest.param(1, 2, 17, 64, False, "bhsd", id="S17-D64-full"),
    # S = 100, D = 128: a tail inside the second key block, the diagonal block reaching past N_CTX
    pytest.param(2, 1, 100, 128, True, "bhsd", id="S100-D128-causal"),
    # S = 257 = 2·128 + 1, transposed [B, S, H, D] input: a one-row query tile, a one-key tail block
    pytest.param(1, 2, 257, 64, True, "bshd", id="S257-D64-causal-transposed"),
]


@pytest.fixture
def e4m3_rounding(monkeypatch):
    """Triton 3.6's interpreter with its fp32 -> e4m3 conversion replaced by torch's (correct) one.

    The interpreter's `_convert_float` rounds a mantissa up without carrying into the exponent, so a value that
    rounds up to the next power of two loses half of it (0.4997 -> 0.25, not 0.5; about 2% of values in [0, 1),
    `test_the_interpreters_e4m3_rounding_is_wrong`): a kernel rounding P to e4m3 is wrong under the interpreter for
    the interpreter's sake. The GPU's conversion (`cvt.rn.satfinite.e4m3x2.f32`) rounds correctly."""
    import sys

    import numpy as np

    interpreter = sys.modules["triton.runtime.interpreter"]
    convert = interpreter._convert_float

    def rounded_by_torch(data, input_dtype, output_dtype, rounding_mode):
        if output_dtype.name == "fp8e4nv" and input_dtype.primitive_bitwidth > 8 and input_dtype.name != "bf16":
            as_float = torch.from_numpy(np.asarray(data, dtype=np.float32).copy())
            return as_float.to(E4M3).view(torch.uint8).numpy()
        return convert(data, input_dtype, output_dtype, rounding_mode)

    monkeypatch.setattr(interpreter, "_convert_float", rounded_by_torch)
    monkeypatch.setattr(sys.modules["kernels._launch"], "INTERPRETER_ROUNDS_E4M3", True)  # stage 0 then runs fp8


@pytest.mark.interpreter
@pytest.mark.xfail(strict=True, reason="Triton 3.6's interpreter rounds fp32 -> e4m3 without the carry into the "
                                       "exponent; when this passes, stage 0's fp8 test needs no e4m3_rounding")
def test_the_interpreters_e4m3_rounding_is_wrong():
    import triton
    import triton.language as tl

    @triton.jit
    def _to_e4m3(X, Y, N: tl.constexpr):
        i = tl.arange(0, N)
        tl.store(Y + i, tl.load(X + i).to(Y.dtype.element_ty))

    x = torch.linspace(0.0, 1.0, 1024)
    y = torch.zeros(1024, dtype=E4M3)
    _to_e4m3[(1,)](x, y, 1024)
    assert torch.equal(y.float(), x.to(E4M3).float())


@pytest.mark.interpreter
@pytest.mark.parametrize("B,H,S,D,causal,layout", FP8_CASES)
def test_stage0_runs_fp8_within_its_budget(B, H, S, D, causal, layout, e4m3_rounding):
    q, k, v = make_inputs(B, H, S, D, E4M3, seed=S + D, layout=layout)
    out = get_stage("stage0_baseline").launcher(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    report = compare(out, q, k, v, causal)
    assert report.within_budget, report
    assert report.max_ulp >= 1  # P rounded to e4m3: not the exactly rounded reference everywhere


@pytest.mark.parametrize("D", [64, 128])
def test_stage0_compiles_fp8_for_sm90_with_8bit_wgmma(D):
    from collectors.census import sm90
    from collectors.census.census import census

    config = AttentionConfig(B=2, H=4, S=1000, D=D, causal=True, dtype="fp8")
    r = census("stage0_baseline", config, sm90.H100_SM_COUNT)
    assert r.status == "ok", r.error
    assert r.wgmma and r.spills_bytes == 0
    ptx = sm90.compile_launch(sm90.capture(sm90.stage_module("stage0_baseline"), config, sm90.H100_SM_COUNT)[0])[0]
    text = ptx.asm["ptx"]
    assert re.search(r"wgmma\.mma_async\S*\.f32\.e4m3\.e4m3", text)  # both products on 8-bit operands
    assert "cvt.rn.satfinite.e4m3x2.f32" in text  # P rounded to e4m3 for P·V


def test_a_stage_that_refuses_fp8_gets_no_census():
    from collectors.census.census import census

    r = census("stage2_reduced_sync", SEED.with_(dtype="fp8", B=1, H=1))
    assert r.status == "not_measured"
    assert r.error.startswith("no census: stage2_reduced_sync does not run fp8 inputs")


# ---- bench and collect ----------------------------------------------------------------------------------------
def test_a_refused_case_is_not_run_and_says_why():
    """bench_case (perfmodel bench and collect's GPU cases) records the refusal without calling the launcher."""
    from collectors.timing.bench import bench_case, bench_table

    def must_not_run(q, k, v, causal=False, sm_scale=None):
        raise AssertionError("a refused implementation was called")

    impl = Impl("no_fp8", "peer", must_not_run, "test", refuses=(("fp8", "it has no 8-bit kernel"),))
    config = AttentionConfig(B=1, H=1, S=64, D=64, dtype="fp8")
    result = bench_case(impl, config, time_it=False)
    assert result.status == "unavailable"
    assert result.error == "no_fp8 does not run fp8 inputs: it has no 8-bit kernel; not run"
    row = bench_table([result], {}).iloc[0]
    assert row["status"] == "unavailable" and row["config_id"].endswith("-fp8") and row["error"] == result.error


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
@pytest.mark.parametrize("argv", [["--dtype", "fp8"], ["--config", "B=1,H=1,S=64,D=64,dtype=e4m3"],
                                  ["--suite", "fa3-grid-fp8"]], ids=["dtype", "config", "suite"])
def test_bench_accepts_fp8_up_to_the_gpu(capsys, argv):
    """fp8 passes bench's argument checks: what stops it here is the missing GPU, in one sentence."""
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert "needs an NVIDIA GPU" in err and "fp16" not in err


def test_bench_help_teaches_fp8(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "fp8" in out and "fa3-grid-fp8" in out


def test_collect_interpret_records_fp8_cases_with_their_reasons(tmp_path):
    """Under --interpret stage 0's fp8 is not measured (the interpreter's e4m3 rounding), the implementations that
    do not run fp8 are not run, each with its reason; the sm_90 census compiles stage 0 in fp8."""
    from runstore.reader import load_run

    code = main(["collect", "--interpret", "--config", "B=1,H=2,S=100,D=64,causal,dtype=fp8",
                 "--stages", "stage0_baseline,stage3_persistent", "--refs", "triton_tl", "--out", str(tmp_path),
                 "--determinism", "2"])
    assert code == 0
    (path,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(path)
    c = run.table("correctness").set_index("impl")
    assert c.loc["stage0_baseline", "status"] == "not_measured"
    assert "rounds fp32 to e4m3 without the carry" in c.loc["stage0_baseline", "error"]
    assert c.loc["stage0_baseline", "config_id"] == "B1-H2-S100-D64-causal-fp8"
    for name in ("stage3_persistent", "triton_tl"):  # not run, with their own reason: not a failure
        assert c.loc[name, "status"] == "unavailable"
        assert c.loc[name, "error"].startswith(f"{name} does not run fp8 inputs: its launcher takes fp16 and bf16")
    census = run.table("census").set_index("impl")
    assert census.loc["stage0_baseline", "status"] == "ok"
    assert census.loc["stage3_persistent", "status"] == "not_measured"


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_stage0_fp8_matches_reference(causal):
    # the shapes the interpreter cannot reach (whole and tail blocks at S=1000, D=128 transposed), on the GPU's own
    # e4m3 rounding; the budget from PyTorch's fp8 math (kernels.reference.attention_fp8_math)
    for B, H, S, D, layout in ((2, 4, 1000, 64, "bhsd"), (1, 2, 257, 128, "bshd"), (4, 8, 2048, 128, "bhsd")):
        q, k, v = make_inputs(B, H, S, D, E4M3, device="cuda", seed=S, layout=layout)
        out = get_stage("stage0_baseline").launcher(q, k, v, causal=causal)
        assert out.shape == q.shape and out.dtype == torch.bfloat16
        report = compare(out, q, k, v, causal)
        assert report.within_budget, (B, H, S, D, layout, report)


def test_stage5s_census_compiles_an_fp8_config_when_no_run_names_one():
    """With no tuned config to compile (under --interpret), stage 5's census config for fp8 is one that runs 8-bit
    inputs (overlap=False), not stage 4's, which refuses them."""
    from collectors.census.census import census

    r = census("stage5_full", AttentionConfig(B=1, H=2, S=256, D=64, causal=True, dtype="fp8"))
    assert r.status == "ok", r.error
    assert r.launch_meta["OVERLAP"] is False
