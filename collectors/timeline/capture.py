"""Proton timelines, the collection step: one launch of a kernel built with Proton's intra-kernel scopes, recorded by
Triton 3.6's "instrumentation" backend, and its time against the bare build's.

How Proton's intra-kernel mode works in Triton 3.6 (triton/profiler/: language.py, hooks/instrumentation.py,
mode.py, profile.py):

- A kernel declares scopes with `triton.profiler.language.enter_scope(name)` / `exit_scope(name)` (or `with
  scope(name)`), which the Gluon front end turns into `proton.record` operations, but only while Proton's
  instrumentation is on (`flags.instrumentation_on`); otherwise they emit nothing, so the bare build of a kernel
  with scopes is the same code as without them (tests/test_timeline_capture.py compares the PTX). Only the Gluon
  front end is enabled by default (the `tl` one's rewrites would move the records).
- `proton.start(name, data="trace", backend="instrumentation", mode=...)` registers an InstrumentationHook: it
  adds Proton's lowering passes to the CUDA backend (records -> a clock read and a store to a per-warp circular
  buffer), sets `knobs.compilation.instrumentation_mode` (part of every kernel's options, so the instrumented build
  is cached apart from the bare one), and a profile-scratch allocator for the buffer. Each launch's buffer is
  copied out and parsed after the kernel; `proton.finalize()` writes `<name>.chrome_trace`
  (collectors/timeline/read.py says what is in it).
- The mode (`proton.mode.Default`): metric cycles (the only one); `buffer_type` shared (the default: what shared
  memory the kernel leaves, which is almost none in these kernels) or global (`buffer_size` bytes per program,
  16 KB per recorded warp by default); `sampling_strategy="selective"` with `sampling_options="0,4,8"` records
  only those warps (warp granularity only); the circular buffer keeps each warp's last records and Proton warns
  "first N events are dropped" when a warp wrote more than its share; optimizations `clock32` (32-bit clock reads)
  and `time_shift` (subtracts Proton's constant cost of a record, 7 cycles on NVIDIA, when parsing).

What this module does with it: from a bare launch of the kernel (its compiled TTGIR and grid, `jit_launches`) it
plans the capture (`CapturePlan`: one warp per warp group of every partition, a global buffer sized for every
record of the busiest program, so nothing is dropped), records exactly one instrumented launch (`record_launch`),
and times the instrumented build against the bare one by the same method (`timed_pair`), with the instrumented
build launched outside Proton's session (`instrumented_launches`) so that the per-launch copy and parse are not
timed. `compile_instrumented` builds an instrumented stage for sm_90 on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from collectors.timeline.read import WarpLayout, warp_layout
from runstore.safe_io import stderr_to

# Scopes one recorded warp may close per key block and per work item outside the loop: bounds for sizing its
# buffer (this toolkit's stages close at most 8 per block, stage 4's consumer, and 8 per item, stage 5's producer
# with three consumers: tile + three Q waits and issues).
SCOPES_PER_BLOCK = 10
SCOPES_PER_ITEM = 12
# One record (a scope's start or end): a 4-byte tag (scope id, start or end, the clock's high bits) and 4 bytes of
# clock (CircularLayoutParser.cpp: "Each event is 8 bytes").
BYTES_PER_RECORD = 8
# The smallest key block and query tile of any stage (stage 5 tunes BLOCK_N = 64; query tiles are 128 or 192), used
# when a launch does not name its BLOCK_M / BLOCK_N.
MIN_BLOCK = 64
# Profile buffer of all programs together above which a capture is refused (bytes of GPU memory).
MAX_BUFFER_BYTES = 8 << 30
# Proton's optimizations for every capture: time_shift removes the constant cost of a record from each duration.
OPTIMIZATIONS = "time_shift"
_DROPPED = re.compile(r"first (\d+) events are dropped")
# what Proton's parser reports when a warp's records do not pair up (CircularLayoutParser.cpp's exceptions)
_PARSE_PROBLEM = re.compile(r"Scope mismatch|Clock overflow|Invalid preamble")


class TimelineUnavailable(RuntimeError):
    """Proton's instrumentation mode cannot run here, or a capture cannot be made; the message is one sentence."""


