"""The census: each stage compiled for sm_90 on this (GPU-less) machine, and what its docstring claims found in the
code.

Every stage is compiled at the seed config (B16 H16 S2048 D64 causal fp16, the document's own) and at the same
config non-causal, with the H100's 132 SMs; the counts are static (collectors/census/census.py says what each one
means). What each stage claims (kernels/stage*.py docstrings, the registry's descriptions):

- stage 0 (tl): pointer loads, one program per (query tile, batch·head), no partitions;
- stage 1 (Gluon): a TMA producer partition with 24 registers and an 8-warp wgmma consumer with 240 (setmaxnreg),
  K and V each handed over through their own mbarriers, causal included;
- stage 2: one mbarrier hand-off per K/V slot: fewer mbarrier waits and partition barriers per key block;
- stage 3: stage 2's kernel on a persistent grid of one program per SM, the key loop inside a work-item loop;
- stage 4: two consumer partitions (two math loops), P·V left in flight across the softmax (wgmma.wait_group 1);
- stage 5: a tuner; the census compiles the config it pins (tuned_config_for(config) or CENSUS_CONFIG(config)),
  and the code must show that config's switches.
"""

from __future__ import annotations

import importlib
import re
import types

import pytest

from collectors.census import census as census_mod, sm90
from collectors.census.census import census, census_frame
from collectors.census.ptx import count_ptx, math_loop_maxima, math_loops, ptx_loops
from collectors.census.sm90 import H100_SM_COUNT
from kernels.suites import SEED
from runstore.schema import columns

STAGES = ["stage0_baseline", "stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap",
          "stage5_full"]
GLUON = STAGES[1:]
FULL = SEED.with_(causal=False)
CONFIGS = {"seed": SEED, "full": FULL}
SUPPORTED = [(s, c) for c in CONFIGS for s in STAGES]
PER_TILE = ["stage0_baseline", "stage1_warpspec", "stage2_reduced_sync"]
PERSISTENT = ["stage3_persistent", "stage4_overlap"]
BLOCK_M = 128  # the query tile of every stage's fixed config and of stage 5's census config


@pytest.fixture(scope="module")
def results():
    """census(stage, config) for every stage at both configs, keyed (stage, 'seed' | 'full')."""
    return {(s, c): census(s, cfg) for c, cfg in CONFIGS.items() for s in STAGES}


def _register_budgets(r) -> set[int]:
    return {int(x) for x in re.findall(r"setmaxnreg\.\w+\.sync\.aligned\.u32\s+(\d+)", r.ptx)}


def _inner_math_loop(r) -> dict:
    """The innermost loop issuing wgmma (the key loop) of the first consumer partition."""
    loops = math_loops(r.loops)
    return max(loops, key=lambda lp: lp["depth"]) if len(loops) == 1 else sorted(loops, key=lambda lp: lp["depth"])[0]


def _stage5_config(cfg):
    s5 = importlib.import_module("kernels.stage5_full")
    return s5.tuned_config_for(cfg) or s5.CENSUS_CONFIG(cfg)


# ---- every stage builds, with tensor cores ----------------------------------------------------------------------

@pytest.mark.parametrize("stage,config", SUPPORTED)
def test_compiles_for_sm90_with_tensor_cores(results, stage, config):
    r = results[stage, config]
    assert r.status == "ok", r.error
    assert r.kernels and r.registers > 0 and r.shared_bytes > 0 and r.grid_programs > 0
    assert r.wgmma > 0, f"{stage}: no wgmma.mma_async in the sm_90 PTX"
    assert r.ex2 > 0  # the softmax's exponentials on the special-function unit
    # a key loop doing the math: wgmma and exp2 in every iteration
    assert math_loops(r.loops) and all(lp["ex2"] > 0 for lp in math_loops(r.loops))
    assert r.loop_bar_sync is not None and r.loop_predicates is not None
    assert r.spills_bytes == 0, f"{stage}: {r.spills_bytes} bytes of register spills"


