"""Figures from a timeline (collectors/timeline/figures.py), on the SYNTHETIC fixture (tests/timeline_fixture.py) whose
schedule makes every figure computable by hand, and on small timelines built here.

The fixture, per work item (cycles from consumer 0's first K/V wait t0; consumer 1 runs 100 cycles later; a
steady-state block lasts 200): consumer 0's softmax of block b >= 1 is [200b + 70, 200b + 150) and consumer 1 has
wgmma work in flight from its mma_issue to its P·V wait, [200b + 120, 200b + 260); block 0's softmax [70, 150)
meets consumer 1's first QKᵀ [120, 170). So 30 of every 80 softmax cycles run under the other's wgmma: 0.375.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from collectors.timeline.figures import (FIGURE_COLUMNS, OVERHEAD_LIMIT_PCT, _overlap, _union, figures, overhead_pct,
                                         overhead_refusal, phase_kind)
from collectors.timeline.read import TIMELINE_COLUMNS, read_timeline
from tests import timeline_fixture as fx


@pytest.fixture(scope="module")
def figs():
    return figures(read_timeline(fx.FIXTURE, fx.LAYOUT))


def _get(f, figure, partition, phase=""):
    row = f[(f["figure"] == figure) & (f["partition"] == partition) & (f["phase"] == phase)]
    assert len(row) == 1, (figure, partition, phase)
    return row.iloc[0]


def test_columns(figs):
    assert list(figs.columns) == FIGURE_COLUMNS
    assert set(figs["partition"]) == {"consumer0", "consumer1", "producer0"}


def test_time_shares_by_hand(figs):
    # a consumer warp's span: first q_wait (t0 - 10) to the last epilogue's end (t0 + 1000 + 680): 1690 cycles;
    # waits per item: q_wait 8 + three blocks of kv_wait 10 and turn_wait 10 = 68; wgmma per item: block 0's qk 50,
    # two blocks of mma_issue 10 + qk 40 + pv 10, the last pv 30 = 200
    for c in ("consumer0", "consumer1"):
        wait = _get(figs, "time_share", c, "wait")
        assert wait["median"] == pytest.approx(2 * 68 / 1690) and wait["n"] == 2  # one sample per program
        assert _get(figs, "time_share", c, "mma")["median"] == pytest.approx(2 * 200 / 1690)
        assert _get(figs, "busy_share", c)["median"] == pytest.approx(1 - 2 * 68 / 1690)
    # the producer: span t0 - 150 to t0 + 1370 (1520 cycles), waits 2 x (5 + 5 + 3 x 10), TMA issue 2 x (20 + 90)
    assert _get(figs, "time_share", "producer0", "wait")["median"] == pytest.approx(80 / 1520)
    assert _get(figs, "time_share", "producer0", "issue")["median"] == pytest.approx(220 / 1520)
    assert not ((figs["partition"] == "producer0") & (figs["phase"] == "mma")).any()
    # the kinds of a sample add up to the whole span
    shares = figs[(figs["figure"] == "time_share")].groupby("partition")["median"].sum()
    assert shares.to_numpy() == pytest.approx(np.ones(3))


def test_time_shares_against_a_direct_sum():
    """The same shares summed straight from the schedule, program by program."""
    f = figures(read_timeline(fx.FIXTURE, fx.LAYOUT))
    for warp, label in ((0, "consumer0"), (4, "consumer1"), (8, "producer0")):
        shares = []
        for program, *_ in fx.PROGRAMS:
            mine = [s for s in fx.SCHEDULE if s.program == program and s.warp == warp and not s.scope.endswith("tile")]
            span = max(s.end_cycle for s in mine) - min(s.start_cycle for s in mine)
            shares.append(sum(s.end_cycle - s.start_cycle for s in mine if s.scope.endswith("_wait")) / span)
        assert _get(f, "time_share", label, "wait")["median"] == pytest.approx(np.median(shares))


def test_phase_and_iteration_cycles_by_hand(figs):
    c = "consumer0"
    assert _get(figs, "phase_cycles", c, "softmax")["median"] == 80  # 3 x 80 over 3 iterations
    assert _get(figs, "phase_cycles", c, "qk")["median"] == pytest.approx((50 + 40 + 40) / 3)
    assert _get(figs, "phase_cycles", c, "pv")["median"] == pytest.approx((10 + 10 + 30) / 3)
    assert _get(figs, "phase_cycles", c, "epilogue")["median"] == 60  # per work item
    assert _get(figs, "phase_cycles", "producer0", "kv_issue")["median"] == 30
    # first K/V wait at t0 to the last P·V's end at t0 + 610, over 3 iterations
    assert _get(figs, "iteration_cycles", c)["median"] == pytest.approx(610 / 3)
    # the producer: first slot wait t0 - 80 to the last issue's end t0 + 370
    assert _get(figs, "iteration_cycles", "producer0")["median"] == 150
    assert _get(figs, "phase_cycles", c, "softmax")["n"] == 4  # 2 programs x 2 work items


def test_load_hiding_by_hand(figs):
    # consumer 0: from issue to release 50, 40, 40 cycles, of which it waited 10 each (its whole kv_wait)
    assert _get(figs, "load_hidden_share", "consumer0")["median"] == pytest.approx(1 - 30 / 130)
    # consumer 1 waits for the same loads 100 cycles later: 150, 140, 140
    assert _get(figs, "load_hidden_share", "consumer1")["median"] == pytest.approx(1 - 30 / 430)
    # consumer 0's windows [t0-40, t0+10), [t0+170, t0+210), [t0+370, t0+410): only the last meets wgmma work
    # (consumer 1's block 1, in flight [t0+320, t0+460)), 40 cycles
    assert _get(figs, "load_under_mma_share", "consumer0")["median"] == pytest.approx(40 / 130)
    # consumer 1's: [t0-40, t0+110) meets consumer 0's first QKᵀ [t0+20, t0+70): 50; [t0+170, t0+310) consumer 0's
    # block 1 [t0+220, t0+360): 90; [t0+370, t0+510) lies inside consumer 1's own [t0+320, t0+460) and consumer 0's
    # [t0+420, t0+560): 140
    assert _get(figs, "load_under_mma_share", "consumer1")["median"] == pytest.approx(280 / 430)


def test_pingpong_by_hand(figs):
    for c in ("consumer0", "consumer1"):
        row = _get(figs, "pingpong_share", c, "softmax")
        assert row["median"] == pytest.approx(90 / 240) and row["n"] == 4


# ---- small timelines -------------------------------------------------------------------------------------------
def _timeline(rows) -> pd.DataFrame:
    """A timeline of (program, warp, partition, scope, start, end, item, iteration) rows."""
    t = pd.DataFrame(rows, columns=["program", "warp", "partition", "scope", "start_cycle", "end_cycle", "item",
                                    "iteration"])
    t["kernel"], t["sm"], t["warp_group"] = "k", t["program"], t["warp"] // 4
    t["role"] = t["scope"].str.partition(".")[0]
    t["program_start_ns"], t["finalize_ns"], t["lane"] = 0, 0, 1
    for c in ("partition", "item", "iteration"):
        t[c] = t[c].astype("Int64")
    return t[TIMELINE_COLUMNS]


def test_one_consumer_partition_has_no_pingpong():
    """Stages 1-3: two warp groups of one 8-warp consumer are not two ping-pong partners."""
    t = _timeline([(0, 0, 0, "consumer.kv_wait", 0, 10, 0, 0), (0, 0, 0, "consumer.softmax", 10, 50, 0, 0),
                   (0, 4, 0, "consumer.kv_wait", 0, 10, 0, 0), (0, 4, 0, "consumer.qk", 10, 50, 0, 0)])
    f = figures(t)
    assert not (f["figure"] == "pingpong_share").any()
    assert set(f["partition"]) == {"consumer0"}
    assert _get(f, "time_share", "consumer0", "wait")["n"] == 2  # each recorded warp is a sample


def test_without_partitions_the_warp_groups_are_partitions():
    t = _timeline([(0, 0, None, "consumer.softmax", 0, 40, 0, 0), (0, 4, None, "consumer.qk", 20, 60, 0, 0)])
    f = figures(t)
    assert _get(f, "pingpong_share", "consumer0", "softmax")["median"] == pytest.approx(0.5)


def test_stage1_loads_pair_k_and_v():
    """K and V handed over apart: k_issue pairs with k_wait, v_issue with v_wait."""
    t = _timeline([(0, 8, 1, "producer.k_issue", 0, 10, 0, 0), (0, 8, 1, "producer.v_issue", 20, 30, 0, 0),
                   (0, 0, 0, "consumer.k_wait", 5, 15, 0, 0), (0, 0, 0, "consumer.qk", 15, 40, 0, 0),
                   (0, 0, 0, "consumer.v_wait", 40, 45, 0, 0)])
    f = figures(t)
    # K: issued by 10, released at 15 after waiting from 10 (5 of 5 exposed); V: issued by 30, released at 45,
    # waited 40-45 (5 of 15): hidden = 1 - 10 / 20
    assert _get(f, "load_hidden_share", "consumer0")["median"] == pytest.approx(0.5)
    # the V window [30, 45) meets the qk wgmma [15, 40) for 10 cycles, the K window [10, 15) none
    assert _get(f, "load_under_mma_share", "consumer0")["median"] == pytest.approx(10 / 20)


def test_empty_timeline():
    assert list(figures(pd.DataFrame(columns=TIMELINE_COLUMNS)).columns) == FIGURE_COLUMNS


def test_phase_kinds():
    assert [phase_kind(p) for p in ("kv_wait", "qk", "kv_issue", "softmax", "slot_wait", "my_phase", "tile")] == \
        ["wait", "mma", "issue", "compute", "wait", "compute", "container"]


def test_interval_union_and_overlap():
    us, ue = _union([10, 0, 5, 30, 30], [20, 6, 8, 40, 30])  # [0,6)+[5,8) merge; the empty [30,30) goes
    assert us.tolist() == [0, 10, 30] and ue.tolist() == [8, 20, 40]
    assert _overlap([0, 7, 15, 45], [10, 12, 35, 50], us, ue).tolist() == [8, 3, 10, 0]
    assert _overlap([1], [2], *_union([], [])).tolist() == [0]


# ---- the overhead verdict --------------------------------------------------------------------------------------
def test_overhead_and_refusal():
    assert overhead_pct(2.0, 2.1) == pytest.approx(5.0)
    assert overhead_refusal(overhead_pct(2.0, 2.1)) is None
    assert overhead_refusal(OVERHEAD_LIMIT_PCT) is None
    reason = overhead_refusal(overhead_pct(2.0, 2.3))
    assert reason.startswith("the instrumented kernel took 15.0% longer") and reason.endswith(".")
    assert "could not be measured" in overhead_refusal(math.nan)
    with pytest.raises(ValueError):
        overhead_pct(0.0, 1.0)
