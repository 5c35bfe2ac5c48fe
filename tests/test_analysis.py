"""Analysis on runs: figures checked against values computed by hand from the run's own tables.

The synthetic run (tests/synthetic_run.py) has round numbers so that the hand computations below are short.
`test_bundled_run_*` repeat the hand computation on every run bundled with the package (the real H100 run once
it is committed), straight from its raw tables.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from kernels.suites import SEED
from perfmodel.errors import UserError
from perfmodel.reports import analysis, limits
from perfmodel.runs import bundled_run_dirs, default_run_dir, gpu_name, load_run
from synthetic_run import SECOND, SEED_TIME_MS, make_run, synthetic_run_dir  # noqa: F401 (fixture)

SEED_FLOPS = 4 * 16 * 16 * 2048**2 * 64 / 2  # causal halved


@pytest.fixture(scope="module")
def run(synthetic_run_dir):
    return load_run(synthetic_run_dir)


@pytest.fixture(scope="module")
def stages(run):
    return analysis.stage_table(run)


def test_stage_table_measured_tflops_by_hand(stages):
    s0 = stages[(stages.config_id == SEED.id) & (stages.impl == "stage0_baseline")].iloc[0]
    assert s0.measured_tflops == pytest.approx(SEED_FLOPS / 0.50e-3 / 1e12)
    assert len(stages) == 12  # 6 stages x 2 configs
    assert set(stages.config_id) == {SEED.id, SECOND.id}


def test_stage_table_relative_band_is_calibrated_on_stage0(stages):
    seed = stages[stages.config_id == SEED.id].set_index("impl")
    base = seed.loc["stage0_baseline", "measured_tflops"]
    assert seed.loc["stage0_baseline", "einstein_rel_low_tflops"] == pytest.approx(base)
    assert seed.loc["stage0_baseline", "einstein_rel_high_tflops"] == pytest.approx(base)
    # stage 2 removes #3 (sync, +2-3% claimed): the band is the baseline times 1.02..1.03
    assert seed.loc["stage2_reduced_sync", "einstein_rel_low_tflops"] == pytest.approx(base * 1.02)
    assert seed.loc["stage2_reduced_sync", "einstein_rel_high_tflops"] == pytest.approx(base * 1.03)


def test_stage_table_errors_are_measured_over_predicted_minus_one(stages):
    s5 = stages[(stages.config_id == SEED.id) & (stages.impl == "stage5_full")].iloc[0]
    assert (s5.einstein_abs_low_tflops, s5.einstein_abs_high_tflops) == (210.0, 260.0)
    assert s5.einstein_abs_err == pytest.approx(s5.measured_tflops / 235.0 - 1)
    assert s5.einstein_abs_in_band is not None and not s5.einstein_abs_in_band  # measured 362 > 260
    assert s5.bound_err == pytest.approx(s5.measured_tflops / s5.bound_tflops - 1)
    s1 = stages[(stages.config_id == SEED.id) & (stages.impl == "stage1_warpspec")].iloc[0]
    assert math.isnan(s1.einstein_abs_err)  # the plan gives stage 1 no target ("Any")


def test_stage_table_uses_the_runs_measured_ceilings(stages):
    assert "measured" in stages.bound_gpu.iloc[0]
    # the run measured 700 TFLOP/s of fp16 MMA: no bound may exceed it
    assert (stages.roofline_tflops <= 700.0 + 1e-6).all()
    assert (stages.bound_tflops <= stages.roofline_tflops + 1e-6).all()


def test_constraint_table_by_hand(run):
    c = limits.constraint_table(run)
    seed = c[c.config_id == SEED.id].set_index("constraint")
    # #3 sync: stage2 vs stage1 = 0.50/0.48; stage1's barrier+membar = (2.0+0.5)/10 of its stall cycles
    assert seed.loc[3, "measured_gain"] == pytest.approx(0.50 / 0.48 - 1)
    assert seed.loc[3, "attributable_fraction"] == pytest.approx(0.25)
    assert seed.loc[3, "amdahl_max_gain"] == pytest.approx(1 / 0.75 - 1)
    # #4 memory: stage4 vs stage3 = 0.45/0.40; stage3's long_scoreboard 3/10 (no lg_throttle)
    assert seed.loc[4, "measured_gain"] == pytest.approx(0.45 / 0.40 - 1)
    assert seed.loc[4, "attributable_fraction"] == pytest.approx(0.30)
    # #2 launch (time-based): stage2's launch share 20 us / 480 us, wave tail (4 - 3.5) / 4
    share, tail = 20 / 480, 0.5 / 4
    assert seed.loc[2, "attributable_fraction"] == pytest.approx((share + tail) / (1 + share))
    # #1 branching: stage4 has no branch_resolving stalls -> bound 0; the measured +5% came from elsewhere
    assert seed.loc[1, "amdahl_max_gain"] == pytest.approx(0.0)
    assert "elsewhere" in seed.loc[1, "verdict"]
    assert "claim exceeds the Amdahl bound" in seed.loc[2, "verdict"]  # claims +30%, bound +19%
    # the second config has timings but no counters: gains measured, bounds not
    second = c[c.config_id == SECOND.id]
    assert second.measured_gain.notna().all() and second.amdahl_max_gain.isna().all()


def test_stall_table_fractions(run):
    s = limits.stall_table(run)
    sums = s.groupby(["impl", "config_id"]).fraction.sum()
    assert sums.to_numpy() == pytest.approx(1.0)
    row = s[(s.impl == "stage0_baseline") & (s.reason == "long_scoreboard")].iloc[0]
    assert row.fraction == pytest.approx(4.0 / 10.0) and row.constraint == 4


def test_roofline_ceilings_by_hand(run):
    r = limits.roofline_table(run)
    seed = r[(r.config_id == SEED.id) & (r.impl == "stage0_baseline")].iloc[0]
    assert seed.arithmetic_intensity == pytest.approx(2048 / 4)  # causal: (4BHS²D/2) / (8BHSD bytes) = S/4
    assert seed.exp_ceiling_tflops == pytest.approx(4.16 * 4 * 64)  # exp rate x 4·D FLOPs per exponential
    assert seed.memory_ceiling_tflops == pytest.approx(3.0 * 512)
    assert seed.tensor_tflops == pytest.approx(700.0) and seed.limiter == "tensor"
    assert seed.measured_ai == pytest.approx(SEED_FLOPS / 4.0e7)
    assert set(r.kind) == {"stage", "peer"}


def test_batching_summary(run):
    b = analysis.batching_summary(run).set_index("impl")
    assert b.loc["stage3_persistent", "speedup"] == pytest.approx(0.045 / 0.026)
    meets = b.loc["stage3_persistent", "meets"]
    assert meets is not None and not meets


def test_headlines_name_best_stage_and_peer(run, stages):
    lines = analysis.headlines(stages, analysis.peer_table(run), limits.constraint_table(run))
    assert any("stage5_full" in h and "sdpa_cudnn" in h for h in lines)


def test_run_without_timings_keeps_predictions_and_says_not_measured(tmp_path):
    from runstore.writer import RunWriter
    from synthetic_run import timing_row

    w = RunWriter(tmp_path / "interp", {"environment": {"gpu_name": None}})
    rows = [dict(timing_row(impl, SEED, 1.0), status="not_measured", time_ms=None, tflops=None)
            for impl in SEED_TIME_MS]
    w.append("timings", rows)
    w.finish("complete")
    run = load_run(tmp_path / "interp")
    st = analysis.stage_table(run)
    assert st.measured_tflops.isna().all() and st.einstein_rel_low_tflops.isna().all()
    assert st.einstein_abs_low_tflops.notna().sum() == 5  # every stage but stage 1 has a target
    assert "h100-sxm datasheet" in st.bound_gpu.iloc[0]
    assert "No stage was timed" in analysis.headlines(st, analysis.peer_table(run),
                                                      limits.constraint_table(run))[0]
    assert limits.stall_table(run).empty and limits.roofline_table(run).empty


def test_load_run_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        load_run(bad)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a run folder"):
        load_run(tmp_path / "file")


def test_default_run_is_bundled_or_a_clear_error():
    if bundled_run_dirs():
        assert (default_run_dir() / "run.json").is_file()
    else:
        with pytest.raises(UserError, match="none is bundled"):
            default_run_dir()


@pytest.mark.parametrize("run_dir", bundled_run_dirs(), ids=lambda p: p.name)
def test_bundled_run_figures_match_its_tables(run_dir):
    """On a real run: every stage's TFLOP/s is FLOPs / median time of its raw timings row, and every measured
    constraint gain is the ratio of the two stages' raw TFLOP/s."""
    from kernels.workload import AttentionConfig

    run = load_run(run_dir)
    assert gpu_name(run)
    raw = run.table("timings")
    raw = raw[raw.status == "ok"].set_index(["impl", "config_id"])
    st = analysis.stage_table(run).dropna(subset=["measured_tflops"])
    assert not st.empty
    for r in st.itertuples():
        cfg = AttentionConfig(int(r.B), int(r.H), int(r.S), int(r.D), bool(r.causal), r.dtype)
        t_ms = float(raw.loc[(r.impl, r.config_id), "time_ms"])
        assert r.measured_tflops == pytest.approx(cfg.flops / (t_ms * 1e-3) / 1e12, rel=1e-3)
    c = limits.constraint_table(run).dropna(subset=["measured_gain"])
    for r in c.itertuples():
        ratio = raw.loc[(r.removed_by, r.config_id), "tflops"] / raw.loc[(r.before, r.config_id), "tflops"]
        assert r.measured_gain == pytest.approx(ratio - 1, rel=1e-6)
    json.loads((run_dir / "run.json").read_text())
