"""Kernel timing shared by `perfmodel bench` and `perfmodel collect`.

One timed repetition is one call of the implementation, timed with CUDA events by `triton.testing.do_bench`.
Three things keep the figure honest:

- **Warm-up outside the timing**: every input set is run once (untimed, then synchronized) before do_bench
  starts, so JIT compilation, autotuning and torch.compile's tracing never land in a timed repetition; do_bench
  then runs its own warm-up of `warmup_ms`.
- **Inputs not served from L2**: do_bench already zeroes a 256 MB buffer before each repetition (Triton 3.6,
  `get_empty_cache_for_benchmark`), and on top of that the repetitions rotate over `n_inputs` distinct input
  sets whose combined size exceeds the L2 (`inputs_for_rotation`), so a repetition never finds its own Q/K/V
  left behind by the previous one.
- **Spread, not just a centre**: we ask do_bench for every sample (`return_mode="all"`) and report the median
  with the 20th and 80th percentiles; a timing whose (p80 - p20) / median exceeds 2% is flagged unstable.
- **How sure the median is**: the samples are kept (`Timing.samples_ms`, the run store's `timing_samples`
  table) and the median gets a seeded bootstrap 95% interval (collectors/timing/stats.py); an interval wider than
  `WIDE_CI_PCT` of the median is flagged `wide_ci`. The spread says how noisy one repetition is, the interval
  how well the median is pinned down by all of them.

Everything here needs a CUDA GPU; without one the functions raise `TimingUnavailable` with one sentence, and
callers record timings as not measured.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from kernels.hardware import DEFAULT_GPU, GPUS
from kernels.workload import L2_OVERSUBSCRIPTION, MAX_ROTATION_SETS, AttentionConfig, rotation_sets  # noqa: F401

from collectors.timing.stats import median_ci
from runstore.schema import TIMING_GRAPH, TIMING_HOST_LOOP

# A timing is "stable" when its inter-quantile spread is below this (percent of the median): the collect issue's
# stability flag (relative spread < 2%).
STABLE_SPREAD_PCT = 2.0
# The median's bootstrap 95% interval is "wide" when (high - low) / median exceeds this (percent). At 2% the run
# cannot resolve a change as small as the regression threshold `perfmodel compare` applies by default (also 2%:
# perfmodel/reports/compare.py), so a "within noise" verdict on such a case says little; re-time it with a longer
# --rep-ms (the interval narrows about as 1/sqrt(repetitions)).
WIDE_CI_PCT = 2.0
# The interval every timing reports: 95%, the confidence `perfmodel compare` and the report read it at.
CI_CONFIDENCE = 0.95

# The hardware table's H100 SXM5 L2 (kernels/hardware.py). Used only when no GPU is present to ask
# (torch.cuda.get_device_properties().L2_cache_size).
H100_L2_BYTES = GPUS[DEFAULT_GPU].l2_bytes

# Rotation size (L2_OVERSUBSCRIPTION, MAX_ROTATION_SETS, imported above for the callers that read them here):
# kernels/workload.py's `rotation_sets`, the one rule the tuners' re-timing of their fastest candidates uses too
# (kernels/tuner.py).


class TimingUnavailable(RuntimeError):
    """Timing was asked for where it cannot be done (no CUDA GPU); the message is one sentence."""


class GraphUnavailable(RuntimeError):
    """The call could not be captured in a CUDA graph (the message says why); time it with the host loop."""


# How a time was measured. GRAPH: a CUDA graph of back-to-back calls replayed and timed with CUDA events, so the
# figure is the GPU's time per call (time_graph). HOST_LOOP: do_bench calling the function from Python once per
# repetition (time_call), which measures the host's launch path instead wherever that is longer than the kernel.
GRAPH, HOST_LOOP = TIMING_GRAPH, TIMING_HOST_LOOP


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings of one call, in milliseconds, with the samples it summarizes."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    n_reps: int
    spread_pct: float  # (p80 - p20) / median x 100
    stable: bool  # spread_pct < STABLE_SPREAD_PCT
    ci_low_ms: float = math.nan  # bootstrap CI_CONFIDENCE interval of the median (NaN below 2 samples)
    ci_high_ms: float = math.nan
    samples_ms: tuple[float, ...] = field(default=(), repr=False)  # every repetition, in do_bench's order
    method: str = HOST_LOOP  # how the samples were taken: GRAPH or HOST_LOOP
    calls_per_sample: int = 1  # calls one sample averages (a graph replay's back-to-back calls)

    @classmethod
    def from_samples(cls, samples_ms: list[float], method: str = HOST_LOOP, calls_per_sample: int = 1) -> "Timing":
        """Summarize raw per-repetition times (ms): quantiles, spread and the median's bootstrap interval."""
        times = tuple(float(t) for t in samples_ms)
        if not times:
            raise ValueError("no timing samples to summarize.")
        median, p20, p80 = _quantiles(list(times), (0.5, 0.2, 0.8))
        spread = (p80 - p20) / median * 100.0 if median > 0 else math.inf
        _, low, high = median_ci(times, confidence=CI_CONFIDENCE)
        return cls(
            median_ms=median, p20_ms=p20, p80_ms=p80, n_reps=len(times),
            spread_pct=spread, stable=spread < STABLE_SPREAD_PCT, ci_low_ms=low, ci_high_ms=high,
            samples_ms=times, method=method, calls_per_sample=calls_per_sample,
        )

    @property
    def ci_width_pct(self) -> float:
        """(ci_high - ci_low) / median x 100; NaN without an interval."""
        if not (math.isfinite(self.ci_low_ms) and math.isfinite(self.ci_high_ms)) or self.median_ms <= 0:
            return math.nan
        return (self.ci_high_ms - self.ci_low_ms) / self.median_ms * 100.0

    @property
    def wide_ci(self) -> bool | None:
        """The interval is wider than WIDE_CI_PCT of the median; None without an interval (under 2 samples)."""
        width = self.ci_width_pct
        return None if math.isnan(width) else bool(width > WIDE_CI_PCT)

    def as_dict(self) -> dict:
        """The timings-table columns this summary fills (runstore/schema.py); the samples go to
        `timing_samples` (`sample_rows`)."""
        return {
            "time_ms": self.median_ms, "time_ms_p20": self.p20_ms, "time_ms_p80": self.p80_ms,
            "spread_pct": self.spread_pct, "stable": self.stable, "n_reps": self.n_reps,
            "time_ms_ci_low": self.ci_low_ms, "time_ms_ci_high": self.ci_high_ms,
            "ci_width_pct": self.ci_width_pct, "wide_ci": self.wide_ci,
        }

    def sample_rows(self, key: dict) -> list[dict]:
        """Rows of the `timing_samples` table: `key` (the case's key columns) plus each sample's index and time."""
        return [{**key, "sample_index": i, "time_ms": t} for i, t in enumerate(self.samples_ms)]