# ---- is Proton's instrumentation mode here? --------------------------------------------------------------------
def proton_problem() -> str | None:
    """Why Proton's intra-kernel instrumentation cannot record a Hopper kernel here (one sentence), or None. Starts
    and finishes one empty session of the instrumentation backend to find out."""
    try:
        import torch
        import triton
        import triton.profiler as proton
        import triton.profiler.language  # noqa: F401  (the scopes the kernels declare)
        from triton.profiler.hooks.instrumentation import InstrumentationHook  # noqa: F401
    except Exception as exc:  # an older Triton, or a broken install
        return f"Triton's Proton profiler cannot be imported ({_one_line(exc)})."
    if not torch.cuda.is_available():
        return "Proton's instrumentation mode records a kernel on a CUDA GPU, and torch sees none."
    major, minor = torch.cuda.get_device_capability()
    if major != 9:
        return (f"the instrumented kernels are the Hopper-only Gluon stages, and "
                f"{torch.cuda.get_device_name()} is compute capability {major}.{minor}.")
    if triton.knobs.proton.disable:
        return "Proton is disabled in this environment (TRITON_PROTON_DISABLE is set)."
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with stderr_to(Path(tmp) / "probe.log"):
                session = proton.start(str(Path(tmp) / "probe"), data="trace", backend="instrumentation")
                if session is None:
                    return "Proton ignored proton.start here (the script runs under the proton command line)."
                proton.finalize(session)
        except Exception as exc:
            return f"Proton's instrumentation backend does not start here ({_one_line(exc)})."
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


# ---- the bare launch a capture is planned from -----------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """A Triton launch as JITFunction.run saw it, with the kernel it compiled."""

    fn: object
    grid: tuple
    kwargs: dict
    kernel: object  # triton CompiledKernel

    @property
    def programs(self) -> int:
        return math.prod(int(g) for g in self.grid)


@contextlib.contextmanager
def jit_launches():
    """Within the block every Triton launch (JITFunction.run, Gluon's too) is recorded in the yielded list, with the
    kernel it compiled or found; the launch itself runs as usual."""
    from triton.runtime.jit import JITFunction

    launches: list[Launch] = []
    original = JITFunction.run

    def run(self, *args, grid, warmup, **kwargs):
        kernel = original(self, *args, grid=grid, warmup=warmup, **kwargs)
        if not warmup and kernel is not None:
            named = {**dict(zip(getattr(self, "arg_names", ()), args)), **kwargs}
            resolved = grid(named) if callable(grid) else grid
            launches.append(Launch(self, tuple(resolved), named, kernel))
        return kernel

    JITFunction.run = run
    try:
        yield launches
    finally:
        JITFunction.run = original


@dataclass(frozen=True)
class CapturePlan:
    """How one launch is recorded: which warps, and a global buffer large enough for all their records."""

    layout: WarpLayout
    programs: int
    records_per_warp: int

    @property
    def sampled_warps(self) -> tuple[int, ...]:
        return self.layout.sampled_warps()

    @property
    def segment_bytes(self) -> int:
        """Bytes of one recorded warp's share of a program's buffer (Proton wants a power of two)."""
        return 1 << max(10, math.ceil(math.log2(max(1, self.records_per_warp) * BYTES_PER_RECORD)))

    @property
    def buffer_bytes(self) -> int:
        """Proton's `buffer_size`: one program's buffer, all recorded warps."""
        return self.segment_bytes * len(self.sampled_warps)

    @property
    def total_bytes(self) -> int:
        return self.buffer_bytes * self.programs

    def problem(self) -> str | None:
        if self.total_bytes > MAX_BUFFER_BYTES:
            return (f"recording every scope of {self.programs} programs needs {self.total_bytes / 2**30:.1f} GiB of "
                    f"profile buffer, more than the {MAX_BUFFER_BYTES / 2**30:.0f} GiB a capture may take.")
        if self.buffer_bytes >= 2**31:
            return f"one program's profile buffer would be {self.buffer_bytes / 2**30:.1f} GiB, past Proton's 2 GiB."
        return None

    def mode(self):
        """The proton.mode.Default of this plan."""
        from triton.profiler import mode

        return mode.Default(buffer_type="global", buffer_size=self.buffer_bytes, sampling_strategy="selective",
                            sampling_options=",".join(str(w) for w in self.sampled_warps),
                            optimizations=OPTIMIZATIONS)

    def as_dict(self) -> dict:
        return {"layout": self.layout.as_dict(), "programs": self.programs, "records_per_warp": self.records_per_warp,
                "sampled_warps": list(self.sampled_warps), "buffer_bytes": self.buffer_bytes,
                "total_buffer_bytes": self.total_bytes, "mode": str(self.mode())}


