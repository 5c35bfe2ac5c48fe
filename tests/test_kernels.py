"""The six attention stages and the `triton_tl` peer against the float64 reference, their input checks, and the
registry.

CPU tests run the `tl` kernels (stage 0 and the triton_tl peer) in Triton's interpreter (TRITON_INTERPRET=1, see
conftest.py) on small shapes chosen to hit the edges; tolerances come from kernels.reference's error budget (2x
PyTorch's own low-precision error). bf16 is tested on the GPU only: Triton 3.6's interpreter gives garbage for bf16
(ANCHORS.md). The Gluon stages 1-5 have no interpreter: on the CPU they must refuse clearly (and their sm_90 code
is checked by tests/test_census.py); their correctness is the GPU-marked tests here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import kernels
from kernels import STAGES, get_stage
from kernels._launch import KernelUnsupported
from kernels.lookup import pinned
from kernels.reference import compare, make_inputs

STAGE_NAMES = [s.name for s in STAGES]
GLUON_NAMES = [n for n in STAGE_NAMES if n in kernels.GLUON_STAGES]
# the implementations the interpreter runs: stage 0 and the tl peer
TL_IMPLS = ["stage0_baseline", "triton_tl"]


def _launcher(name: str):
    from kernels.peers import PEERS

    return PEERS[name].launcher if name in PEERS else get_stage(name).launcher


# (B, H, S, D, causal, dtype, layout) — why each one is here:
EDGE_CASES = [
    # S = 1: one query and one key; every query tile and key block is a tail; B·H > 1 programs
    pytest.param(2, 3, 1, 64, True, torch.float16, "bhsd", id="S1-D64-causal-fp16"),
    # S = 17 < BLOCK_N: the only key block is the masked tail; non-causal takes the tail path alone
    pytest.param(1, 2, 17, 64, False, torch.float32, "bhsd", id="S17-D64-full-fp32"),
    # S = 100, D = 128: tail inside the second key block, causal diagonal block reaching past N_CTX
    pytest.param(2, 2, 100, 128, True, torch.float16, "bhsd", id="S100-D128-causal-fp16"),
    # S = 257 = 2·128 + 1: a one-row query tile and a one-key tail block; transposed [B, S, H, D] input
    pytest.param(1, 2, 257, 64, False, torch.float16, "bshd", id="S257-D64-full-fp16-transposed"),
    # S = 257 causal, D = 128, fp32: three query tiles, so the unmasked off-diagonal loop runs before the diagonal
    pytest.param(2, 1, 257, 128, True, torch.float32, "bhsd", id="S257-D128-causal-fp32"),
    # S = 192, a multiple of BLOCK_N: no tail, so the tl peer's warp-specialized candidates apply
    pytest.param(1, 2, 192, 64, False, torch.float16, "bshd", id="S192-D64-full-fp16-transposed"),
]


def _check(out, q, k, v, causal):
    assert out.shape == q.shape and out.dtype == q.dtype
    report = compare(out, q, k, v, causal)
    assert report.within_budget, report


@pytest.mark.interpreter
@pytest.mark.parametrize("impl", TL_IMPLS)
@pytest.mark.parametrize("B,H,S,D,causal,dtype,layout", EDGE_CASES)
def test_tl_kernels_match_reference(impl, B, H, S, D, causal, dtype, layout):
    q, k, v = make_inputs(B, H, S, D, dtype, seed=S * 7 + D, layout=layout)
    out = _launcher(impl)(q, k, v, causal=causal)
    _check(out, q, k, v, causal)


@pytest.mark.interpreter
@pytest.mark.parametrize("impl", TL_IMPLS)
def test_custom_scale(impl):
    q, k, v = make_inputs(1, 2, 70, 64, torch.float32, seed=5)
    out = _launcher(impl)(q, k, v, causal=True, sm_scale=0.3)
    report = compare(out, q, k, v, True, sm_scale=0.3)
    assert report.within_budget, report


@pytest.mark.interpreter
@pytest.mark.parametrize("stage", GLUON_NAMES)
def test_gluon_stages_refuse_the_interpreter(stage):
    q, k, v = make_inputs(1, 2, 70, 64, torch.float32, seed=5)
    with pytest.raises(KernelUnsupported, match=f"{stage}: Gluon kernels cannot run under TRITON_INTERPRET=1"):
        get_stage(stage).launcher(q, k, v, causal=True)


def _triton_tl_cases():
    import kernels.triton_tl as tl_peer

    cases = []
    # causal with a tail, transposed: pointer and TMA loads, persistent, overlap, masked and split loops
    for i, cfg in enumerate(tl_peer.candidate_configs(130, 64, True)):
        cases.append(pytest.param(cfg, 1, 2, 130, 64, True, "bshd", id=f"causal-S130-cand{i}"))
    # non-causal, whole blocks: adds the warp-specialized candidates
    for i, cfg in enumerate(tl_peer.candidate_configs(128, 64, False)):
        cases.append(pytest.param(cfg, 2, 1, 128, 64, False, "bhsd", id=f"full-S128-cand{i}"))
    return cases


@pytest.mark.interpreter
@pytest.mark.parametrize("cfg,B,H,S,D,causal,layout", _triton_tl_cases())
def test_triton_tl_every_candidate(cfg, B, H, S, D, causal, layout, monkeypatch):
    tl_peer = sys.modules["kernels.triton_tl"]
    monkeypatch.setattr(tl_peer, "PINNED_CONFIG", cfg)
    q, k, v = make_inputs(B, H, S, D, torch.float32, seed=11, layout=layout)
    out = tl_peer.attention(q, k, v, causal=causal)
    _check(out, q, k, v, causal)
    assert "(pinned)" in tl_peer.last_tuned_config() and str(cfg) in tl_peer.last_tuned_config()


@pytest.mark.interpreter
def test_triton_tl_persistent_partial_head_group(monkeypatch):
    # an L2 budget for two heads' K/V: three heads make a full group and a partial one, which the causal
    # heaviest-first order must still cover exactly once (2 interpreter "SMs": each program loops)
    import kernels._launch as launch

    tl_peer = sys.modules["kernels.triton_tl"]
    monkeypatch.setattr(tl_peer, "PINNED_CONFIG", tl_peer.Config(num_warps=4, num_stages=2, persistent=True))
    q, k, v = make_inputs(1, 3, 257, 64, torch.float32, seed=3)
    per_head = 2 * 257 * 64 * 4
    monkeypatch.setattr(launch, "L2_BUDGET_BYTES", 2 * per_head + 1)
    assert launch.l2_group(1, 3, 257, 64, 4) == 2
    out = tl_peer.attention(q, k, v, causal=True)
    _check(out, q, k, v, True)


@pytest.mark.interpreter
def test_triton_tl_untuned_under_interpreter(monkeypatch):
    tl_peer = sys.modules["kernels.triton_tl"]
    monkeypatch.setattr(tl_peer, "PINNED_CONFIG", None)
    q, k, v = make_inputs(1, 1, 40, 64, torch.float32, seed=2)
    out = tl_peer.attention(q, k, v, causal=True)
    _check(out, q, k, v, True)
    assert "untuned: interpreter" in tl_peer.last_tuned_config()


@pytest.mark.interpreter
def test_interpreter_sm_count_and_switch(monkeypatch):
    from kernels import _launch

    assert _launch.interpreting()
    assert _launch.sm_count(torch.device("cpu")) == _launch.INTERPRETER_SM_COUNT
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not _launch.interpreting()  # read at call time


# ---- input checks ---------------------------------------------------------------------------------------------

@pytest.mark.interpreter
@pytest.mark.parametrize("stage", STAGE_NAMES + ["triton_tl"])
def test_rejects_bad_inputs(stage):
    # the Gluon stages check their inputs before they refuse the interpreter, so this runs for them too
    launcher = _launcher(stage)
    q, k, v = make_inputs(1, 1, 8, 64, torch.float32, seed=0)
    bad = {
        "head dimension 32": [t[..., :32].contiguous() for t in (q, k, v)],
        "same shape": [q, k[:, :, :4], v],
        "4 dimensions": [q[0], k[0], v[0]],
        "same dtype": [q, k.double(), v],
        "contiguous": [q.transpose(2, 3).contiguous().transpose(2, 3)[..., :8, :], k, v],
        "not supported here": [t.to(torch.int32) for t in (q, k, v)],
    }
    for words, (bq, bk, bv) in bad.items():
        with pytest.raises(ValueError, match=words):
            launcher(bq, bk, bv)
    with pytest.raises(ValueError, match="causal"):
        launcher(q, k, v, causal=1)
    with pytest.raises(ValueError, match="sm_scale"):
        launcher(q, k, v, sm_scale=-1.0)


@pytest.mark.interpreter
@pytest.mark.parametrize("stage", STAGE_NAMES[1:])
def test_tma_stages_reject_misaligned_base(stage):
    q, k, v = make_inputs(1, 1, 8, 64, torch.float16, seed=0)
    shifted = torch.empty(q.numel() + 1, dtype=q.dtype)[1:].view(q.shape)  # 2 bytes off a 16-byte boundary
    shifted.copy_(q)
    with pytest.raises(ValueError, match="16-byte aligned"):
        get_stage(stage).launcher(shifted, k, v)


def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v = make_inputs(1, 1, 8, 64, torch.float16, seed=0)
    from kernels._launch import check_inputs

    with pytest.raises(ValueError, match="CUDA device"):
        check_inputs(q, k, v, False, None)


def test_launch_or_refuse_maps_compiler_refusals():
    from kernels._launch import KernelUnsupported, launch_or_refuse

    def crash():
        raise RuntimeError("PassManager::run failed")

    def bug():
        raise IndexError("ours")

    with pytest.raises(KernelUnsupported, match="stageX: Triton refused"):
        launch_or_refuse("stageX", crash)
    with pytest.raises(IndexError):
        launch_or_refuse("stageX", bug)


# ---- registry -------------------------------------------------------------------------------------------------

def test_registry_order_names_and_constraints():
    assert STAGE_NAMES == ["stage0_baseline", "stage1_warpspec", "stage2_reduced_sync", "stage3_persistent",
                           "stage4_overlap", "stage5_full"]
    assert [s.index for s in STAGES] == list(range(6))
    assert [s.removes for s in STAGES] == [(), (), (3,), (2,), (4,), (1,)]
    # every constraint is removed exactly once by the time stage 5 runs ("All 4")
    assert sorted(c for s in STAGES for c in s.removes) == [1, 2, 3, 4]
    for s in STAGES:
        assert s.description and "\n" not in s.description
        assert get_stage(s.name) is s and get_stage(s.index) is s and get_stage(str(s.index)) is s
    with pytest.raises(KeyError):
        get_stage("stage9")
    with pytest.raises(KeyError):
        get_stage(6)


def test_import_compiles_nothing():
    # importing the registry must not import triton (nor compile or touch a GPU)
    code = "import sys, kernels; kernels.get_stage(5); print('triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- GPU --------------------------------------------------------------------------------------------------------
# the shape grid of the Gluon stages (issue: odd S, both dtypes, causal, transposed views, B·H not a multiple of
# the SM count): (B, H, S, D, layout)
GPU_SHAPES = ((2, 3, 1531, 64, "bshd"), (1, 4, 2048, 128, "bhsd"), (2, 2, 1, 64, "bhsd"), (1, 133, 200, 128, "bshd"),
              (3, 2, 65, 128, "bhsd"), (1, 2, 257, 64, "bhsd"))


@pytest.mark.gpu
@pytest.mark.parametrize("impl", STAGE_NAMES + ["triton_tl"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_stage_matches_reference(impl, dtype, causal):
    for B, H, S, D, layout in GPU_SHAPES:
        q, k, v = make_inputs(B, H, S, D, dtype, device="cuda", seed=S, layout=layout)
        out = _launcher(impl)(q, k, v, causal=causal)
        _check(out, q, k, v, causal)


@pytest.mark.gpu
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_stage5_every_candidate(D, causal, monkeypatch):
    s5 = sys.modules["kernels.stage5_full"]
    q, k, v = make_inputs(2, 3, 777, D, torch.bfloat16, device="cuda", seed=D, layout="bshd")
    variants = s5.candidate_configs(777, D, causal)
    variants += [sw.flipped(c) for c in variants[:1] for sw in s5.SWITCHES]  # each switch off alone
    for cfg in variants:
        monkeypatch.setattr(s5, "PINNED_CONFIG", cfg)
        try:
            out = s5.attention(q, k, v, causal=causal)
        except KernelUnsupported as exc:  # a candidate Triton refuses (too much shared memory) is not a bug
            assert "refused" in str(exc), exc
            continue
        _check(out, q, k, v, causal)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_stage5_fp8_matches_reference(causal, monkeypatch):
    # fp8 (e4m3) inputs, bf16 output, budget from PyTorch's fp8 math (kernels.reference.attention_fp8_math)
    s5 = sys.modules["kernels.stage5_full"]
    for cfg in (s5.Config(overlap=False), s5.Config(BLOCK_M=192, overlap=False, ring=2)):
        monkeypatch.setattr(s5, "PINNED_CONFIG", cfg)
        for B, H, S, D, layout in GPU_SHAPES:
            q, k, v = make_inputs(B, H, S, D, torch.float8_e4m3fn, device="cuda", seed=S, layout=layout)
            out = s5.attention(q, k, v, causal=causal)
            assert out.shape == q.shape and out.dtype == torch.bfloat16
            report = compare(out, q, k, v, causal)
            assert report.within_budget, (cfg, B, H, S, D, layout, report)


@pytest.mark.gpu
def test_gpu_stage5_fp8_tunes_without_overlap(unpinned_stage5):
    q, k, v = make_inputs(2, 4, 512, 64, torch.float8_e4m3fn, device="cuda", seed=0)
    out = unpinned_stage5.attention(q, k, v, causal=True)
    assert compare(out, q, k, v, True).within_budget
    assert "overlap=False" in kernels.last_tuned_config() and "dtype=float8_e4m3fn" in kernels.last_tuned_config()


def test_fp8_is_refused_by_stage4_and_by_stage5_overlap():
    from kernels import stage4_overlap, stage5_full

    q = torch.zeros(1, 2, 64, 64, dtype=torch.float8_e4m3fn)
    with pytest.raises(ValueError, match="dtype torch.float8_e4m3fn is not supported"):
        stage4_overlap.attention(q, q, q)
    o = torch.empty(1, 2, 64, 64, dtype=torch.bfloat16)
    with pytest.raises(KernelUnsupported, match="overlap=False configs run fp8"):
        stage5_full.launch(stage5_full.Config(overlap=True), q, q, q, o, 0.125, False)


def test_fp8_budget_comes_from_pytorch_fp8_math():
    from kernels.reference import attention_fp8_math, attention_reference, error_budget

    q, k, v = make_inputs(1, 2, 300, 64, torch.float8_e4m3fn, seed=3)
    lowp = attention_fp8_math(q, k, v, causal=True)
    assert lowp.dtype == torch.bfloat16
    err = (lowp.double() - attention_reference(q, k, v, causal=True)).abs().max().item()
    assert 0 < err and error_budget(q, k, v, causal=True) == pytest.approx(2.0 * max(err, 2.0**-7))


@pytest.mark.gpu
def test_gpu_stage5_tunes_and_reports(unpinned_stage5):
    q, k, v = make_inputs(2, 4, 512, 64, torch.float16, device="cuda", seed=0)
    out = unpinned_stage5.attention(q, k, v, causal=True)
    _check(out, q, k, v, True)
    assert "(tuned; fastest 3 re-timed on" in kernels.last_tuned_config()
    report = unpinned_stage5.tuning_report()
    assert report["chosen"] and report["timings_ms"]
    # the fastest candidates were re-timed on rotated inputs before the choice (kernels/tuner.py, fidelity)
    assert len(report["retimed_ms"]) == 3 and report["rotated_sets"] >= 2
    assert report["chosen"] in {c for c, _, _ in report["retimed_ms"]}
    assert all(rotated > 0 for _, _, rotated in report["retimed_ms"])


# ---- stage 5's report of its choice, read back ------------------------------------------------------------------

def test_stage5_config_report_round_trips():
    from kernels import stage5_full

    for S, D, causal in ((2048, 64, True), (2048, 64, False), (4096, 128, True), (1000, 128, False)):
        for cfg in stage5_full.candidate_configs(S, D, causal):
            report = f"S={S} D={D} causal={causal} dtype=float16 B*H~256: {cfg} (tuned)"
            assert stage5_full.config_from_report(report) == cfg
    assert stage5_full.config_from_report("") is None
    assert stage5_full.config_from_report(None) is None
    assert stage5_full.config_from_report("BLOCK_M=x BLOCK_N=64") is None


def test_pinned_runs_the_reported_config_and_restores():
    from kernels import stage5_full

    cfg = stage5_full.Config(ring=2, overlap=False)
    before = stage5_full.PINNED_CONFIG
    with pinned("stage5_full", f"S=64 D=64: {cfg} (tuned)") as got:
        assert got == cfg and stage5_full.PINNED_CONFIG == cfg
    assert stage5_full.PINNED_CONFIG is before
    with pinned("stage0_baseline", f"{cfg}") as got:  # a stage without a tuner: nothing pinned
        assert got is None
    with pinned("stage5_full", "") as got:
        assert got is None and stage5_full.PINNED_CONFIG is before