def _quantiles(values: list[float], qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolation quantiles, the same definition do_bench uses for its `quantiles=` argument."""
    a = sorted(values)
    n = len(a)
    out = []
    for q in qs:
        point = q * (n - 1)
        lo, hi = math.floor(point), math.ceil(point)
        t = point - lo
        out.append((1 - t) * a[lo] + t * a[hi])
    return out


# ---- environment ----------------------------------------------------------------------------------------------
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def require_cuda(what: str = "timing") -> None:
    """Raise TimingUnavailable unless a CUDA GPU is usable."""
    if not cuda_available():
        raise TimingUnavailable(
            f"{what} needs an NVIDIA GPU with CUDA, and none is available here; "
            "timings are recorded as not measured."
        )


def l2_bytes() -> int:
    """L2 size of the current GPU, or the H100's when there is no GPU to ask."""
    if cuda_available():
        import torch

        size = int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0))
        if size > 0:
            return size
    return H100_L2_BYTES


def inputs_for_rotation(config: AttentionConfig, l2_size: int | None = None) -> int:
    """How many distinct input sets (Q, K, V and the output O) to rotate so that together they exceed the L2.

    One set moves `config.min_hbm_bytes` (Q, K, V read and O written once). We take the fewest sets whose sum is
    at least L2_OVERSUBSCRIPTION x L2, at least 2 (so consecutive repetitions never share inputs) and at most
    MAX_ROTATION_SETS.
    """
    return rotation_sets(config.min_hbm_bytes, H100_L2_BYTES if l2_size is None else int(l2_size))