def records_per_warp(config, programs: int, block_m: int = MIN_BLOCK, block_n: int = MIN_BLOCK) -> int:
    """A bound on the records (starts and ends) one recorded warp writes in its busiest program: its work items
    (the work items of `config` in tiles of `block_m` query rows, shared out over `programs`), each with at most
    SCOPES_PER_ITEM scopes outside the loop and SCOPES_PER_BLOCK per key block of `block_n` keys."""
    items = config.tiles(block_m)
    per_program = -(-items // max(1, programs))
    blocks = -(-config.S // block_n)
    return 2 * per_program * (SCOPES_PER_ITEM + blocks * SCOPES_PER_BLOCK)


def plan_capture(launch: Launch, config) -> CapturePlan:
    """The CapturePlan for the kernel `launch` compiled (its TTGIR gives the partitions) at `config`. Raises
    TimelineUnavailable when the layout read from the kernel disagrees with its warp count or the buffer is too
    large."""
    layout = warp_layout(launch.kernel.asm["ttgir"])
    warps = int(launch.kernel.metadata.num_warps)
    if layout.total_warps != warps:
        raise TimelineUnavailable(f"the kernel has {warps} warps where its partitions {layout.as_dict()} make "
                                  f"{layout.total_warps}; this Triton allocates warps differently from 3.6.")
    bm = int(launch.kwargs.get("BLOCK_M", MIN_BLOCK))
    bn = int(launch.kwargs.get("BLOCK_N", MIN_BLOCK))
    plan = CapturePlan(layout, launch.programs, records_per_warp(config, launch.programs, bm, bn))
    problem = plan.problem()
    if problem:
        raise TimelineUnavailable(problem)
    return plan


# ---- one recorded launch ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """What Proton wrote for one instrumented launch."""

    trace: Path  # Proton's .chrome_trace
    log: Path  # what Proton (and the compiler) printed on stderr meanwhile
    dropped_events: int  # records the circular buffers overwrote ("first N events are dropped" warnings)
    parse_problems: int  # records Proton's parser could not pair (scope mismatch, clock overflow, bad preamble)
    output: object  # what the call returned


def record_launch(call: Callable[[], object], stem: Path, mode) -> Recording:
    """Run `call()` (one launch of an instrumented kernel) inside a Proton session of the instrumentation backend;
    Proton writes `<stem>.chrome_trace`. Whatever the call compiles inside the session is built with the scopes."""
    import torch
    import triton.profiler as proton

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    log = stem.with_name(stem.name + ".proton.log")
    with stderr_to(log):
        session = proton.start(str(stem), data="trace", backend="instrumentation", mode=mode)
        if session is None:
            raise TimelineUnavailable("Proton ignored proton.start (disabled, or run under the proton command line).")
        try:
            output = call()
            torch.cuda.synchronize()
        finally:
            proton.finalize(session)
    text = log.read_text(errors="replace")
    trace = stem.with_name(stem.name + ".chrome_trace")
    if not trace.is_file():
        last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "nothing on stderr")
        raise TimelineUnavailable(f"Proton wrote no trace for the launch ({last.strip()[:200]}).")
    return Recording(trace, log, sum(int(n) for n in _DROPPED.findall(text)), len(_PARSE_PROBLEM.findall(text)),
                     output)


class _ReusedScratch:
    """A profile-scratch allocator that hands every launch the same buffer (grown when a launch needs more), so that
    timed launches allocate nothing and a CUDA-graph capture holds one buffer."""

    def __init__(self):
        self.buffer = None

    def __call__(self, size: int, alignment: int, stream):
        import torch

        if self.buffer is None or self.buffer.numel() < size:
            self.buffer = torch.empty(-(-size // alignment) * alignment, dtype=torch.uint8, device="cuda")
        return self.buffer


@contextlib.contextmanager
def instrumented_launches(mode):
    """Within the block, Triton builds and launches kernels with Proton's scopes (as inside a session of `mode`, so
    the instrumented build recorded earlier is found in the cache) but without Proton's session: no launch hooks,
    no copy or parse of the buffer after each launch. For timing the instrumented build."""
    from triton.profiler.hooks.instrumentation import InstrumentationHook
    from triton.runtime._allocation import set_profile_allocator

    hook = InstrumentationHook(mode)
    hook.activate()
    try:
        set_profile_allocator(_ReusedScratch())
        yield
    finally:
        hook.deactivate()  # also puts back Triton's null profile allocator


@dataclass(frozen=True)
class TimedPair:
    """The bare and the instrumented build of one call, timed by the same method."""

    bare: object  # collectors.timing.measure.Timing
    instrumented: object
    method: str  # collectors.timing.measure.GRAPH or HOST_LOOP
    note: str = ""  # why the graph method was not used, when it was not


def timed_pair(call: Callable[[int], object], n_inputs: int, mode, reset: Callable[[], None] = lambda: None,
               warmup_ms: float = 25, rep_ms: float = 100) -> TimedPair:
    """Time `call(i)` (input set i of n_inputs) bare and instrumented: by CUDA-graph replay for both
    (collectors.timing.measure.time_graph: the GPU's time per call) when both can be captured, else by do_bench's host
    loop for both. `reset()` runs before each timing (a stage's prepared-launch cache must be emptied so the
    instrumented timing cannot launch a bare state kept for the same inputs)."""
    from collectors.timing.measure import GRAPH, HOST_LOOP, GraphUnavailable, time_call, time_graph

    def both(timer):
        reset()
        bare = timer(call, n_inputs, warmup_ms, rep_ms)
        reset()
        try:
            with instrumented_launches(mode):
                inst = timer(call, n_inputs, warmup_ms, rep_ms)
        finally:
            reset()
        return bare, inst

    try:
        bare, inst = both(time_graph)
        return TimedPair(bare, inst, GRAPH)
    except GraphUnavailable as exc:
        bare, inst = both(time_call)
        return TimedPair(bare, inst, HOST_LOOP, f"no CUDA graph: {exc}")


# ---- the compile alone, without a GPU --------------------------------------------------------------------------
class _Sm90Properties:
    def __init__(self, max_shared_mem: int):
        self.max_shared_mem = max_shared_mem

    def get_device_properties(self, device):
        return {"max_shared_mem": self.max_shared_mem}


class _Sm90Driver:
    """What Proton's InstrumentationHook asks of the active driver when it sets up its passes: the target (an
    H100's sm_90) and the device's largest shared memory per program."""

    def __init__(self, max_shared_mem: int):
        self.utils = _Sm90Properties(max_shared_mem)

    def is_active(self):
        return True

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0


@contextlib.contextmanager
def sm90_instrumentation(mode):
    """Within the block Triton's CUDA backend compiles with Proton's instrumentation passes for `mode`, as inside a
    Proton session on an H100, on a machine without a GPU (nothing can be launched). Yields the
    instrumentation_mode option a compile must carry so that its cache entry is not the bare build's."""
    from triton import knobs
    from triton.profiler.hooks.instrumentation import InstrumentationHook
    from triton.runtime import driver

    from kernels.hardware import DEFAULT_GPU, GPUS

    saved = driver._active  # None until something asked for the driver; reset_active() needs a GPU
    driver.set_active(_Sm90Driver(int(GPUS[DEFAULT_GPU].smem_per_program_kb * 1024)))
    hook = InstrumentationHook(mode)
    try:
        hook.activate()
        yield knobs.compilation.instrumentation_mode
    finally:
        hook.deactivate()
        driver.set_active(saved)


def compile_instrumented(launch, mode):
    """Compile one captured launch (collectors.census.sm90.capture's) for sm_90 with Proton's scopes, without a GPU."""
    from collectors.census.sm90 import compile_launch as _compile_launch

    with sm90_instrumentation(mode) as instrumentation_mode:
        kwargs = {**launch.kwargs, "instrumentation_mode": instrumentation_mode}
        compiled, _ = _compile_launch(dataclasses.replace(launch, kwargs=kwargs))
    return compiled
