"""Bootstrap intervals for kernel timings: how far a median time (or a ratio of two) can be trusted.

A timing is a few hundred repetitions of one call (collectors/timing/measure.py). Their distribution is skewed (a clock
step or a preempted repetition lands in the right tail), so we summarize it by the median and give the median a
percentile-bootstrap interval (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13): resample
the repetitions with replacement `n_boot` times, take each resample's median, and read the interval off the
`(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles of those medians. No distribution is assumed.

- Deterministic: every function takes a `seed` (numpy's PCG64 `default_rng`), so the same samples always give
  the same interval, in every run and process.
- Vectorized: a block of resamples is one `(rows, n)` index draw and one sort along its rows (`_boot_medians`);
  blocks hold at most `_BLOCK_ELEMENTS` indices, so many thousands of samples do not need gigabytes.
- Degenerate input does not raise: fewer than 2 samples, or a NaN / infinite sample, gives NaN bounds (there
  is nothing to resample, or the samples are not times). An empty list is a caller's mistake and raises
  ValueError.

Pure numpy; collectors and perfmodel both use it (perfmodel may import collectors, never the reverse).
"""

from __future__ import annotations

import math

import numpy as np

NAN = float("nan")
# Indices per resampling block: 4 Mi of them, 8 MiB as int16 (32 MiB as int64 above 32767 samples).
_BLOCK_ELEMENTS = 1 << 22


def _samples(values, what: str = "samples_ms") -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"{what} is empty: a bootstrap interval needs at least one sample.")
    return a


def _check(confidence: float, n_boot: int) -> None:
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}.")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive whole number, got {n_boot!r}.")


def _degenerate(a: np.ndarray) -> bool:
    """Nothing to resample (fewer than 2 samples) or samples that are not times (NaN, inf)."""
    return a.size < 2 or not np.isfinite(a).all()


def _boot_medians(a: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The medians of `n_boot` resamples (with replacement, each of size len(a)) of `a`.

    The samples are sorted once, so a resample's median is the sorted value at the median of its drawn indices:
    ordering small integers (a radix sort for 16-bit indices) is several times faster than partitioning the
    resampled floats, and gives exactly np.median of the resample."""
    n = a.size
    ordered = np.sort(a)
    lo, hi = (n - 1) // 2, n // 2  # the middle one (odd n) or two (even n) order statistics
    dtype = np.int16 if n <= np.iinfo(np.int16).max else np.int64
    rows = max(1, _BLOCK_ELEMENTS // n)
    out = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        idx = rng.integers(0, n, size=(k, n), dtype=dtype)
        idx = np.sort(idx, axis=1, kind="stable") if dtype == np.int16 else np.partition(idx, [lo, hi], axis=1)
        out[start:start + k] = (ordered[idx[:, lo]] + ordered[idx[:, hi]]) / 2
    return out


def _bounds(estimates: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(estimates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def median_ci(samples_ms, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): the samples' median and its percentile-bootstrap `confidence` interval (ms in, ms
    out). Fewer than 2 samples or a non-finite one: NaN bounds (and a NaN median for non-finite samples)."""
    _check(confidence, n_boot)
    a = _samples(samples_ms)
    median = float(np.median(a))
    if _degenerate(a):
        return median, NAN, NAN
    rng = np.random.default_rng(seed)
    low, high = _bounds(_boot_medians(a, n_boot, rng), confidence)
    return median, low, high


def ratio_gain_ci(samples_off_ms, samples_on_ms, confidence: float = 0.95, n_boot: int = 2000,
                  seed: int = 0) -> tuple[float, float, float]:
    """(gain, low, high) with gain = median(off) / median(on) - 1: the speed-up from switching a technique on
    (+0.15: 15% faster with it on), and its percentile-bootstrap interval from independent resamples of the two
    sample sets. Either set degenerate (fewer than 2 samples, a non-finite one): NaN bounds."""
    _check(confidence, n_boot)
    off = _samples(samples_off_ms, "samples_off_ms")
    on = _samples(samples_on_ms, "samples_on_ms")
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = float(np.median(off) / np.median(on) - 1.0)
    if _degenerate(off) or _degenerate(on) or not math.isfinite(gain):
        return gain, NAN, NAN
    rng = np.random.default_rng(seed)
    off_medians = _boot_medians(off, n_boot, rng)
    on_medians = _boot_medians(on, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = off_medians / on_medians - 1.0
    if not np.isfinite(gains).all():  # a resample of times with median 0: no finite ratio to bound
        return gain, NAN, NAN
    low, high = _bounds(gains, confidence)
    return gain, low, high


def intervals_overlap(a_low: float, a_high: float, b_low: float, b_high: float) -> bool:
    """Whether [a_low, a_high] and [b_low, b_high] share a point (ends may come in either order). An interval
    with a NaN (or None) end cannot tell the two apart, so it counts as overlapping."""
    ends = [NAN if v is None else float(v) for v in (a_low, a_high, b_low, b_high)]
    if any(math.isnan(v) for v in ends):
        return True
    a_lo, a_hi = sorted(ends[:2])
    b_lo, b_hi = sorted(ends[2:])
    return a_lo <= b_hi and b_lo <= a_hi