# ---- timing ---------------------------------------------------------------------------------------------------
def _run_each_once(fn: Callable[[int], object], n_inputs: int):
    """Run `fn` once on each input set, untimed (compilation, tuning), and wait for the GPU; torch, for the caller."""
    require_cuda("timing")
    if n_inputs < 1:
        raise ValueError(f"n_inputs must be at least 1, got {n_inputs}.")
    import torch

    for i in range(n_inputs):
        fn(i)
    torch.cuda.synchronize()
    return torch


def time_call(fn: Callable[[int], object], n_inputs: int, warmup_ms: float = 25, rep_ms: float = 100) -> Timing:
    """Time `fn(i)` (run the implementation on input set i) rotating i over range(n_inputs).

    Each input set is run once untimed first; then do_bench warms up for `warmup_ms` and times repetitions for
    about `rep_ms`, each repetition on the next input set.
    """
    _run_each_once(fn, n_inputs)
    from triton.testing import do_bench

    counter = itertools.count()

    def step() -> None:
        fn(next(counter) % n_inputs)

    samples = do_bench(step, warmup=warmup_ms, rep=rep_ms, return_mode="all")
    return Timing.from_samples(samples)


def bare_do_bench(fn0: Callable[[], object], warmup_ms: float = 25, rep_ms: float = 100) -> float:
    """Median ms of a plain `do_bench(fn0)` on one input set: the reference for the collector's overhead."""
    require_cuda("timing")
    from triton.testing import do_bench

    return float(do_bench(fn0, warmup=warmup_ms, rep=rep_ms, return_mode="median"))


# Cycles of the dummy kernel per measured call: 1 ms at the H100's 1.98 GHz boost clock (H100 SXM5 datasheet),
# far above the ~10-20 us a launch costs on the host (ANCHORS.md), so the GPU stays busy for the whole loop.
_BUSY_CYCLES_PER_CALL = 2_000_000


def host_launch_us(fn: Callable[[], object], n: int = 50) -> float:
    """Median host wall time (us) of one Python call of `fn` while the GPU is kept busy.

    A long `torch.cuda._sleep` kernel is enqueued first, so every call only queues its kernel(s) behind it: the
    wall time measured is the launch path (Python, argument handling, driver enqueue), not the kernel. `fn` is
    called once untimed (and synchronized) first so compilation and autotuning are not counted.
    """
    require_cuda("launch timing")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    import torch

    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(_BUSY_CYCLES_PER_CALL * n)
    walls = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        walls.append((time.perf_counter_ns() - t0) / 1e3)
    torch.cuda.synchronize()
    return float(statistics.median(walls))


# A graph holds enough back-to-back calls for its replay to keep the GPU busy at least this long (ms), so the few
# microseconds a replay costs on the host are always hidden behind the previous replay's kernels.
GRAPH_MIN_MS = 0.5
GRAPH_MAX_CALLS = 1024
# Replays timed: as many as fit in rep_ms, within these bounds.
GRAPH_MIN_SAMPLES, GRAPH_MAX_SAMPLES = 10, 500
# Host time the enqueueing of one replay and its event may take (us): the head start the GPU is given (a
# torch.cuda._sleep) so that every replay is queued before the first runs, and no host time lands in a sample.
_HOST_US_PER_REPLAY = 30.0


