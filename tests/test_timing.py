"""collectors.timing.measure: the Timing summary, the L2 rotation sizing, and (on a GPU) the timers themselves."""

from __future__ import annotations

import math

import pytest
import torch

from collectors.timing import measure as timing
from collectors.timing.measure import (H100_L2_BYTES, MAX_ROTATION_SETS, STABLE_SPREAD_PCT, Timing, TimingUnavailable,
                                       inputs_for_rotation)
from kernels.suites import SUITES
from kernels.workload import AttentionConfig
from runstore.schema import columns

HAS_CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
cpu_only = pytest.mark.skipif(HAS_CUDA, reason="checks the no-GPU path")


# ---- Timing -----------------------------------------------------------------------------------------------
def test_timing_quantiles_and_spread():
    t = Timing.from_samples([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (t.median_ms, t.p20_ms, t.p80_ms, t.n_reps) == (3.0, 1.8, 4.2, 5)
    assert t.spread_pct == pytest.approx((4.2 - 1.8) / 3.0 * 100)
    assert not t.stable


def test_timing_quantiles_match_do_bench_definition():
    # do_bench(quantiles=[0.5, 0.2, 0.8]) uses triton.testing._quantile: ours must give the same numbers.
    from triton.testing import _quantile

    samples = [0.91, 0.87, 1.02, 0.88, 0.95, 0.9, 1.3, 0.89]
    t = Timing.from_samples(samples)
    assert [t.median_ms, t.p20_ms, t.p80_ms] == pytest.approx(_quantile(samples, [0.5, 0.2, 0.8]))


def test_stability_threshold():
    # 100 samples spread over +-0.5% of 1 ms: p80 - p20 is about 0.6% of the median, stable.
    tight = Timing.from_samples([1.0 + 0.01 * (i / 99 - 0.5) for i in range(100)])
    assert tight.stable and tight.spread_pct < STABLE_SPREAD_PCT
    loose = Timing.from_samples([1.0 + 0.1 * (i / 99 - 0.5) for i in range(100)])
    assert not loose.stable and loose.spread_pct > STABLE_SPREAD_PCT


def test_single_sample_and_empty():
    t = Timing.from_samples([0.5])
    assert t.spread_pct == 0 and t.stable and t.n_reps == 1
    with pytest.raises(ValueError):
        Timing.from_samples([])


def test_timing_fills_timings_table_columns():
    assert set(Timing.from_samples([1.0, 1.1]).as_dict()) <= set(columns("timings"))


# ---- rotation sizing --------------------------------------------------------------------------------------
ALL_CONFIGS = [c for suite in SUITES.values() for c in suite] + [AttentionConfig(1, 1, 256, 64)]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.id)
def test_rotation_exceeds_l2_unless_capped(config):
    n = inputs_for_rotation(config, H100_L2_BYTES)
    assert 2 <= n <= MAX_ROTATION_SETS
    if n < MAX_ROTATION_SETS:
        assert n * config.min_hbm_bytes >= timing.L2_OVERSUBSCRIPTION * H100_L2_BYTES
        # and not more sets than needed
        assert (n - 1) * config.min_hbm_bytes < timing.L2_OVERSUBSCRIPTION * H100_L2_BYTES or n == 2


def test_rotation_examples():
    seed = SUITES["seed"][0]  # 256 MiB a set: far above the 50 MB L2, two sets so neighbours differ
    assert inputs_for_rotation(seed) == 2
    tiny = AttentionConfig(1, 1, 64, 64)  # 32 KiB a set: would need thousands, capped
    assert inputs_for_rotation(tiny) == MAX_ROTATION_SETS
    mid = AttentionConfig(1, 8, 1024, 64)  # 4 MiB a set: 100 MiB / 4 MiB = 25
    assert inputs_for_rotation(mid, 50 * 2**20) == 25
    with pytest.raises(ValueError):
        inputs_for_rotation(mid, 0)


# ---- without a GPU ----------------------------------------------------------------------------------------
@cpu_only
def test_no_gpu_raises_clear_error():
    for call in (lambda: timing.time_call(lambda i: None, 2), lambda: timing.bare_do_bench(lambda: None),
                 lambda: timing.host_launch_us(lambda: None)):
        with pytest.raises(TimingUnavailable, match="needs an NVIDIA GPU"):
            call()
    assert timing.l2_bytes() == H100_L2_BYTES


# ---- on a GPU ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mats():
    n = 4
    return [torch.randn(2048, 2048, device="cuda", dtype=torch.float16) for _ in range(n)]


@pytest.mark.gpu
@needs_gpu
def test_time_call_rotates_and_summarizes(mats):
    seen = []

    def fn(i):
        seen.append(i)
        return mats[i] @ mats[i]

    t = timing.time_call(fn, len(mats), warmup_ms=5, rep_ms=20)
    assert t.n_reps >= 1 and t.median_ms > 0 and t.p20_ms <= t.median_ms <= t.p80_ms
    assert seen[: len(mats)] == list(range(len(mats)))  # one untimed call per input set first
    assert set(seen) == set(range(len(mats)))
    bare = timing.bare_do_bench(lambda: mats[0] @ mats[0], warmup_ms=5, rep_ms=20)
    assert bare > 0 and math.isfinite(bare)


@pytest.mark.gpu
@needs_gpu
def test_host_launch_is_launch_cost_not_kernel_time(mats):
    # A 2048^3 fp16 matmul takes tens of us on the GPU at most; the launch path alone must measure well below
    # a millisecond, and independent of the kernel's length (queued behind the busy kernel).
    us = timing.host_launch_us(lambda: mats[0] @ mats[0], n=20)
    assert 0 < us < 1000


# ---- the median's interval and the samples ------------------------------------------------------------------
def _noisy(n: int, rel_sd: float, seed: int = 0) -> list[float]:
    import numpy as np

    return (0.5 * (1 + rel_sd * np.random.default_rng(seed).standard_normal(n))).tolist()


def test_timing_keeps_its_samples_and_their_bootstrap_interval():
    samples = _noisy(300, 0.01)
    t = Timing.from_samples(samples)
    assert t.samples_ms == tuple(samples) and t.n_reps == 300
    assert t.ci_low_ms < t.median_ms < t.ci_high_ms
    # the median's interval is far narrower than one repetition's p20-p80 spread
    assert t.ci_high_ms - t.ci_low_ms < (t.p80_ms - t.p20_ms) / 3
    assert t.ci_width_pct == pytest.approx((t.ci_high_ms - t.ci_low_ms) / t.median_ms * 100)
    assert t.wide_ci is False
    again = Timing.from_samples(samples)  # seeded: the same samples, the same interval
    assert (again.ci_low_ms, again.ci_high_ms) == (t.ci_low_ms, t.ci_high_ms)


def test_timings_row_has_the_ci_columns():
    from collectors.timing.bench import CaseResult

    cfg = AttentionConfig(2, 4, 256, 64, causal=True)
    noisy = Timing.from_samples(_noisy(40, 0.08, seed=1))  # 40 repetitions at 8% noise: the CI is wide
    row = CaseResult("stage0_baseline", cfg, "ok", timing=noisy).timing_row("r1")
    assert list(row) == columns("timings")
    assert row["time_ms_ci_low"] < row["time_ms"] < row["time_ms_ci_high"]
    assert row["ci_width_pct"] > timing.WIDE_CI_PCT and row["wide_ci"] is True
    untimed = CaseResult("stage0_baseline", cfg, "wrong").timing_row("r1")
    assert math.isnan(untimed["time_ms_ci_low"]) and math.isnan(untimed["ci_width_pct"])
    assert untimed["wide_ci"] is None
    one = Timing.from_samples([0.5]).as_dict()  # one repetition: no interval, so no verdict on its width
    assert math.isnan(one["time_ms_ci_low"]) and one["wide_ci"] is None


def test_sample_rows_fill_the_timing_samples_table():
    from collectors.timing.bench import CaseResult

    cfg = AttentionConfig(2, 4, 256, 64, causal=True)
    res = CaseResult("stage0_baseline", cfg, "ok", timing=Timing.from_samples([0.3, 0.1, 0.2]))
    rows = res.sample_rows("r1")
    assert [set(r) for r in rows] == [set(columns("timing_samples"))] * 3
    assert [(r["sample_index"], r["time_ms"]) for r in rows] == [(0, 0.3), (1, 0.1), (2, 0.2)]  # do_bench order
    assert rows[0]["config_id"] == cfg.id and rows[0]["causal"] is True and rows[0]["run_id"] == "r1"
    assert CaseResult("stage0_baseline", cfg, "wrong").sample_rows("r1") == []