@pytest.mark.parametrize("config", CONFIGS)
def test_baseline_has_pointer_loads_and_no_partitions(results, config):
    r = results["stage0_baseline", config]
    assert r.tma == 0 and r.mbarrier == 0 and r.setmaxnreg == 0 and r.num_warps == r.requested_warps


# ---- stage 1: producer/consumer partitions, causal included ------------------------------------------------------

@pytest.mark.parametrize("stage,config", [(s, c) for s, c in SUPPORTED if s in GLUON])
def test_gluon_stages_have_a_tma_producer_with_few_registers(results, stage, config):
    r = results[stage, config]
    assert r.tma > 0 and r.mbarrier > 0  # TMA copies complete on mbarriers
    # the producer's warp group drops to 24 registers, the consumers take 240 (12 warps x 168 at launch)
    assert r.setmaxnreg > 0 and {24, 240} <= _register_budgets(r), _register_budgets(r)
    assert r.num_warps == 12 and r.num_warps > r.requested_warps  # consumer warps + the producer's warp group


def test_stage1_builds_causal(results):
    # the tl stage 1 refused causal (Triton 3.6's automatic warp specialization miscompiled it); this one runs it
    assert results["stage1_warpspec", "seed"].status == "ok"


# ---- stage 2: fewer hand-offs per key block ---------------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS)
def test_stage2_has_fewer_handoffs_per_iteration_than_stage1(results, config):
    s1, s2 = _inner_math_loop(results["stage1_warpspec", config]), _inner_math_loop(results["stage2_reduced_sync",
                                                                                           config])
    # stage 1 waits for K and for V separately (2 mbarrier waits a key block), stage 2 for the slot (1)
    assert (s1["mbarrier_wait"], s2["mbarrier_wait"]) == (2, 1), (s1, s2)
    # and the partition barriers Gluon puts around each hand-off drop with them
    assert s2["bar_sync"] < s1["bar_sync"], (s1["bar_sync"], s2["bar_sync"])


# ---- stage 3: persistence ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage,config", [(s, c) for s, c in SUPPORTED if s in PER_TILE])
def test_one_program_per_tile_before_persistence(results, stage, config):
    assert results[stage, config].grid_programs == CONFIGS[config].tiles(BLOCK_M)  # 16 query tiles x 256 (b, h)


@pytest.mark.parametrize("stage", PERSISTENT)
@pytest.mark.parametrize("config", CONFIGS)
def test_persistent_grid_is_one_program_per_sm(results, stage, config):
    r = results[stage, config]
    assert r.grid_programs == min(CONFIGS[config].tiles(BLOCK_M), H100_SM_COUNT)
    # the key loop sits inside the loop over work items
    assert _inner_math_loop(r)["depth"] >= 2, r.loops