def time_graph(fn: Callable[[int], object], n_inputs: int, warmup_ms: float = 25, rep_ms: float = 100) -> Timing:
    """The GPU's time per call of `fn(i)`, rotating i over range(n_inputs) as time_call does, by CUDA-graph replay.

    Each input set is run once untimed first (compilation, tuning); a host-loop estimate of one call sizes the
    graph: n back-to-back calls (a multiple of n_inputs, at least GRAPH_MIN_MS of GPU time) captured once; the graph
    is replayed for about `warmup_ms`, then, after a head start that lets the host queue every timed replay, each
    replay is timed between two CUDA events. One sample is a replay's time divided by its calls. Raises
    GraphUnavailable (with the reason) when the call cannot be captured: it synchronizes, copies to the host or
    otherwise does what a capture forbids."""
    torch = _run_each_once(fn, n_inputs)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(2 * n_inputs):
        fn(i % n_inputs)
    end.record()
    end.synchronize()
    estimate_ms = max(start.elapsed_time(end) / (2 * n_inputs), 1e-4)
    reps = max(1, math.ceil(GRAPH_MIN_MS / (estimate_ms * n_inputs)))
    calls = min(GRAPH_MAX_CALLS, max(n_inputs, reps * n_inputs))
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(side):
            fn(0)  # a call on the capture's stream first, as torch asks before a capture
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            for j in range(calls):
                fn(j % n_inputs)
    except Exception as exc:
        torch.cuda.synchronize()
        raise GraphUnavailable(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                               ) from None
    graph_ms = estimate_ms * calls
    t_end = time.monotonic() + warmup_ms / 1e3
    while time.monotonic() < t_end:
        graph.replay()
        torch.cuda.synchronize()
    n = int(min(GRAPH_MAX_SAMPLES, max(GRAPH_MIN_SAMPLES, rep_ms / graph_ms)))
    events = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
    clock_hz = GPUS[DEFAULT_GPU].boost_clock_mhz * 1e6
    torch.cuda._sleep(int(n * _HOST_US_PER_REPLAY * 1e-6 * clock_hz))
    events[0].record()
    for i in range(n):
        graph.replay()
        events[i + 1].record()
    torch.cuda.synchronize()
    samples = [events[i].elapsed_time(events[i + 1]) / calls for i in range(n)]
    del graph
    return Timing.from_samples(samples, method=GRAPH, calls_per_sample=calls)


@dataclass(frozen=True)
class CaseTiming:
    """What `time_case` measured: `gpu`, the primary time (by CUDA graph, else the host loop's, with the reason
    in `graph_fallback`), `host_loop` (do_bench's time of the same calls from Python) and the host launch path
    (`host_launch_us`, with the GPU kept busy; NaN where it could not be measured)."""

    gpu: Timing
    host_loop: Timing
    host_launch_us: float = math.nan
    graph_fallback: str | None = None

    @property
    def host_bound(self) -> bool | None:
        """The host's launch path is at least the GPU's time per call: timed back to back from Python, the GPU
        would wait for the host (None where the launch path was not measured)."""
        if not math.isfinite(self.host_launch_us):
            return None
        return bool(self.host_launch_us * 1e-3 >= self.gpu.median_ms)

    def as_dict(self) -> dict:
        """The timings-table columns beyond Timing.as_dict (runstore/schema.py)."""
        return {"timing_method": self.gpu.method, "graph_calls": self.gpu.calls_per_sample
                if self.gpu.method == GRAPH else None, "graph_fallback": self.graph_fallback,
                "host_loop_ms": self.host_loop.median_ms, "host_loop_ms_ci_low": self.host_loop.ci_low_ms,
                "host_loop_ms_ci_high": self.host_loop.ci_high_ms,
                "host_launch_us": self.host_launch_us, "host_bound": self.host_bound}


def time_gpu(fn: Callable[[int], object], n_inputs: int, warmup_ms: float = 25, rep_ms: float = 100,
             ) -> tuple[Timing, str | None]:
    """(the GPU's time per call, None) by CUDA-graph replay (time_graph); for a call that cannot be captured, (the
    host loop's time, why the graph could not be used)."""
    try:
        return time_graph(fn, n_inputs, warmup_ms, rep_ms), None
    except GraphUnavailable as exc:
        return (time_call(fn, n_inputs, warmup_ms, rep_ms),
                f"not captured in a CUDA graph ({exc}); timed by the host loop")


def time_case(fn: Callable[[int], object], n_inputs: int, warmup_ms: float = 25, rep_ms: float = 100) -> CaseTiming:
    """Every time of one case: the GPU's time per call (time_gpu: CUDA-graph replay, else the host loop, with the
    reason), the host loop's (time_call) and the host launch path (host_launch_us on input set 0; NaN where it
    fails)."""
    gpu, fallback = time_gpu(fn, n_inputs, warmup_ms, rep_ms)
    host_loop = time_call(fn, n_inputs, warmup_ms, rep_ms) if gpu.method == GRAPH else gpu
    try:
        launch = host_launch_us(lambda: fn(0))
    except Exception:  # the launch path is a side figure: the case keeps its times
        launch = math.nan
    return CaseTiming(gpu=gpu, host_loop=host_loop, host_launch_us=launch, graph_fallback=fallback)
