"""The census: each stage compiled for sm_90 on this (GPU-less) machine, and its technique found in the code.

Every stage is compiled once, at the seed config (B16 H16 S2048 D64 causal fp16, the document's own), with the
H100's 132 SMs; the counts are static (collectors/census.py says what each one means).
"""

from __future__ import annotations

import types

import pytest

from collectors import census as census_mod
from collectors.census import H100_SM_COUNT, census, census_frame, count_ptx
from collectors.schema import columns
from kernels.suites import SEED

STAGES = ["stage0_baseline", "stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap",
          "stage5_full"]
# What each stage's docstring claims to add (issue 3's stage plan); every later stage keeps the earlier ones.
TMA_STAGES = STAGES[1:]
WARP_SPECIALIZED = STAGES[1:]
PERSISTENT = STAGES[3:]


@pytest.fixture(scope="module")
def results():
    return {name: census(name, SEED) for name in STAGES}


@pytest.mark.parametrize("stage", STAGES)
def test_compiles_for_sm90(results, stage):
    r = results[stage]
    assert r.status == "ok", r.error
    assert r.kernels and r.registers > 0 and r.shared_bytes > 0 and r.grid_programs > 0


@pytest.mark.parametrize("stage", STAGES)
def test_tensor_cores_in_every_stage(results, stage):
    r = results[stage]
    assert r.wgmma > 0, f"{stage}: no wgmma.mma_async in the sm_90 PTX"
    assert r.ex2 > 0  # the softmax's exponentials on the special-function unit


@pytest.mark.parametrize("stage", TMA_STAGES)
def test_tma_loads(results, stage):
    assert results[stage].tma > 0, f"{stage} claims TMA but has no cp.async.bulk.tensor"


def test_baseline_has_no_tma_and_no_warp_specialization(results):
    r = results["stage0_baseline"]
    assert r.tma == 0 and r.setmaxnreg == 0 and r.num_warps == r.requested_warps


def _is_warp_specialized(r) -> bool:
    # Triton's warp specialization adds producer warps (total warps > requested), hands registers between the
    # partitions with setmaxnreg, and synchronizes producer and consumers through mbarriers.
    return r.num_warps > r.requested_warps and r.setmaxnreg > 0 and r.mbarrier > 0


@pytest.fixture(scope="module")
def full_results():
    # Non-causal with S a multiple of the key block: the case where every stage from 1 on warp-specializes.
    return {name: census(name, SEED.with_(causal=False)) for name in WARP_SPECIALIZED}


def test_stage1_is_warp_specialized_at_the_seed(results):
    r = results["stage1_warpspec"]
    assert _is_warp_specialized(r), (r.num_warps, r.requested_warps, r.setmaxnreg, r.mbarrier)


@pytest.mark.parametrize("stage", WARP_SPECIALIZED)
def test_warp_specialized_without_masking(full_results, stage):
    r = full_results[stage]
    assert r.status == "ok", r.error
    assert _is_warp_specialized(r), (r.num_warps, r.requested_warps, r.setmaxnreg, r.mbarrier)


@pytest.mark.parametrize("stage", STAGES)
def test_warp_specialization_claim_matches_code(results, stage):
    # Where a launcher asks for warp specialization (WARP_SPECIALIZE=True) the code must show it; where it does
    # not (e.g. a causal split loop that Triton's pass refuses), there must be no setmaxnreg either.
    r = results[stage]
    claimed = r.launch_meta.get("WARP_SPECIALIZE", stage == "stage1_warpspec")
    assert _is_warp_specialized(r) == bool(claimed), r.launch_meta


def test_stage2_has_fewer_barriers_than_stage1(results):
    s1, s2 = results["stage1_warpspec"], results["stage2_reduced_sync"]
    assert s2.bar_sync < s1.bar_sync, f"bar.sync: stage 1 {s1.bar_sync}, stage 2 {s2.bar_sync}"


@pytest.mark.parametrize("stage", STAGES[:3])
def test_one_program_per_tile_before_persistence(results, stage):
    assert results[stage].grid_programs == SEED.tiles(128)  # 16 query tiles x 256 (batch, head) pairs


@pytest.mark.parametrize("stage", PERSISTENT)
def test_persistent_grid_is_about_one_program_per_sm(results, stage):
    programs = results[stage].grid_programs
    # A persistent grid is a small multiple of the SM count (programs per SM = occupancy), far below the
    # 4096 tiles of the seed config.
    assert programs % H100_SM_COUNT == 0 and 1 <= programs // H100_SM_COUNT <= 4, programs


def test_persistent_grid_follows_sm_count(results):
    half = census("stage3_persistent", SEED, sm_count=H100_SM_COUNT // 2)
    assert half.status == "ok", half.error
    assert half.grid_programs * 2 == results["stage3_persistent"].grid_programs


def test_census_frame_has_schema_columns(results):
    frame = census_frame(STAGES, [SEED], run_id="r1")  # served from the per-process cache
    assert list(frame.columns) == columns("census")
    assert list(frame["impl"]) == STAGES and (frame["config_id"] == SEED.id).all() and (frame["run_id"] == "r1").all()


def test_count_ptx_opcodes_only():
    ptx = """
    // bar.sync in a comment is not an instruction
    \tbar.sync \t0;
    @%p1 bar.sync 1, 256;
    @!%p2 barrier.sync 2;
    \tbar.arrive 3, 384;
    \tmbarrier.try_wait.parity.shared::cta.b64 %p3, [%r1], %r2;
    \tcp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r3], [%rd1, {%r4, %r5}], [%r6];
    \twgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%f1}, %rd2, %rd3, 1, 1, 1, 0, 1;
    \tex2.approx.ftz.f32 %f2, %f3;
    \tsetmaxnreg.inc.sync.aligned.u32 240;
    """
    assert count_ptx(ptx) == {"wgmma": 1, "bar_sync": 3, "bar_arrive": 1, "mbarrier": 1, "tma": 1, "ex2": 1,
                              "setmaxnreg": 1}


def test_a_stage_without_a_launch_is_a_failed_census(monkeypatch):
    fake = types.ModuleType("kernels.fake_stage")
    fake.attention = lambda q, k, v, causal=False, sm_scale=None: q
    monkeypatch.setattr(census_mod, "stage_module", lambda impl: fake)
    r = census("fake_stage", SEED.with_(B=1, H=1))
    assert r.status == "failed" and "no Triton launch" in r.error
    assert r.row()["status"] == "failed" and r.row()["wgmma"] is None
