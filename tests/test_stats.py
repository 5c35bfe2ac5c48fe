"""collectors.timing.stats: bootstrap intervals checked against answers known in advance (coverage of a known median,
1/sqrt(n) shrinkage, zero width for a constant, a known ratio), determinism, speed and degenerate input."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from collectors.timing.stats import intervals_overlap, median_ci, ratio_gain_ci

# Log-normal times: skewed to the right like kernel timings; the median of lognormal(mu, sigma) is exp(mu).
MU, SIGMA = math.log(0.5), 0.05
TRUE_MEDIAN = math.exp(MU)


def _times(rng, n: int, mu: float = MU) -> np.ndarray:
    return rng.lognormal(mu, SIGMA, n)


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    # 400 independent samples of 101 times (odd n: the median is one order statistic); a 95% interval should
    # contain the true median in ~380 of them. Binomial(400, 0.95) has sd ~4.4, so [0.90, 0.99] is > 5 sd wide
    # on the low side: the percentile bootstrap of a median may be a little off, never this far.
    rng = np.random.default_rng(12345)
    hits = 0
    for trial in range(400):
        median, low, high = median_ci(_times(rng, 101), seed=trial)
        assert low <= median <= high
        hits += low <= TRUE_MEDIAN <= high
    assert 0.90 <= hits / 400 <= 0.99


def test_interval_shrinks_as_one_over_sqrt_n():
    # The median's standard error goes as 1/sqrt(n): 16x the samples, about 1/4 the width (averaged over
    # seeds, so one unlucky draw does not decide).
    rng = np.random.default_rng(7)
    width = {n: np.mean([np.subtract(*median_ci(_times(rng, n), seed=s)[2:0:-1]) for s in range(20)])
             for n in (100, 1600)}
    assert width[100] / width[1600] == pytest.approx(4.0, rel=0.25)


def test_constant_sample_has_zero_width():
    assert median_ci([0.25] * 50) == (0.25, 0.25, 0.25)
    assert ratio_gain_ci([0.5] * 20, [0.25] * 30) == (1.0, 1.0, 1.0)


def test_even_sample_median_is_the_mean_of_the_middle_two():
    median, low, high = median_ci([1.0, 2.0, 3.0, 10.0])
    assert median == 2.5 and 1.0 <= low <= high <= 10.0


def test_ratio_gain_ci_covers_the_true_ratio():
    # off is 20% slower than on (medians 0.6 and 0.5 ms): the true gain of switching on is 0.6/0.5 - 1 = 0.2.
    rng = np.random.default_rng(3)
    true_gain = math.exp(math.log(0.6) - MU) - 1
    hits = 0
    for trial in range(100):
        gain, low, high = ratio_gain_ci(_times(rng, 151, math.log(0.6)), _times(rng, 151), seed=trial)
        assert low <= gain <= high
        hits += low <= true_gain <= high
    assert 0.88 <= hits / 100 <= 1.0
    gain, low, high = ratio_gain_ci(_times(rng, 2000, math.log(0.6)), _times(rng, 2000))
    assert gain == pytest.approx(true_gain, abs=0.01) and low < true_gain < high and high - low < 0.02


def test_deterministic_for_a_seed_and_different_across_seeds():
    x = _times(np.random.default_rng(0), 300)
    assert median_ci(x, seed=4) == median_ci(x, seed=4)
    assert median_ci(x, seed=4) != median_ci(x, seed=5)
    y = _times(np.random.default_rng(1), 300)
    assert ratio_gain_ci(x, y, seed=2) == ratio_gain_ci(x, y, seed=2)


def test_confidence_widens_the_interval():
    x = _times(np.random.default_rng(9), 400)
    _, lo90, hi90 = median_ci(x, confidence=0.90)
    _, lo99, hi99 = median_ci(x, confidence=0.99)
    assert lo99 <= lo90 and hi90 <= hi99 and (hi99 - lo99) > (hi90 - lo90)


def test_fast_enough_for_every_case_of_a_sweep():
    x = _times(np.random.default_rng(0), 1000)
    median_ci(x)  # first call pays numpy's one-time set-up
    start = time.perf_counter()
    median_ci(x, n_boot=2000)
    elapsed = time.perf_counter() - start
    print(f"median_ci: 2000 resamples of 1000 samples in {elapsed * 1e3:.1f} ms")
    assert elapsed < 0.1


def test_many_samples_stay_within_memory_blocks():
    # above 32767 samples the indices no longer fit int16: the partition path must give the same kind of answer
    x = _times(np.random.default_rng(0), 40_000)
    median, low, high = median_ci(x, n_boot=50)
    assert low < median < high and (high - low) / median < 0.005


@pytest.mark.parametrize("samples", [[0.5], [0.5, float("nan"), 0.6], [0.5, math.inf]],
                         ids=["one sample", "nan", "inf"])
def test_degenerate_input_gives_nan_bounds(samples):
    _, low, high = median_ci(samples)
    assert math.isnan(low) and math.isnan(high)
    gain, low, high = ratio_gain_ci(samples, [0.4, 0.41, 0.42])
    assert math.isnan(low) and math.isnan(high)
    assert median_ci([0.5])[0] == 0.5 and ratio_gain_ci([0.5], [0.25])[0] == 1.0


def test_empty_input_raises_one_sentence():
    with pytest.raises(ValueError, match="empty"):
        median_ci([])
    with pytest.raises(ValueError, match="samples_on_ms is empty"):
        ratio_gain_ci([1.0, 2.0], [])
    with pytest.raises(ValueError, match="confidence"):
        median_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_boot"):
        median_ci([1.0, 2.0], n_boot=0)


def test_intervals_overlap():
    assert intervals_overlap(1.0, 2.0, 1.5, 3.0)
    assert intervals_overlap(1.0, 2.0, 2.0, 3.0)  # a shared end point is overlap
    assert not intervals_overlap(1.0, 2.0, 2.1, 3.0)
    assert not intervals_overlap(2.1, 3.0, 1.0, 2.0)
    assert intervals_overlap(2.0, 1.0, 1.5, 1.6)  # ends in either order
    assert intervals_overlap(1.0, float("nan"), 5.0, 6.0)  # an unknown end cannot show them apart
    assert intervals_overlap(None, 2.0, 5.0, 6.0)
