"""Micro-benchmarks of the units the attention kernels use, measured in the same run (more rows of `ceilings`).

collectors/ceilings/ceilings.py measures the peaks (cuBLAS, a copy, an exp2 stream); these measure what a peak leaves
out, the latencies and per-shape rates that decide a latency-bound kernel (issue 13's predictive model,
perfmodel/model/predictive.py, prices them). Each is a small kernel written for the job, timed at two loop lengths
(`LOOPS`); the figure is the difference over the extra iterations, so the launch, the set-up before the loop
and the store after it cancel out:

    wgmma_{ss|rs}_n{N}_k{K}_latency_ns   one program per SM, one warp group: a dependent chain of the wgmma group
                                         the stages issue for one key block (K/16 instructions m64nNk16 into one
                                         accumulator, then `warpgroup_mma_wait(0)`): the time from one group's
                                         issue to the next group's issue when each needs the last one's result.
                                         ss: A and B from shared memory (QKᵀ: A = Q); rs: A in registers (P·V:
                                         A = P). B is read as the stages read it (K: a K-major view of a [N, K]
                                         tile; V: an [K, N] tile).
    wgmma_{ss|rs}_n{N}_k{K}_tflops       the same group, FLOP/s over the whole GPU with WGMMA_PROGRAMS_PER_SM
                                         programs of two warp groups per SM (independent chains): the per-shape
                                         rate, which for narrow N can sit below cuBLAS' large-matrix rate.
    exp2_latency_ns                      one warp per SM, one dependent chain of x = exp2(-x) per thread: the
                                         step as Triton emits it (a negation on the FMA pipe, then MUFU
                                         ex2.approx), i.e. the scale-and-exp of a softmax score.
    fma_latency_ns                       one warp per SM, one dependent chain of x = x * a + b per thread.
    shfl_latency_ns                      one warp per SM, a dependent chain of shfl.sync.bfly (the exchange of a
                                         row reduction). The three chains run UNROLL steps a loop iteration.
    mbarrier_wait_ready_ns               an mbarrier.wait whose phase has completed (a spin that passes at once).
    fp32_fma_tflops                      8 independent FMA chains per thread over SMs x 64Ki threads: the FP32
                                         pipe's rate (2 FLOPs an FMA).
    smem_tbps                            vectorized shared-memory loads (ld.shared.v4, a warp reading 512
                                         contiguous bytes, no bank conflict) over every SM: bytes/s.
    bar_sync_ns                          one program of 8 warps (the stages' consumer) per SM in a loop of
                                         `gl.thread_barrier()` (bar.sync 0): one aligned barrier's cost.
    mbarrier_roundtrip_ns                two partitions of one program (gl.warp_specialize: 4 warps and 1 warp,
                                         as the stages' consumer and producer) handing a token back and forth
                                         through two mbarriers (arrive, then wait on the other's phase): one
                                         full round trip, with the bar.sync Triton adds around each.
    tma_latency_ns                       one program per SM with one TMA slot: copy a [128, 64] fp16 block (16
                                         KiB, a D=64 K/V block) from an L2-resident tensor, wait on its
                                         mbarrier, copy the next: one copy's issue-to-arrival.
    tma_l2_tbps                          the same with TMA_RING slots in flight per SM: bytes/s from L2 into
                                         shared memory over the GPU.

Each row is ok with its value, or failed with the one-line reason; without a GPU all are not_measured. The
numbers are the GPU's, not the attention kernels': nothing here is timed from or fitted to an attention kernel.
The kernels compile for sm_90 on the CPU (tests/test_microbench.py checks their PTX holds the instructions named
above).
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                               warpgroup_mma_wait)

from collectors.timing.failures import one_line
from kernels._gluon import mma_layout

# (D, BLOCK_N) pairs of the stages' key-block tiles (stages 1-4: 128; stage 5 also tunes BLOCK_N=64 at D=128):
# QKᵀ is an ss group of K=D, N=BLOCK_N; P·V an rs group of K=BLOCK_N, N=D.
TILES = ((64, 128), (128, 128), (128, 64))
LOOPS = (1024, 5120)  # loop lengths timed; the figure is (t(long) - t(short)) / (long - short)
WGMMA_PROGRAMS_PER_SM = 3
TMA_BLOCK = (128, 64)
TMA_RING = 4
TMA_TENSOR_BYTES = 16 << 20  # 16 MiB: far inside the 50-60 MiB L2, far beyond one SM's shared memory
SMEM_TILE = (64, 128)  # fp32, per program; two of them (64 KiB) so the loop's address changes every iteration
FMA_THREADS_PER_SM = 65536
UNROLL = 8  # dependent steps per loop iteration of the latency chains (the loop's counter and branch amortized)


def wgmma_shapes() -> list[tuple[str, int, int]]:
    """(ss|rs, N, K) of every wgmma group timed, in a stable order, no repeats."""
    out = []
    for d, bn in TILES:
        out += [("ss", bn, d), ("rs", d, bn)]
    return list(dict.fromkeys(out))


def wgmma_name(kind: str, n: int, k: int, what: str) -> str:
    return f"wgmma_{kind}_n{n}_k{k}_{what}"


def names() -> list[tuple[str, str, str]]:
    """(name, unit, how) of every micro-benchmark row, in the order they are measured."""
    rows = []
    for kind, n, k in wgmma_shapes():
        operands = "A, B in shared memory" if kind == "ss" else "A in registers, B in shared memory"
        group = f"{k // 16} x m64n{n}k16 fp16 ({operands}) then warpgroup_mma_wait(0)"
        rows.append((wgmma_name(kind, n, k, "latency_ns"), "ns",
                     f"dependent chain of [{group}], one warp group per SM"))
        rows.append((wgmma_name(kind, n, k, "tflops"), "TFLOP/s",
                     f"independent chains of [{group}], {WGMMA_PROGRAMS_PER_SM} programs x 2 warp groups per SM"))
    rows += [
        ("exp2_latency_ns", "ns", f"dependent x = exp2(-x) per thread ({UNROLL} a loop iteration), one warp per SM "
                                  "(neg + ex2.approx)"),
        ("fma_latency_ns", "ns", f"dependent x = x * a + b per thread ({UNROLL} a loop iteration), one warp per SM"),
        ("shfl_latency_ns", "ns", f"dependent shfl.sync.bfly per thread ({UNROLL} a loop iteration), one warp per SM"),
        ("fp32_fma_tflops", "TFLOP/s", f"8 independent FMA chains per thread, SMs x {FMA_THREADS_PER_SM} threads"),
        ("smem_tbps", "TB/s", "ld.shared.v4 of a [64, 128] fp32 tile per iteration, 4 warps, 3 programs per SM"),
        ("bar_sync_ns", "ns", "gl.thread_barrier() (bar.sync) of 8 warps in a loop, one program per SM"),
        ("mbarrier_wait_ready_ns", "ns", f"mbarrier.wait on a completed phase ({UNROLL} a loop iteration), 4 warps, "
                                         "one program per SM: what a wait costs when its data is there"),
        ("mbarrier_roundtrip_ns", "ns", "token passed 4-warp partition -> 1-warp partition -> back through two "
                                        "mbarriers (arrive, wait), one program per SM"),
        ("tma_latency_ns", "ns", f"TMA copy of a {TMA_BLOCK[0]}x{TMA_BLOCK[1]} fp16 block from L2, one slot, "
                                 "one program per SM: issue to mbarrier completion"),
        ("tma_l2_tbps", "TB/s", f"TMA copies of {TMA_BLOCK[0]}x{TMA_BLOCK[1]} fp16 blocks from a "
                                f"{TMA_TENSOR_BYTES >> 20} MiB tensor, {TMA_RING} in flight per SM"),
    ]
    return rows


# ---- kernels ---------------------------------------------------------------------------------------------------
@gluon.jit
def _wgmma_chain(a_ptr, b_ptr, out_ptr, loops, M: gl.constexpr, N: gl.constexpr, K: gl.constexpr,
                 A_IN_REGS: gl.constexpr, B_TRANSPOSED: gl.constexpr, A_SMEM: gl.constexpr, B_SMEM: gl.constexpr):
    """`loops` dependent wgmma groups of [M, K] x [K, N] (M = 64 per warp group) into one fp32 accumulator."""
    WARPS: gl.constexpr = M // 16
    acc_layout: gl.constexpr = mma_layout(WARPS, N, 16)
    ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [WARPS, 1], [1, 0])
    ra = gl.arange(0, M, layout=gl.SliceLayout(1, ld))
    ca = gl.arange(0, K, layout=gl.SliceLayout(0, ld))
    a_smem = gl.allocate_shared_memory(gl.float16, [M, K], A_SMEM,
                                       gl.load(a_ptr + gl.expand_dims(ra, 1) * K + gl.expand_dims(ca, 0)))
    if B_TRANSPOSED:  # K's tile [N, K], read through a K-major view, as QKᵀ reads it
        rb = gl.arange(0, N, layout=gl.SliceLayout(1, ld))
        cb = gl.arange(0, K, layout=gl.SliceLayout(0, ld))
        b_tile = gl.allocate_shared_memory(gl.float16, [N, K], B_SMEM,
                                           gl.load(b_ptr + gl.expand_dims(rb, 1) * K + gl.expand_dims(cb, 0)))
        b_op = b_tile.permute((1, 0))
    else:  # V's tile [K, N], as P·V reads it
        rb = gl.arange(0, K, layout=gl.SliceLayout(1, ld))
        cb = gl.arange(0, N, layout=gl.SliceLayout(0, ld))
        b_op = gl.allocate_shared_memory(gl.float16, [K, N], B_SMEM,
                                         gl.load(b_ptr + gl.expand_dims(rb, 1) * N + gl.expand_dims(cb, 0)))
    fence_async_shared()
    acc = gl.zeros([M, N], gl.float32, acc_layout)
    if A_IN_REGS:
        a_op = a_smem.load(gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2))
    else:
        a_op = a_smem
    for _ in range(loops):
        acc = warpgroup_mma(a_op, b_op, acc, is_async=True)
        acc = warpgroup_mma_wait(0, deps=(acc, ))
    # the whole accumulator is stored: a reduction here would be moved into the loop by LLVM (seen in the PTX),
    # putting a dependent chain of adds between one group's wait and the next group's issue
    rows = gl.arange(0, M, layout=gl.SliceLayout(1, acc_layout))
    cols = gl.arange(0, N, layout=gl.SliceLayout(0, acc_layout))
    gl.store(out_ptr + gl.program_id(0) * M * N + gl.expand_dims(rows, 1) * N + gl.expand_dims(cols, 0), acc)


@triton.jit
def _fma_chain(X, Y, loops, CHAINS: tl.constexpr, BLOCK: tl.constexpr, UNROLL: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs)
    a = 0.999 + x * 1e-6
    acc = tl.zeros([CHAINS, BLOCK], dtype=tl.float32) + x[None, :]
    for _ in range(loops):
        for _u in tl.static_range(UNROLL):  # UNROLL dependent steps an iteration: the loop's own cost is shared
            acc = acc * a[None, :] + 0.5  # CHAINS independent dependent chains per element
    tl.store(Y + offs, tl.sum(acc, axis=0))


@triton.jit
def _exp2_loop(X, Y, loops, BLOCK: tl.constexpr, UNROLL: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs)
    for _ in range(loops):
        for _u in tl.static_range(UNROLL):
            x = tl.math.exp2(-x)
    tl.store(Y + offs, x)


@triton.jit
def _shfl_loop(X, Y, loops, UNROLL: tl.constexpr):
    offs = tl.program_id(0) * 32 + tl.arange(0, 32)
    x = tl.load(X + offs)
    for _ in range(loops):
        for _u in tl.static_range(UNROLL):  # a butterfly exchange, as the softmax's row reductions issue it
            x = tl.inline_asm_elementwise("shfl.sync.bfly.b32 $0, $1, 1, 31, -1;", "=r,r", [x], dtype=tl.int32,
                                          is_pure=True, pack=1)
    tl.store(Y + offs, x)


@gluon.jit
def _mbarrier_ready_loop(out_ptr, loops, UNROLL: gl.constexpr):
    bar = gl.allocate_shared_memory(gl.int64, [1, 1], mbarrier.MBarrierLayout())
    mbarrier.init(bar.index(0), count=1)
    mbarrier.arrive(bar.index(0), count=1)  # phase 0 completes: every wait on it passes at once
    for _ in range(loops):
        for _u in gl.static_range(UNROLL):
            mbarrier.wait(bar.index(0), 0)
    gl.store(out_ptr + gl.program_id(0), loops)


@gluon.jit
def _smem_read(out_ptr, loops, ROWS: gl.constexpr, COLS: gl.constexpr):
    layout: gl.constexpr = gl.BlockedLayout([1, 4], [1, 32], [gl.num_warps(), 1], [1, 0])
    plain: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])
    r = gl.arange(0, ROWS, layout=gl.SliceLayout(1, layout))
    c = gl.arange(0, COLS, layout=gl.SliceLayout(0, layout))
    tile = gl.expand_dims(r, 1).to(gl.float32) + gl.expand_dims(c, 0).to(gl.float32)
    bufs = gl.allocate_shared_memory(gl.float32, [2, ROWS, COLS], plain)
    bufs.index(0).store(tile)
    bufs.index(1).store(tile * 0.5)
    gl.thread_barrier()
    acc = gl.zeros([ROWS, COLS], gl.float32, layout)
    for i in range(loops):
        acc += bufs.index(i % 2).load(layout)  # the address changes every iteration: the load stays in the loop
    # the whole tile is stored (a reduction here would be moved into the loop, as in _wgmma_chain)
    gl.store(out_ptr + gl.program_id(0) * ROWS * COLS + gl.expand_dims(r, 1) * COLS + gl.expand_dims(c, 0), acc)


@gluon.jit
def _bar_loop(out_ptr, loops):
    for _ in range(loops):
        gl.thread_barrier()
    gl.store(out_ptr + gl.program_id(0), loops)


@gluon.jit
def _ping(bars, loops):
    for i in range(loops):
        mbarrier.arrive(bars.index(0), count=1)
        mbarrier.wait(bars.index(1), i & 1)


@gluon.jit
def _pong(bars, loops):
    for i in range(loops):
        mbarrier.wait(bars.index(0), i & 1)
        mbarrier.arrive(bars.index(1), count=1)


@gluon.jit
def _mbarrier_pingpong(out_ptr, loops):
    bars = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(bars.index(0), count=1)
    mbarrier.init(bars.index(1), count=1)
    gl.warp_specialize([(_ping, (bars, loops)), (_pong, (bars, loops))], [1], [24])
    gl.store(out_ptr + gl.program_id(0), loops)


@gluon.jit
def _tma_stream(desc, out_ptr, loops, n_blocks, RING: gl.constexpr):
    BLOCK_R: gl.constexpr = desc.block_type.shape[0]
    bufs = gl.allocate_shared_memory(desc.dtype, [RING] + desc.block_type.shape, desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [RING, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(RING):
        mbarrier.init(ready.index(s), count=1)
    base = gl.program_id(0) * 7919  # each program walks its own stride of blocks
    for s in gl.static_range(RING):
        mbarrier.expect(ready.index(s), desc.block_type.nbytes)
        tma.async_copy_global_to_shared(desc, [((base + s) % n_blocks) * BLOCK_R, 0], ready.index(s), bufs.index(s))
    for i in range(loops):
        slot = i % RING
        mbarrier.wait(ready.index(slot), (i // RING) & 1)
        mbarrier.expect(ready.index(slot), desc.block_type.nbytes)
        tma.async_copy_global_to_shared(desc, [((base + i + RING) % n_blocks) * BLOCK_R, 0], ready.index(slot),
                                        bufs.index(slot))
    for i in range(loops, loops + RING):  # every copy in flight lands before the program ends
        mbarrier.wait(ready.index(i % RING), (i // RING) & 1)
    gl.store(out_ptr + gl.program_id(0), loops)


# ---- host side -------------------------------------------------------------------------------------------------
class Bench:
    """One micro-benchmark: a launch per loop length, and the row's value from the seconds one extra iteration
    adds (`per_iteration`: work of one iteration over the whole grid, in the unit's numerator, or None for a
    latency in ns)."""

    def __init__(self, name: str, kernel, grid: tuple, args, kwargs: dict, per_iteration: float | None = None,
                 steps: int = 1):
        self.name, self.kernel, self.grid, self.args, self.kwargs = name, kernel, grid, args, kwargs
        self.per_iteration, self.steps = per_iteration, steps

    def launch(self, loops: int):
        return self.kernel[self.grid](*self.args(loops), **self.kwargs)

    def value(self, seconds_per_iteration: float) -> float:
        if self.per_iteration is None:  # a latency: one of the iteration's `steps` dependent steps
            return seconds_per_iteration / self.steps * 1e9
        return self.per_iteration / seconds_per_iteration * 1e-12  # TFLOP/s, TB/s


def _wgmma_smem_layouts(kind: str, n: int, k: int, m: int):
    a = gl.NVMMASharedLayout.get_default_for([m, k], gl.float16)
    b = gl.NVMMASharedLayout.get_default_for([n, k] if kind == "ss" else [k, n], gl.float16)
    return a, b


def benches(sms: int, device: str = "cuda") -> list[Bench]:
    """Every micro-benchmark, with its inputs allocated on `device` ("cpu" only to compile them, as the tests do)."""
    import torch
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    out: list[Bench] = []
    f16 = dict(device=device, dtype=torch.float16)
    for kind, n, k in wgmma_shapes():
        a = torch.randn(128, k, **f16) * 0.1
        b = torch.randn(max(n, k), max(n, k), **f16) * 0.1
        for what, m, programs in (("latency_ns", 64, sms), ("tflops", 128, sms * WGMMA_PROGRAMS_PER_SM)):
            a_sl, b_sl = _wgmma_smem_layouts(kind, n, k, m)
            res = torch.empty(programs * m * n, device=device, dtype=torch.float32)
            flops = None if what == "latency_ns" else 2.0 * m * n * k * programs
            out.append(Bench(wgmma_name(kind, n, k, what), _wgmma_chain, (programs, ),
                             lambda loops, a=a, b=b, res=res: (a, b, res, loops),
                             dict(M=m, N=n, K=k, A_IN_REGS=kind == "rs", B_TRANSPOSED=kind == "ss", A_SMEM=a_sl,
                                  B_SMEM=b_sl, num_warps=m // 16), flops))
    x1 = torch.rand(sms * 32, device=device, dtype=torch.float32)
    y1 = torch.empty_like(x1)
    out.append(Bench("exp2_latency_ns", _exp2_loop, (sms, ), lambda loops: (x1, y1, loops),
                     dict(BLOCK=32, UNROLL=UNROLL, num_warps=1), steps=UNROLL))
    out.append(Bench("fma_latency_ns", _fma_chain, (sms, ), lambda loops: (x1, y1, loops),
                     dict(CHAINS=1, BLOCK=32, UNROLL=UNROLL, num_warps=1), steps=UNROLL))
    xi = torch.arange(sms * 32, device=device, dtype=torch.int32)
    yi = torch.empty_like(xi)
    out.append(Bench("shfl_latency_ns", _shfl_loop, (sms, ), lambda loops: (xi, yi, loops),
                     dict(UNROLL=UNROLL, num_warps=1), steps=UNROLL))
    xs = torch.rand(sms * FMA_THREADS_PER_SM, device=device, dtype=torch.float32)
    ys = torch.empty_like(xs)
    out.append(Bench("fp32_fma_tflops", _fma_chain, (sms * FMA_THREADS_PER_SM // 1024, ),
                     lambda loops: (xs, ys, loops), dict(CHAINS=8, BLOCK=1024, UNROLL=1, num_warps=4),
                     2.0 * 8 * xs.numel()))
    rows, cols = SMEM_TILE
    sres = torch.empty(sms * 3 * rows * cols, device=device, dtype=torch.float32)
    out.append(Bench("smem_tbps", _smem_read, (sms * 3, ), lambda loops: (sres, loops),
                     dict(ROWS=rows, COLS=cols, num_warps=4), float(sms * 3 * rows * cols * 4)))
    ires = torch.empty(sms, device=device, dtype=torch.int32)
    out.append(Bench("bar_sync_ns", _bar_loop, (sms, ), lambda loops: (ires, loops), dict(num_warps=8)))
    out.append(Bench("mbarrier_wait_ready_ns", _mbarrier_ready_loop, (sms, ), lambda loops: (ires, loops),
                     dict(UNROLL=UNROLL, num_warps=4), steps=UNROLL))
    out.append(Bench("mbarrier_roundtrip_ns", _mbarrier_pingpong, (sms, ), lambda loops: (ires, loops),
                     dict(num_warps=4)))
    br, bc = TMA_BLOCK
    n_blocks = TMA_TENSOR_BYTES // (br * bc * 2)
    src = torch.zeros(n_blocks * br, bc, **f16)
    layout = gl.NVMMASharedLayout.get_default_for([br, bc], gl.float16)
    desc = TensorDescriptor(src, list(src.shape), list(src.stride()), [br, bc], layout)
    for name, ring in (("tma_latency_ns", 1), ("tma_l2_tbps", TMA_RING)):
        out.append(Bench(name, _tma_stream, (sms, ), lambda loops: (desc, ires, loops, n_blocks),
                         dict(RING=ring, num_warps=4), None if ring == 1 else float(sms * br * bc * 2)))
    return out


def _seconds_per_iteration(bench: Bench, median_ms) -> float:
    short, long = LOOPS
    times = {}
    for loops in LOOPS:
        bench.launch(loops)  # compile and warm up outside the timing
        times[loops] = median_ms(lambda loops=loops: bench.launch(loops))
    extra = (times[long] - times[short]) * 1e-3
    if not extra > 0:
        raise RuntimeError(f"{long} loops took no longer than {short} ({times[long]:.4f} vs {times[short]:.4f} ms)")
    return extra / (long - short)


def measure(row, median_ms, progress=None) -> list[dict]:
    """Every micro-benchmark row on the current GPU (`row(name, value, unit, how, status, error)` makes a row of
    the ceilings table; `median_ms(fn)` times a call); a failing one is `failed` with its one-line reason."""
    import torch

    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    how = {n: (unit, text) for n, unit, text in names()}
    try:
        todo = benches(sms)
    except Exception as exc:  # inputs could not be made: every row says so
        return [row(n, None, u, h, "failed", one_line(exc)) for n, (u, h) in how.items()]
    rows = []
    for bench in todo:
        unit, text = how[bench.name]
        if progress is not None:
            progress(f"micro-benchmark {bench.name}")
        try:
            rows.append(row(bench.name, float(bench.value(_seconds_per_iteration(bench, median_ms))), unit, text))
        except Exception as exc:
            rows.append(row(bench.name, None, unit, text, "failed", one_line(exc)))
    return rows
