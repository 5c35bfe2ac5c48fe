"""Stage 5, full: every technique of stages 1-4 as a switch of one Gluon kernel, tuned per key.

The kernel is stage 4's (TMA producer partition, K/V ring, persistent heaviest-first schedule, two consumer warp
groups in ping-pong, P·V of one block under the softmax of the next) with each technique a compile-time switch:
- masked_loop=False masks only the diagonal and tail key blocks (stage 2); True masks every block (stage 1);
- persistent: about one program per SM walking the work items (stage 3), or one program per work item;
- pingpong: two consumer warp groups of BLOCK_M/2 rows each, ordered by mbarriers so one's softmax runs under the
  other's wgmmas (stage 4), or one 8-warp consumer sharing the 128 rows (stages 1-3);
- overlap: the QKᵀ of block j+1 and the P·V of block j issued together, asynchronously, the softmax of j+1 run
  while P·V is in flight (stage 4), or each wgmma waited for at once (stages 1-3);
plus the tuning knobs BLOCK_N, BLOCK_M (two or three consumer groups, and so their register budget), the K/V ring
depth and the Q ring depth (q_ring=2: the next work item's Q is loaded while this one runs), and issue 26's levers,
off in the untuned default (kernels/stage5_space.py, which holds the config, the candidates and the switches):
- dynamic: each program's next work item comes from an atomic counter instead of the static grid stride (the
  producer fetches and publishes it to the consumers; kernels/_gluon.py `next_tile`);
- lean_softmax: the row sum is kept per lane and reduced once per work item, the in-lane max and sum folded in
  independent chains; lazy_rescale: O is rescaled only when a row's max grows past a threshold (`softmax_block`).
The tuner (kernels/tuner.py) times the candidates per key and keeps the fastest correct one.
What stays on in every variant: the TMA producer partition with its few registers (stage 1; the stage chain
0 -> 1 measures it, see NOT_ABLATABLE).

Measured on the lent H200 (2026-12-02), fp16 unless named:
- seed config: 350 TFLOP/s against cuDNN's 381 (0.92x) in runs/20261202-031456-seed-nvidia-h200 (before the Q
  ring), 375 against 390 (0.96x) in benchmarks/h200/plan-fp16-qring.csv (the tuner took q_ring=2): above the
  issue's floor of 0.95x, short of its 1.0x and of the plan's 1.05x;
- fa3-grid (24 configs): median 0.95x cuDNN (0.43-1.19) in benchmarks/h200/fa3-grid-fp16-8c30e22.csv, 0.94x in
  plan-fp16-qring.csv; bf16 0.93x over the 21 configs benchmarks/h200/fa3-grid-bf16-qring-partial.csv holds.
  At least cuDNN's speed from S=4096 up (up to 1.19x at S=16384 D=128 causal); far below it at S=512 (0.43-0.76x)
  and at B=1 of the seed config (0.25-0.33x), where the kernel runs for less than the host launch path takes
  (245 us a call against cuDNN's 41, the run's launch table), so those timings measure Python, not the GPU;
- fp8 (e4m3, overlap=False configs): 298 TFLOP/s at the seed config, 600 at B2 H16 S8192 D128 causal
  (benchmarks/h200/probes/20261202-fp8-probe.log; the input transpose of V included).
The ablation at the seed config (the run above): masks only on diagonal and tail blocks +26% (flip), persistence
+14%, ping-pong +23%, the asynchronous overlap +4% best against best. What limits it, per Nsight Compute at the
seed config: `barrier` is the top stall (34%: the partition-wide bar.sync Gluon puts before every mbarrier wait
and arrive, three per key block, census `loop_bar_sync`), tensor pipe 42% of peak against cuDNN's 46%, 7.4 warp
cycles per issued instruction against cuDNN's 4.6, at 18.7% occupancy (12 warps, 168 registers at launch, 240 a
consumer thread after setmaxnreg); HBM reads 0.28 GB against cuDNN's 0.20.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.profiler.language as pl
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, warpgroup_mma, warpgroup_mma_wait

from ._gluon import (LOG2E, NO_INTERPRETER, PRODUCER_REGS, descriptor, finish_rowsum, fresh_rowsum, fresh_state,
                     kernel_maxnreg, key_blocks, mask_scores, mma_layout, next_tile, online_block, p_operand_layout,
                     publish_tile, read_tile, require_sm90, store_output, transposed_v, v_descriptor, v_operand,
                     work_item)
from ._fastlaunch import LaunchCache, WorkCounters, input_key, launch_kept
from ._launch import (FP8_DTYPES, check_inputs, empty_output, interpreting, KernelUnsupported, l2_group,
                      launch_or_refuse, NoInterpreter, sm_count)
from .stage5_space import Config, NOT_ABLATABLE, SWITCHES, candidate_configs, register_split  # noqa: F401
from .stage4_overlap import _issue_turn_pass, _issue_turn_wait, _overlapped_blocks, _produce_tile
from .tuner import Tuner, config_from_report as parse_report, tune_key

NAME = "stage5_full"


@gluon.jit
def _producer(desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, tile_ids, work_ptr,
              B, H, GROUP, N_CTX, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, RING: gl.constexpr,
              CONSUMERS: gl.constexpr, CAUSAL: gl.constexpr, Q_RING: gl.constexpr, DYNAMIC: gl.constexpr):
    # stage 4's producer (the static grid-stride walk over the work items), or the dynamic schedule's: items fetched
    # from the launch's counter, each published to the consumers beside its Q copy (kernels/_gluon.py)
    num_m = gl.cdiv(N_CTX, BLOCK_M)
    it = 0
    t = 0
    if DYNAMIC:
        total = num_m * B * H
        tile = gl.program_id(0)
        while tile < total:
            it = _produce_tile(desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty,
                               tile, t, it, B, H, GROUP, N_CTX, BLOCK_M, BLOCK_N, RING, CONSUMERS, CAUSAL, Q_RING,
                               tile_ids)
            t += 1
            tile = next_tile(work_ptr, total)
        for c in gl.static_range(CONSUMERS):  # no item left: each consumer's next Q slot says so, with no copy
            qi = c + CONSUMERS * (t % Q_RING)
            mbarrier.wait(q_empty.index(qi), ((t // Q_RING) & 1) ^ 1)
            publish_tile(tile_ids, qi, tile)
            mbarrier.arrive(q_ready.index(qi), count=1)
    else:
        for tile in range(gl.program_id(0), num_m * B * H, gl.num_programs(0)):
            it = _produce_tile(desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty,
                               tile, t, it, B, H, GROUP, N_CTX, BLOCK_M, BLOCK_N, RING, CONSUMERS, CAUSAL, Q_RING)
            t += 1


@gluon.jit
def _consumer(q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh, som,
              qk_scale, B, H, GROUP, N_CTX, C: gl.constexpr, HEAD_D: gl.constexpr, BLOCK_M: gl.constexpr,
              BLOCK_N: gl.constexpr, RING: gl.constexpr, CONSUMERS: gl.constexpr, WARPS: gl.constexpr,
              CAUSAL: gl.constexpr, OVERLAP: gl.constexpr, MASKED_LOOP: gl.constexpr, Q_RING: gl.constexpr,
              DYNAMIC: gl.constexpr, LEAN: gl.constexpr, LAZY: gl.constexpr):
    num_m = gl.cdiv(N_CTX, BLOCK_M)
    it = 0
    t = 0
    if DYNAMIC:  # the work items the producer publishes, until one past the last
        total = num_m * B * H
        pl.enter_scope("consumer.q_wait")
        mbarrier.wait(q_ready.index(C), 0)
        pl.exit_scope("consumer.q_wait")
        tile = read_tile(tile_ids, C)
        while tile < total:
            it = _consumer_tile(q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, o_ptr, sob, soh,
                                som, qk_scale, tile, t, it, B, H, GROUP, N_CTX, C, HEAD_D, BLOCK_M, BLOCK_N, RING,
                                CONSUMERS, WARPS, CAUSAL, OVERLAP, MASKED_LOOP, Q_RING, True, LEAN, LAZY)
            t += 1
            qi = C + CONSUMERS * (t % Q_RING)
            pl.enter_scope("consumer.q_wait")
            mbarrier.wait(q_ready.index(qi), (t // Q_RING) & 1)
            pl.exit_scope("consumer.q_wait")
            tile = read_tile(tile_ids, qi)
    else:
        for tile in range(gl.program_id(0), num_m * B * H, gl.num_programs(0)):
            it = _consumer_tile(q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, o_ptr, sob, soh,
                                som, qk_scale, tile, t, it, B, H, GROUP, N_CTX, C, HEAD_D, BLOCK_M, BLOCK_N, RING,
                                CONSUMERS, WARPS, CAUSAL, OVERLAP, MASKED_LOOP, Q_RING, False, LEAN, LAZY)
            t += 1


@gluon.jit
def _consumer_tile(q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, o_ptr, sob, soh, som, qk_scale,
                   tile, t, it, B, H, GROUP, N_CTX, C: gl.constexpr, HEAD_D: gl.constexpr, BLOCK_M: gl.constexpr,
                   BLOCK_N: gl.constexpr, RING: gl.constexpr, CONSUMERS: gl.constexpr, WARPS: gl.constexpr,
                   CAUSAL: gl.constexpr, OVERLAP: gl.constexpr, MASKED_LOOP: gl.constexpr, Q_RING: gl.constexpr,
                   Q_WAITED: gl.constexpr, LEAN: gl.constexpr, LAZY: gl.constexpr):
    """Work item `tile`, this consumer's t-th (its rows of the query tile against every key block it reads); returns
    the ring counter. Q_WAITED: the caller has waited for the Q slot already (the dynamic schedule)."""
    ROWS: gl.constexpr = BLOCK_M // CONSUMERS
    dtype: gl.constexpr = q_bufs.dtype
    bits: gl.constexpr = dtype.primitive_bitwidth
    s_layout: gl.constexpr = mma_layout(WARPS, BLOCK_N, bits)
    o_layout: gl.constexpr = mma_layout(WARPS, HEAD_D, bits)
    p_layout: gl.constexpr = p_operand_layout(o_layout, bits)
    s_zero = gl.zeros([ROWS, BLOCK_N], gl.float32, s_layout)
    num_m = gl.cdiv(N_CTX, BLOCK_M)
    m, b, h = work_item(tile, num_m, B, H, GROUP, CAUSAL)
    tile_m0 = m * BLOCK_M
    rows_m0 = tile_m0 + C * ROWS
    n_blocks, n_unmasked = key_blocks(tile_m0, rows_m0, N_CTX, BLOCK_M, ROWS, BLOCK_N, CAUSAL)
    if MASKED_LOOP:
        n_unmasked = 0
    qi = C + CONSUMERS * (t % Q_RING)
    pl.enter_scope("consumer.tile")
    if not Q_WAITED:
        pl.enter_scope("consumer.q_wait")
        mbarrier.wait(q_ready.index(qi), (t // Q_RING) & 1)
        pl.exit_scope("consumer.q_wait")
    q = q_bufs.index(qi).reshape([ROWS, HEAD_D])
    m_i, l_i, acc = fresh_state(ROWS, HEAD_D, s_layout, o_layout)
    l_i = fresh_rowsum(s_zero, l_i, LEAN)
    if OVERLAP:
        acc, m_i, l_i, it = _overlapped_blocks(q, k_bufs, v_bufs, kv_ready, kv_empty, turn, s_zero, m_i, l_i, acc, it,
                                               n_blocks, n_unmasked, rows_m0, qk_scale, N_CTX, C, CONSUMERS, HEAD_D,
                                               BLOCK_N, RING, CAUSAL, s_layout, o_layout, p_layout, LEAN, LAZY)
    else:
        for j in range(n_blocks):
            slot = it % RING
            pl.enter_scope("consumer.kv_wait")
            mbarrier.wait(kv_ready.index(slot), (it // RING) & 1)
            pl.exit_scope("consumer.kv_wait")
            k = k_bufs.index(slot).reshape([BLOCK_N, HEAD_D]).permute((1, 0))
            v = v_operand(v_bufs, slot, BLOCK_N, HEAD_D)
            _issue_turn_wait(turn, it, C, CONSUMERS)
            pl.enter_scope("consumer.qk")
            s = warpgroup_mma(q, k, s_zero, use_acc=False, is_async=True)
            _issue_turn_pass(turn, C, CONSUMERS)
            s = warpgroup_mma_wait(0, deps=(s, ))
            pl.exit_scope("consumer.qk")
            if j >= n_unmasked:
                pl.enter_scope("consumer.mask")
                s = mask_scores(s, rows_m0, j * BLOCK_N, N_CTX, ROWS, BLOCK_N, CAUSAL, s_layout)
                pl.exit_scope("consumer.mask")
            p_op, m_i, l_i, acc = online_block(s, m_i, l_i, acc, qk_scale, dtype, p_layout, o_layout, LEAN, LAZY)
            pl.enter_scope("consumer.pv")
            acc = warpgroup_mma(p_op, v, acc, is_async=True)
            acc = warpgroup_mma_wait(0, deps=(acc, ))
            pl.exit_scope("consumer.pv")
            mbarrier.arrive(kv_empty.index(slot), count=1)
            it += 1
    pl.enter_scope("consumer.epilogue")
    mbarrier.arrive(q_empty.index(qi), count=1)
    l_i = finish_rowsum(l_i, s_layout, LEAN)
    store_output(o_ptr, acc, l_i, b, h, rows_m0, N_CTX, sob, soh, som, ROWS, HEAD_D, o_layout)
    pl.exit_scope("consumer.epilogue")
    pl.exit_scope("consumer.tile")
    return it


@gluon.jit(do_not_specialize=["B", "H", "GROUP"])
def _attn_fwd(desc_q, desc_k, desc_v, o_ptr, sob, soh, som, qk_scale, B, H, GROUP, N_CTX, work_ptr,
              HEAD_D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, RING: gl.constexpr,
              CONSUMERS: gl.constexpr, CAUSAL: gl.constexpr, OVERLAP: gl.constexpr, MASKED_LOOP: gl.constexpr,
              CONSUMER_REGS: gl.constexpr, PRODUCER_REGS: gl.constexpr, Q_RING: gl.constexpr,
              DYNAMIC: gl.constexpr = False, LEAN: gl.constexpr = False, LAZY: gl.constexpr = False):
    # work_ptr: the dynamic schedule's counter (an int32 that is zero at launch), None without it
    dtype: gl.constexpr = desc_q.dtype
    QS: gl.constexpr = CONSUMERS * Q_RING  # Q buffers: Q_RING per consumer
    q_bufs = gl.allocate_shared_memory(dtype, [QS] + desc_q.block_type.shape, desc_q.layout)
    k_bufs = gl.allocate_shared_memory(dtype, [RING] + desc_k.block_type.shape, desc_k.layout)
    v_bufs = gl.allocate_shared_memory(dtype, [RING] + desc_v.block_type.shape, desc_v.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [QS, 1], mbarrier.MBarrierLayout())
    q_empty = gl.allocate_shared_memory(gl.int64, [QS, 1], mbarrier.MBarrierLayout())
    kv_ready = gl.allocate_shared_memory(gl.int64, [RING, 1], mbarrier.MBarrierLayout())
    kv_empty = gl.allocate_shared_memory(gl.int64, [RING, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [3, 1], mbarrier.MBarrierLayout())
    if DYNAMIC:  # each Q slot's work item, written by the producer (kernels/_gluon.py `publish_tile`)
        tile_ids = gl.allocate_shared_memory(gl.int32, [QS, 1], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    else:
        tile_ids = q_ready  # unused: the static schedule computes every item from the program id
    for i in gl.static_range(QS):
        mbarrier.init(q_ready.index(i), count=1)
        mbarrier.init(q_empty.index(i), count=1)
    for i in gl.static_range(RING):
        mbarrier.init(kv_ready.index(i), count=1)
        mbarrier.init(kv_empty.index(i), count=CONSUMERS)  # every consumer hands the slot back
    for i in gl.static_range(3):
        mbarrier.init(turn.index(i), count=1)
    if CONSUMERS == 3:
        gl.warp_specialize([
            (_consumer, (q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh,
                         som, qk_scale, B, H, GROUP, N_CTX, 0, HEAD_D, BLOCK_M, BLOCK_N, RING, CONSUMERS, 4, CAUSAL,
                         OVERLAP, MASKED_LOOP, Q_RING, DYNAMIC, LEAN, LAZY)),
            (_consumer, (q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh,
                         som, qk_scale, B, H, GROUP, N_CTX, 1, HEAD_D, BLOCK_M, BLOCK_N, RING, CONSUMERS, 4, CAUSAL,
                         OVERLAP, MASKED_LOOP, Q_RING, DYNAMIC, LEAN, LAZY)),
            (_consumer, (q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh,
                         som, qk_scale, B, H, GROUP, N_CTX, 2, HEAD_D, BLOCK_M, BLOCK_N, RING, CONSUMERS, 4, CAUSAL,
                         OVERLAP, MASKED_LOOP, Q_RING, DYNAMIC, LEAN, LAZY)),
            (_producer, (desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty,
                         tile_ids, work_ptr, B, H, GROUP, N_CTX, BLOCK_M, BLOCK_N, RING, CONSUMERS, CAUSAL, Q_RING,
                         DYNAMIC)),
        ], [4, 4, 1], [CONSUMER_REGS, CONSUMER_REGS, PRODUCER_REGS])
    elif CONSUMERS == 2:
        gl.warp_specialize([
            (_consumer, (q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh,
                         som, qk_scale, B, H, GROUP, N_CTX, 0, HEAD_D, BLOCK_M, BLOCK_N, RING, CONSUMERS, 4, CAUSAL,
                         OVERLAP, MASKED_LOOP, Q_RING, DYNAMIC, LEAN, LAZY)),
            (_consumer, (q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh,
                         som, qk_scale, B, H, GROUP, N_CTX, 1, HEAD_D, BLOCK_M, BLOCK_N, RING, CONSUMERS, 4, CAUSAL,
                         OVERLAP, MASKED_LOOP, Q_RING, DYNAMIC, LEAN, LAZY)),
            (_producer, (desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty,
                         tile_ids, work_ptr, B, H, GROUP, N_CTX, BLOCK_M, BLOCK_N, RING, CONSUMERS, CAUSAL, Q_RING,
                         DYNAMIC)),
        ], [4, 1], [CONSUMER_REGS, PRODUCER_REGS])
    else:
        gl.warp_specialize([
            (_consumer, (q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty, turn, tile_ids, o_ptr, sob, soh,
                         som, qk_scale, B, H, GROUP, N_CTX, 0, HEAD_D, BLOCK_M, BLOCK_N, RING, CONSUMERS, 8, CAUSAL,
                         OVERLAP, MASKED_LOOP, Q_RING, DYNAMIC, LEAN, LAZY)),
            (_producer, (desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_ready, q_empty, kv_ready, kv_empty,
                         tile_ids, work_ptr, B, H, GROUP, N_CTX, BLOCK_M, BLOCK_N, RING, CONSUMERS, CAUSAL, Q_RING,
                         DYNAMIC)),
        ], [1], [PRODUCER_REGS])


def launch(cfg: Config, q, k, v, o, sm_scale: float, causal: bool):
    grid, args, kwargs = launch_arguments(cfg, q, k, v, o, sm_scale, causal)
    return _attn_fwd[grid](*args, **kwargs)


def launch_arguments(cfg: Config, q, k, v, o, sm_scale: float, causal: bool) -> tuple[tuple, tuple, dict]:
    """(grid, positional arguments, keyword arguments) of the kernel launch of one config."""
    B, H, S, D = q.shape
    consumers = cfg.consumers
    if consumers not in (1, 2, 3) or cfg.BLOCK_M % consumers:
        raise ValueError(f"stage5_full: {cfg} needs BLOCK_M of 128 or 192 with pingpong, 128 without.")
    warps, consumer_regs = register_split(consumers)
    tiles = triton.cdiv(S, cfg.BLOCK_M) * B * H
    grid = min(tiles, sm_count(q.device)) if cfg.persistent else tiles
    if q.dtype in FP8_DTYPES:  # 8-bit V goes in transposed (wgmma's 8-bit operands are K-major only)
        if cfg.overlap:
            raise KernelUnsupported(f"{NAME}: {cfg} cannot run 8-bit inputs: Triton 3.6 cannot keep the 8-bit P "
                                    "operand of an asynchronous P·V alive across the softmax (LLVM ERROR: "
                                    "Unexpected bitwidth in WGMMAWaitGroupOp: 8); overlap=False configs run fp8.")
        desc_v = v_descriptor(transposed_v(v), S, cfg.BLOCK_N)
    else:
        desc_v = descriptor(v, cfg.BLOCK_N)
    args = (descriptor(q, cfg.BLOCK_M // consumers), descriptor(k, cfg.BLOCK_N), desc_v,
            o, o.stride(0), o.stride(1), o.stride(2), sm_scale * LOG2E, B, H,
            l2_group(B, H, S, D, k.element_size(), k.device), S, WORK.get(q.device) if cfg.dynamic else None)
    kwargs = dict(HEAD_D=D, BLOCK_M=cfg.BLOCK_M, BLOCK_N=cfg.BLOCK_N, RING=cfg.ring, CONSUMERS=consumers,
                  CAUSAL=causal, OVERLAP=cfg.overlap, MASKED_LOOP=cfg.masked_loop, CONSUMER_REGS=consumer_regs,
                  PRODUCER_REGS=PRODUCER_REGS, Q_RING=cfg.q_ring, num_warps=8 if consumers == 1 else 4,
                  maxnreg=kernel_maxnreg(warps))
    # the levers' constexprs only when on: the default config binds exactly the arguments it bound before them
    kwargs.update({key: True for key, on in (("DYNAMIC", cfg.dynamic), ("LEAN", cfg.lean_softmax),
                                             ("LAZY", cfg.lazy_rescale)) if on})
    return (grid, ), args, kwargs


PINNED_CONFIG: Config | None = None


def _reference(q, k, v, causal: bool, sm_scale: float):
    from .stage0_baseline import attention as stage0

    if q.dtype in FP8_DTYPES:  # every e4m3 value is exact in fp16, which stage 0 runs
        q, k, v = (t.to(torch.float16) for t in (q, k, v))
    return stage0(q, k, v, causal=causal, sm_scale=sm_scale)


# `name=value` of every Config field in a report (derived from the fields: a new knob is read back without an edit)
def config_from_report(text: str | None) -> Config | None:
    """The Config named in a `str(Config)` report (a run's `tuned_config` column); None if it names none."""
    return parse_report(Config, text)


TUNER = Tuner(NAME, candidate_configs, launch, config_from_report, _reference)


last_tuned_config = TUNER.last_tuned_config
chosen_config = TUNER.chosen_config
tuned_config_for = TUNER.tuned_config_for
tuning_report = TUNER.report


def CENSUS_CONFIG(config) -> Config:
    """The config an sm_90 census compiles when no run says which one was timed: stage 4's (Config()), without the
    asynchronous overlap for fp8 (the configs that run 8-bit inputs)."""
    return Config(overlap=False) if getattr(config, "dtype", None) == "fp8" else Config()


# Prepared launches of repeated calls, and the dynamic schedule's counters (kernels/_fastlaunch.py).
FAST = LaunchCache()
WORK = WorkCounters()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · sm_scale [+ causal mask]) v for [B, H, S, D] inputs; returns a contiguous [B, H, S, D].

    fp16, bf16, and fp8 (torch.float8_e4m3fn, the plan's stretch goal): fp8 inputs give a bf16 output, P is rounded
    to e4m3 for P·V (as FlashAttention-3's fp8 forward does), and V is transposed in the call (one extra pass).
    A repeated 16-bit call with the same inputs (pointers, shapes, strides, dtype), the same pinned config and the
    config its key was tuned to launches its prepared state (kernels/_fastlaunch.py); 8-bit inputs always take the
    full path (V is transposed into a new tensor each call)."""
    if interpreting():
        check_inputs(q, k, v, causal, sm_scale, tma=True, fp8=True)
        raise NoInterpreter(NO_INTERPRETER.format(stage=NAME))
    key = input_key(q, k, v, causal, sm_scale, PINNED_CONFIG)
    state = FAST.get(key)
    if state is not None and (PINNED_CONFIG is not None or TUNER.tuned.get(tune_key(q, causal)) is state.tag):
        return state(q)
    sm_scale = check_inputs(q, k, v, causal, sm_scale, tma=True, fp8=True)
    require_sm90(NAME, q.device)
    o = empty_output(q)
    cfg = TUNER.choose(q, k, v, o, sm_scale, causal, pinned=PINNED_CONFIG)
    if q.dtype in FP8_DTYPES:
        launch_or_refuse(NAME, launch, cfg, q, k, v, o, sm_scale, causal)
        return o
    grid, args, kwargs = launch_arguments(cfg, q, k, v, o, sm_scale, causal)
    record = list(TUNER.last_run)
    launch_kept(FAST, key, functools.partial(launch_or_refuse, NAME), _attn_fwd, grid, args, kwargs, o,
                empty_output, note=lambda: TUNER.last_run.__setitem__(slice(None), record), tag=cfg,
                counters=WORK, counter=args[12])
    return o