def test_persistent_grid_follows_sm_count(results):
    half = census("stage3_persistent", SEED, sm_count=H100_SM_COUNT // 2)
    assert half.status == "ok", half.error
    assert half.grid_programs * 2 == results["stage3_persistent", "seed"].grid_programs


# ---- stage 4: ping-pong consumers, P·V in flight --------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS)
def test_stage4_has_two_consumers_and_pv_in_flight(results, config):
    r3, r4 = results["stage3_persistent", config], results["stage4_overlap", config]
    assert len(math_loops(r3.loops)) == 1 and len(math_loops(r4.loops)) == 2  # one key loop per consumer group
    waits_1 = lambda r: len(re.findall(r"wgmma\.wait_group\.sync\.aligned\s+1;", r.ptx))  # noqa: E731
    assert waits_1(r3) == 0 and waits_1(r4) == 2  # each consumer waits for QKᵀ with P·V still in flight
    # each consumer waits for its slot and for its turn (the ping-pong barrier) in every key block
    assert all(lp["mbarrier_wait"] == 2 for lp in math_loops(r4.loops)), r4.loops


# ---- stage 5: the census config and the code agree -------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS)
def test_stage5_code_matches_its_census_config(results, config):
    cfg = CONFIGS[config]
    r, chosen = results["stage5_full", config], _stage5_config(cfg)
    meta = r.launch_meta
    assert (meta["BLOCK_M"], meta["BLOCK_N"], meta["RING"], meta["OVERLAP"], meta["MASKED_LOOP"]) == (
        chosen.BLOCK_M, chosen.BLOCK_N, chosen.ring, chosen.overlap, chosen.masked_loop), meta
    assert meta["CONSUMERS"] == chosen.consumers
    assert len(math_loops(r.loops)) == chosen.consumers
    tiles = cfg.tiles(chosen.BLOCK_M)
    assert r.grid_programs == (min(tiles, H100_SM_COUNT) if chosen.persistent else tiles)


# ---- the table ---------------------------------------------------------------------------------------------------

def test_census_frame_has_schema_columns(results):
    frame = census_frame(STAGES, [SEED, FULL], run_id="r1")  # served from the per-process cache
    assert list(frame.columns) == columns("census")
    assert "loop_bar_sync" in frame.columns and "loop_predicates" in frame.columns
    assert list(frame["impl"]) == [s for s in STAGES for _ in (SEED, FULL)]  # stage by stage
    assert (frame["run_id"] == "r1").all()
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == len(SUPPORTED) and ok["loop_bar_sync"].notna().all() and ok["loop_predicates"].notna().all()


# ---- the PTX readers -------------------------------------------------------------------------------------------

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


# An outer loop ($L__BB0_1) around an inner math loop laid out apart from it ($L__BB0_3, after the outer loop's
# back branch, as LLVM places warp-specialized partitions), an inline-asm spin loop (not a loop of its own), code
# between the inner loop's blocks that is in no loop ($L__BB0_5, run once after the outer loop), and a producer
# loop without wgmma.
_PTX = """
.visible .entry k(
)
{
\tsetp.eq.s32 %p0, %r0, 0;
\t@%p0 bra $L__BB0_6;
$L__BB0_1:
\tbar.sync 0;
\tsetp.lt.s32 %p1, %r1, %r2;
\t@%p1 bra $L__BB0_3;
$L__BB0_2:
\tsetp.ne.s32 %p2, %r3, 0;
\t@%p2 bra $L__BB0_1;
\tbra.uni $L__BB0_5;
$L__BB0_3:
\twgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%f1}, %rd2, %rd3, 1, 1, 1, 0, 1;
\tbar.sync 1, 256;
\tbra.uni $L__BB0_4;
$L__BB0_5:
\tbar.sync 2;
\tbar.sync 2;
\tbra.uni $L__BB0_7;
$L__BB0_4:
\t// begin inline asm
\t{
\twaitLoop:
\tmbarrier.try_wait.parity.shared::cta.b64 complete, [%r1], %r2;
\t@!complete bra.uni waitLoop;
\t}
\t// end inline asm
\tex2.approx.ftz.f32 %f2, %f3;
\tselp.f32 %f4, %f2, %f3, %p3;
\tsetp.lt.s32 %p4, %r4, %r5;
\t@%p4 bra $L__BB0_3;
\tbra.uni $L__BB0_2;
$L__BB0_6:
\tcp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r3], [%rd1, {%r4, %r5}], [%r6];
\tsetp.lt.s32 %p5, %r6, %r7;
\t@%p5 bra $L__BB0_6;
$L__BB0_7:
\tret;
}
"""


def test_ptx_loops_are_natural_loops():
    loops = {lp["label"]: lp for lp in ptx_loops(_PTX)}
    assert set(loops) == {"$L__BB0_1", "$L__BB0_3", "$L__BB0_6"}
    inner, outer, producer = loops["$L__BB0_3"], loops["$L__BB0_1"], loops["$L__BB0_6"]
    # the inner loop: blocks 3 and 4 (not block 5 between them), the spin loop inside block 4
    assert {k: inner[k] for k in ("bar_sync", "setp_selp", "wgmma", "ex2", "tma", "mbarrier_wait")} == {
        "bar_sync": 1, "setp_selp": 2, "wgmma": 1, "ex2": 1, "tma": 0, "mbarrier_wait": 1}
    assert inner["depth"] == 2 and inner["contains"] == []
    assert outer["contains"] == ["$L__BB0_3"] and outer["depth"] == 1
    assert outer["bar_sync"] == 2 and outer["wgmma"] == 1 and outer["setp_selp"] == 4
    assert producer["tma"] == 1 and producer["wgmma"] == 0
    assert [lp["label"] for lp in math_loops(list(loops.values()))] == ["$L__BB0_3"]
    assert math_loop_maxima(list(loops.values())) == (1, 2)
    assert math_loop_maxima([producer]) == (None, None)


def test_a_stage_without_a_launch_is_a_failed_census(monkeypatch):
    fake = types.ModuleType("kernels.fake_stage")
    fake.attention = lambda q, k, v, causal=False, sm_scale=None: q
    monkeypatch.setattr(census_mod, "stage_module", lambda impl: fake)
    r = census("fake_stage", SEED.with_(B=1, H=1))
    assert r.status == "failed" and "no Triton launch" in r.error
    assert r.row()["status"] == "failed" and r.row()["wgmma"] is None and r.row()["loop_bar_sync"] is None


# ---- a run's tuned config, and one compile per kernel ---------------------------------------------------------

def test_census_compiles_the_config_a_run_timed():
    from kernels import stage5_full

    timed = stage5_full.Config(BLOCK_M=192, ring=4, overlap=False, persistent=False)
    report = f"S=2048 D=64 causal=True dtype=float16 B*H~256: {timed} (tuned)"
    r = census("stage5_full", SEED, H100_SM_COUNT, tuned_config=report)
    assert r.status == "ok", r.error
    meta = r.launch_meta
    assert (meta["OVERLAP"], meta["CONSUMERS"], meta["RING"], meta["num_warps"]) == (False, 3, 4, 4), meta
    assert r.num_warps == 16 and r.grid_programs == SEED.tiles(192)


@pytest.mark.parametrize("D", [64, 128])
def test_stage5_compiles_fp8_with_8bit_wgmma(D):
    from kernels import stage5_full
    from kernels.workload import AttentionConfig

    cfg = stage5_full.Config(overlap=False)
    config = AttentionConfig(B=2, H=4, S=1000, D=D, causal=True, dtype="fp8")
    r = census("stage5_full", config, H100_SM_COUNT, tuned_config=f"S=1000 D={D}: {cfg} (tuned)")
    assert r.status == "ok", r.error
    assert r.wgmma and r.setmaxnreg and r.tma and r.spills_bytes == 0
    ptx = sm90.compile_launch(sm90.capture(sm90.stage_module("stage5_full"), config,
                                                        H100_SM_COUNT, f"S=1000 D={D}: {cfg} (tuned)")[0])[0]
    assert ".e4m3.e4m3" in ptx.asm["ptx"]  # the 8-bit wgmma, not an upcast


@pytest.mark.parametrize("stage", ["stage3_persistent", "stage4_overlap", "stage5_full"])
def test_batch_size_does_not_make_another_kernel(stage):
    """B and H are not specialized on (do_not_specialize): B = 1, 8 and 32 compile to one kernel, so a suite's
    batch sweep compiles (and stage 5 tunes) once per kernel config."""

    hashes = set()
    for B in (1, 8, 32):
        launches = sm90.capture(sm90.stage_module(stage), SEED.with_(B=B), H100_SM_COUNT)
        compiled, _ = sm90.compile_launch(launches[-1])
        hashes.add(compiled.hash)
    assert len(hashes) == 1, hashes
