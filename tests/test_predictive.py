"""The predictive model v1 (perfmodel/model/predictive.py) and the instruction mix it reads
(perfmodel/model/instruction_mix.py): counts of real compiled kernels checked by hand, the combination rules on a small
synthetic mix, and the model's honesty (it never sees a timing)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from kernels.hardware import get_gpu
from kernels.suites import SEED
from kernels.workload import AttentionConfig
from perfmodel.model import predictive, predictors, score_sources, scoring
from perfmodel.model.instruction_mix import InstructionMix, KernelMix, LoopMix, instruction_mix, key_blocks
from perfmodel.runs import load_run
from module_imports import imported_modules, names_used

ROOT = Path(__file__).resolve().parents[1]
H200_RUN = ROOT / "runs" / "20261202-031456-seed-nvidia-h200"


# ---- the instruction mix of committed stages at the seed config (B16 H16 S2048 D64 causal fp16) -----------------
def test_stage0_mix_by_hand():
    mix = instruction_mix("stage0_baseline", SEED)
    (loop,) = mix.kernel.math_loops
    # one key block of a 128 x 64 tile at D=64 by one warp group (4 warps): QKᵀ is 2 m-halves x 4 k-steps of
    # m64n64k16, P·V the same: 16 wgmma of 2·64·64·16 FLOPs = the tile's 4·128·64·64
    assert loop.wgmma_shapes == {"m64n64k16": 16} and loop.wgmma_flops == 4 * 128 * 64 * 64
    assert mix.warpgroups_per_loop == 1
    # 128 x 64 scores over 128 threads = 64 exps a thread, plus one rescale exp per row a thread holds (4 rows)
    assert loop.ex2 == 64 + 4
    # QKᵀ reads Q and K from shared memory (A and B: 2 KiB + 2 KiB each), P·V has P in registers (B only)
    assert loop.wgmma_smem_bytes == 8 * (2048 + 2048) + 8 * 2048
    assert loop.wgmma_waits == (0,) and loop.overlap_flops == 0  # synchronous: the softmax waits for the MMAs
    assert loop.bar_threads == (0,)  # CTA-wide barriers, no partitions
    assert mix.kernel.producer_loops == 0 and not mix.warp_specialized
    # 252 registers x 128 threads -> 2 programs by registers; 66.5 KB of shared memory -> 3: 2 per SM, 8 of 64 warps
    assert mix.kernel.registers == 252 and mix.programs_per_sm == 2 and mix.occupancy == pytest.approx(0.125)
    assert (mix.block_m, mix.block_n) == (128, 64) and not mix.persistent
    assert mix.grid_programs == mix.work_items == 16 * 16 * 2048 // 128
    assert mix.iterations == tuple(2 * (i + 1) for i in range(16))  # causal: up to the diagonal block
    row = mix.summary()
    assert row["loop_ex2"] == 68 and row["iterations_total"] == 16 * 16 * sum(mix.iterations)


def test_stage4_mix_by_hand():
    mix = instruction_mix("stage4_overlap", SEED)
    loops = mix.kernel.math_loops
    assert len(loops) == 2  # one key loop per ping-pong consumer
    for loop in loops:
        # 64 rows of a consumer, 128 keys: QKᵀ 4 x m64n128k16 (k-steps of D=64), P·V 8 x m64n64k16 (k-steps of 128)
        assert loop.wgmma_shapes == {"m64n128k16": 4, "m64n64k16": 8}
        assert loop.wgmma_flops == 2 * 64 * 128 * 64 * 2
        assert loop.ex2 == 64 * 128 // 128 + 2  # 64 exps a thread, one rescale per row it holds (2)
        # wait(1) leaves P·V (its own commit group, committed last) in flight during the softmax
        assert loop.wgmma_waits == (0, 1) and loop.overlap_flops == 2 * 64 * 64 * 128
        assert loop.bar_threads == (128,)  # barriers of one warp group only: the consumers are independent
        assert loop.mbarrier_wait == 2
    assert mix.warpgroups_per_loop == 1 and mix.warp_specialized
    assert mix.kernel.num_warps == 12 and mix.programs_per_sm == 1
    assert mix.persistent and mix.grid_programs == 132 and mix.waves == pytest.approx(1.0)


def test_the_mix_is_cached_per_kernel():
    # B and S are runtime arguments: another batch compiles to the same kernel and shares its mix
    a = instruction_mix("stage4_overlap", SEED)
    b = instruction_mix("stage4_overlap", dataclasses.replace(SEED, B=2))
    assert a.kernel is b.kernel and b.work_items == a.work_items // 8


def test_key_blocks():
    cfg = AttentionConfig(B=1, H=1, S=300, D=64, causal=True, dtype="fp16")
    assert key_blocks(cfg, 128, 64) == (2, 4, 5)  # 128 -> 2 blocks, 256 -> 4, 300 (tail) -> ceil(300/64) = 5
    assert key_blocks(dataclasses.replace(cfg, causal=False), 128, 64) == (5, 5, 5)


# ---- the combination rules on a synthetic mix ----------------------------------------------------------------
def _loop(**kw) -> LoopMix:
    base = dict(kernel="k", label="L", wgmma=1, wgmma_shapes={}, wgmma_flops=0, wgmma_smem_bytes=0, overlap_flops=0,
                wgmma_waits=(0,), ex2=0, fp=0, cvt=0, predicate=0, int_alu=0, shfl=0, smem_loads=0, smem_stores=0,
                smem_bytes=0, global_mem=0, bar_sync=0, bar_threads=(), mbarrier_wait=0, mbarrier_arrive=0,
                instructions=0)
    base.update(kw)
    return LoopMix(**base)


def _mix(loops, warpgroups=1.0, programs_per_sm=1) -> InstructionMix:
    kernel = KernelMix(name="k", hash="h", math_loops=tuple(loops), producer_loops=0, setmaxnreg=(), registers=128,
                       spills_bytes=0, shared_bytes=0, num_warps=4)
    cfg = AttentionConfig(B=1, H=1, S=128, D=64, causal=False, dtype="fp16")
    return InstructionMix(impl="stage0_baseline", config=cfg, kernel=kernel, launch_meta={}, block_m=128,
                          block_n=128, programs_per_sm=programs_per_sm, occupancy=0.0, grid_programs=132,
                          work_items=1, iterations=(1,), persistent=False, items_per_program=1.0, waves=1.0,
                          warpgroups_per_loop=warpgroups, sm_count=132)


# a GPU whose per-SM rates are round numbers: 1 GHz, 1000 FLOP/ns of tensor, 16 ex2/ns, 4 schedulers, 128 B/ns
TOY = dataclasses.replace(get_gpu("h100-sxm"), sm_count=1, boost_clock_mhz=1000.0, fp16_tflops=1.0,
                          exp_tops=0.016)


def test_serialized_group_adds_matmul_and_softmax():
    # 1 warp group: mma 1000 ns; softmax = max(issue 500 instr on its own schedulers = 500 ns, 8 ex2 x 128 / 16 = 64)
    (g,) = predictive._per_program_groups(_mix([_loop(wgmma_flops=1_000_000, instructions=500, ex2=8)]), TOY,
                                          _mix([]).config)
    assert g["tensor"] == pytest.approx(1e-6) and g["mufu"] == pytest.approx(64e-9)
    assert g["issue"] == pytest.approx(500 * 4 / 4 * 1e-9)
    assert g["chain"] == pytest.approx(1e-6 + 500e-9)  # no async wait: the softmax follows the matmuls


def test_async_wait_overlaps_part_of_the_matmul():
    loop = _loop(wgmma_flops=1_000_000, overlap_flops=400_000, instructions=500)
    (g,) = predictive._per_program_groups(_mix([loop]), TOY, _mix([]).config)
    assert g["chain"] == pytest.approx(600e-9 + max(400e-9, 500e-9))


def test_lockstep_warp_groups_form_one_group_and_independent_ones_two():
    loop = _loop(wgmma_flops=1_000_000, instructions=100, bar_threads=(256,))
    (g,) = predictive._per_program_groups(_mix([loop], warpgroups=2), TOY, _mix([]).config)
    assert g["tensor"] == pytest.approx(2e-6) and g["chain"] == pytest.approx(2e-6 + 200e-9)  # 8 warps on 4 scheds
    free = dataclasses.replace(loop, bar_threads=(128,))
    gs = predictive._per_program_groups(_mix([free], warpgroups=2), TOY, _mix([]).config)
    assert len(gs) == 2 and all(x["chain"] == pytest.approx(1e-6 + 100e-9) for x in gs)


# ---- honesty: the model never sees a timing -------------------------------------------------------------------
def test_model_predictions_do_not_move_when_the_timings_do():
    source = score_sources.run_source(load_run(H200_RUN))
    slower = dataclasses.replace(source, measurements=source.measurements.assign(
        time_ms=source.measurements["time_ms"] * 3.0))
    model = {"model": predictors.PREDICTORS["model"]}
    a, b = scoring.score_cases([source], model), scoring.score_cases([slower], model)
    assert len(a) == 6 and a["model_ms"].notna().all()
    pd.testing.assert_series_equal(a["model_ms"], b["model_ms"])
    assert not a["model_err"].equals(b["model_err"])


def test_the_scorer_hands_the_model_how_the_stage_was_launched(monkeypatch):
    # the run's launch table (host cost) and the row's tuned_config (the kernel a tuning stage ran), nothing timed
    seen = []
    monkeypatch.setattr(predictive, "predict_stage", lambda c, s, g, host, tuned, loops="ptx": seen.append((s, host, tuned)) or
                        type("P", (), {"time_ms": 1.0, "binding": "chain", "inputs_hash": "0" * 12, "launch_ms": 0.0})())
    source = score_sources.run_source(load_run(H200_RUN))
    scoring.score_cases([source], {"model": predictors.PREDICTORS["model"]})
    launch = load_run(H200_RUN).table("launch").set_index("impl")["host_launch_us"]
    assert [host for _, host, _ in seen] == [launch[impl] for impl in source.measurements["impl"]]
    assert any(tuned and "BLOCK_M=" in tuned for s, _, tuned in seen if s == 5)


def test_a_tuned_config_is_compiled_as_reported():
    cfg = dataclasses.replace(SEED, B=1)
    tuned = ("S=2048 D=64 causal=True dtype=float16 B*H~16: BLOCK_M=192 BLOCK_N=128 ring=3 masked_loop=False "
             "persistent=True pingpong=True overlap=True (tuned)")
    assert instruction_mix("stage5_full", cfg, tuned_config=tuned).block_m == 192
    assert instruction_mix("stage5_full", cfg).block_m == 128  # the census default: stage 4's config


def test_model_module_imports_no_timing_tables():
    imported = imported_modules(predictive.__file__)
    # the compiled code, the hardware table, the workload and the bound's HBM bytes and scheduler (perfmodel.model:
    # the bound beside it): no run store (hashlib and json: inputs_hash digests what a prediction read;
    # perfmodel.model.mix_cache: the compiled mixes; perfmodel.model.replay_cache: the partition replays kept on disk;
    # kernels.schedule: the kernels' work-item order, v4)
    assert imported <= {"__future__", "math", "re", "dataclasses", "numpy", "kernels.hardware", "kernels.workload",
                        "kernels.schedule",
                        "perfmodel.model", "perfmodel.model.instruction_mix", "perfmodel.model.critical_path",
                        "perfmodel.model.mix_cache", "perfmodel.model.replay_cache", "hashlib", "json"}, imported
    names = names_used(predictive.__file__)
    assert not {"timings", "time_ms_p20", "measured_ms", "table", "load_run"} & names


def test_the_model_constants_come_from_the_hardware_table():
    # halve every rate the model divides by: the iteration terms double
    h100 = get_gpu("h100-sxm")
    half = dataclasses.replace(h100, fp16_tflops=h100.fp16_tflops / 2, exp_tops=h100.exp_tops / 2,
                               boost_clock_mhz=h100.boost_clock_mhz / 2)
    for stage in (0, 4):
        a, b = predictive.predict_stage(SEED, stage, h100), predictive.predict_stage(SEED, stage, half)
        for term in predictive.ITERATION_TERMS:
            assert b.iteration_us[term] == pytest.approx(2 * a.iteration_us[term])


def test_terms_add_up_and_name_the_binding_term():
    h200 = get_gpu("h200-sxm")
    for stage in range(6):
        p = predictive.predict_stage(SEED, stage, h200, host_launch_us=1.0)
        t = p.terms()
        assert t["steady_ms"] + t["tail_ms"] + t["prologue_epilogue_ms"] + t["hbm_excess_ms"] + t["launch_ms"] == \
            pytest.approx(p.time_ms)
        assert p.binding in (*predictive.ITERATION_TERMS, "hbm", "launch")
    # a host launch longer than the kernel is exposed and binds
    p = predictive.predict_stage(dataclasses.replace(SEED, B=1, S=512), 4, h200, host_launch_us=226.0)
    assert p.binding == "launch" and p.time_ms == pytest.approx(0.226)
    assert math.isnan(predictive.predict_ms(SEED, 0, h200)) is False
