"""Model v4's terms (perfmodel/model/predictive.py, docs/model-v4.md), each on inputs worked out by hand: the work-item
order the kernels use (kernels/schedule.py, the host mirror of kernels/_gluon.py `work_item`) and the busiest
program of the static schedule, the producer's TMA rate and Q load from the micro-benchmarks and the Q ring, the
SASS control words' stall clocks in the replay, and a stored prediction of an older version scored as computed now."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kernels.hardware import get_gpu
from kernels.schedule import item_tiles, l2_budget, l2_group_heads
from kernels.workload import parse_config
from perfmodel.model import critical_path as cp, predictive, score_sources
from perfmodel.model.instruction_mix import key_blocks

ROOT = Path(__file__).resolve().parents[1]
NS = 1e-9
SEED = parse_config("B=16,H=16,S=2048,D=64,causal")


# ---- the schedule ------------------------------------------------------------------------------------------------
def test_items_come_in_l2_sections_heaviest_tile_first():
    # 3 query tiles, B*H = 5 heads in sections of 2: tile 2 of heads 0-1, tile 1, tile 0, then heads 2-3, then 4
    assert item_tiles(3, 1, 5, 2, causal=True) == [2, 2, 1, 1, 0, 0, 2, 2, 1, 1, 0, 0, 2, 1, 0]
    assert item_tiles(3, 1, 5, 2, causal=False) == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 0, 1, 2]
    # every (tile, head) once: each tile B*H times
    assert sorted(item_tiles(16, 16, 16, 60, True)) == sorted(list(range(16)) * 256)


def test_the_launchers_l2_group_is_the_schedules():
    launch = pytest.importorskip("kernels._launch")
    h100 = get_gpu("h100-sxm")
    assert launch.l2_group(16, 16, 2048, 64, 2) == l2_group_heads(16, 16, 2048, 64, 2, l2_budget(h100.l2_bytes))
    # the H200's 60 MiB L2 holds 60 heads of K and V at S=2048 D=64 fp16 in half of it (0.5 MiB a head)
    assert l2_group_heads(16, 16, 2048, 64, 2, l2_budget(get_gpu("h200-sxm").l2_bytes)) == 60


def _mix(persistent: bool, l2_sections: bool, grid: int, dynamic: bool = False):
    units = key_blocks(SEED, 128, 128)
    return SimpleNamespace(iterations=units, config=SEED, l2_sections=l2_sections, persistent=persistent,
                           grid_programs=grid, dynamic_schedule=dynamic)


def test_the_busiest_program_of_the_static_schedule_is_the_kernels():
    h200 = get_gpu("h200-sxm")
    mix = _mix(persistent=True, l2_sections=True, grid=132)
    # by hand: program p sums the key blocks of items p, p + 132, ... in item_tiles' order (sections of 60 heads)
    units = np.array(key_blocks(SEED, 128, 128))[item_tiles(16, 16, 16, 60, True)]
    loads = np.zeros(132)
    np.add.at(loads, np.arange(units.size) % 132, units)
    assert predictive._makespan(mix, 132, h200) == loads.max()
    # 4.3% above the mean at the seed (the issue measured 4.4%); the global heaviest-first order v3 assumed: 3.1%
    assert loads.max() / loads.mean() == pytest.approx(1.0426, abs=1e-3)


def test_a_non_persistent_grid_starts_its_programs_in_the_kernels_order():
    h200 = get_gpu("h200-sxm")
    heavy_first = predictive._makespan(_mix(False, True, 4096), 132, h200)
    tile_order = predictive._makespan(_mix(False, False, 4096), 132, h200)  # tiles then heads: light first
    assert heavy_first < tile_order


def test_a_dynamic_schedule_is_list_scheduled_on_its_programs_in_the_kernels_order():
    """Stage 5's `dynamic` switch: each program takes the next item when it frees, so the tail is list scheduling's
    (the greedy finish of the kernel's heaviest-first order), never above the static stride's busiest program."""
    h200 = get_gpu("h200-sxm")
    static = predictive._makespan(_mix(True, True, 132), 132, h200)
    dynamic = predictive._makespan(_mix(True, True, 132, dynamic=True), 132, h200)
    units = np.array(key_blocks(SEED, 128, 128))[item_tiles(16, 16, 16, 60, True)]
    free = np.zeros(132)
    for u in units:  # by hand: the next item to the program that frees first
        free[free.argmin()] += u
    assert dynamic == free.max() and dynamic <= static
    assert dynamic / (units.sum() / 132) < 1.01  # the seed's 4.3% static imbalance all but gone


# ---- the producer ------------------------------------------------------------------------------------------------
def _producer_mix(persistent: bool, q_ring: int | None, specialized: bool = True):
    meta = {} if q_ring is None else {"Q_RING": q_ring}
    return SimpleNamespace(warp_specialized=specialized, block_n=128, persistent=persistent, launch_meta=meta)


def test_the_producer_moves_k_and_v_at_the_measured_tma_rate_and_q_waits_its_latency():
    gpu = get_gpu("h200-sxm").with_micro({"tma_l2_tbps": 13.2, "tma_latency_ns": 300.0}, "a test")
    per_iteration, q_wait = predictive._producer(_producer_mix(True, None), gpu, SEED)
    # 2 x 128 x 64 x 2 bytes at 13.2 TB/s over 132 SMs (0.1 TB/s an SM)
    assert per_iteration == pytest.approx(32768 / 1e11)
    assert q_wait == pytest.approx(300 * NS)  # one Q buffer: loaded only once the consumer released it
    assert predictive._producer(_producer_mix(False, 2), gpu, SEED)[1] == pytest.approx(300 * NS)  # fresh program
    assert predictive._producer(_producer_mix(True, 2), gpu, SEED)[1] == 0.0  # a second Q buffer: loaded ahead
    assert predictive._producer(_producer_mix(True, 1, specialized=False), gpu, SEED) == (0.0, None)
    assert predictive._producer(_producer_mix(True, 1), get_gpu("h200-sxm"), SEED) == (0.0, None)  # not measured


# ---- SASS: the control words' stall clocks -------------------------------------------------------------------------
def _lat() -> cp.Latencies:
    return cp.Latencies(clock_hz=1e9, alu_s=4 * NS, ex2_s=20 * NS, xbar_s=30 * NS, bar_sync_s=15 * NS,
                        mbarrier_wait_s=10 * NS, mufu_clocks=8, smem_bytes_per_clock=32,
                        wgmma_group_s=lambda kind, n, k, flops: (200 * NS, 100 * NS))


def test_a_sass_node_holds_its_warp_for_its_stall_clocks():
    independent = tuple((cp.ALU, (f"R{i}",), ("R100",), None) for i in range(8))
    assert cp.iteration_seconds(independent, _lat()) == pytest.approx(8 * NS)  # PTX: one a clock
    held = tuple(node + (2,) for node in independent)  # stall 2 in each control word
    assert cp.iteration_seconds(held, _lat()) == pytest.approx(16 * NS)
    # two warps on the partition fill each other's stall clocks: the issue port, not the stalls, sets the time
    assert cp.partition_seconds([(held, 0), (held, 1)], _lat()) == pytest.approx(16 * NS)
    # a COMMIT node of no clocks (after the HGMMA closing a group) takes no issue slot
    with_commit = held + ((cp.COMMIT, (), (), None, 0),)
    assert cp.iteration_seconds(with_commit, _lat()) == pytest.approx(16 * NS)


# ---- scoring: an older version's stored predictions -------------------------------------------------------------
def test_stored_v3_predictions_are_not_scored_as_todays_model():
    from perfmodel.runs import load_run

    run = load_run(ROOT / "runs" / "20261202-060607-seed-nvidia-h200")
    stored, how = score_sources.stored_predictions(run)
    assert predictive.MODEL_VERSION == 4
    assert stored == {} and how == "computed now (stored by model v3; today's is v4)"
