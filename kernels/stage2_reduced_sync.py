"""Stage 2, reduced synchronization: stage 1 with only the hand-offs the K/V ring needs, and masks only where a
key block needs one.

Against stage 1 (kernels/stage1_warpspec.py), two changes and nothing else:
- one mbarrier pair per ring slot: the producer fills K and V of a slot behind one "ready" barrier (one expect of
  both copies' bytes) and the consumer hands the slot back with one "empty" arrive after P·V, where stage 1 has
  a ready and an empty barrier for K and for V (four waits/arrives per key block on the consumer side, two here;
  the census counts `mbarrier` instructions per math-loop iteration);
- the causal and tail masks are applied only to the key blocks that need them (the diagonal blocks of a causal
  tile, the block holding key S-1), a uniform branch per key block; stage 1 masks every block.
This is what the document's constraint #3 (synchronization) can mean here: the kernel has no `__syncthreads` to
remove (a Gluon partition synchronizes only its own warps, around its mbarrier hand-offs), so
what is reduced is the per-iteration hand-off traffic and the mask work.
Measured on the lent H200 (2026-12-02; seed: runs/20261202-031456-seed-nvidia-h200; fa3-grid:
benchmarks/h200/fa3-grid-fp16-8c30e22.csv): 278 against stage 1's 206 TFLOP/s at the seed config (1.35x), median
1.09x over 24 fa3-grid configs (fp16, lowest 1.04x). The ablation credits most of it to the masks: masking every
block costs 26% at the seed config (stage 5's flip).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.profiler.language as pl
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait

from ._gluon import (LOG2E, NO_INTERPRETER, PRODUCER_REGS, descriptor, fresh_state, kernel_maxnreg, key_blocks,
                     mask_scores, mma_layout, online_block, p_operand_layout, require_sm90, store_output, work_item)
from ._fastlaunch import LaunchCache, input_key, launch_kept
from ._launch import check_inputs, empty_output, interpreting, l2_group, launch_or_refuse, NoInterpreter

NAME = "stage2_reduced_sync"


@gluon.jit
def _producer(desc_q, desc_k, desc_v, q_buf, k_bufs, v_bufs, q_ready, kv_ready, kv_empty, B, H, GROUP, N_CTX,
              BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, RING: gl.constexpr, CAUSAL: gl.constexpr):
    m, b, h = work_item(gl.program_id(0), gl.cdiv(N_CTX, BLOCK_M), B, H, GROUP, CAUSAL)
    tile_m0 = m * BLOCK_M
    n_blocks, _ = key_blocks(tile_m0, tile_m0, N_CTX, BLOCK_M, BLOCK_M, BLOCK_N, CAUSAL)
    pl.enter_scope("producer.tile")
    pl.enter_scope("producer.q_issue")
    mbarrier.expect(q_ready.index(0), desc_q.block_type.nbytes)
    tma.async_copy_global_to_shared(desc_q, [b, h, tile_m0, 0], q_ready.index(0), q_buf.index(0))
    pl.exit_scope("producer.q_issue")
    for j in range(n_blocks):
        slot = j % RING
        pl.enter_scope("producer.kv_wait")
        mbarrier.wait(kv_empty.index(slot), ((j // RING) & 1) ^ 1)
        pl.exit_scope("producer.kv_wait")
        pl.enter_scope("producer.kv_issue")
        mbarrier.expect(kv_ready.index(slot), desc_k.block_type.nbytes + desc_v.block_type.nbytes)
        tma.async_copy_global_to_shared(desc_k, [b, h, j * BLOCK_N, 0], kv_ready.index(slot), k_bufs.index(slot))
        tma.async_copy_global_to_shared(desc_v, [b, h, j * BLOCK_N, 0], kv_ready.index(slot), v_bufs.index(slot))
        pl.exit_scope("producer.kv_issue")
    pl.exit_scope("producer.tile")


@gluon.jit
def _consumer(q_buf, k_bufs, v_bufs, q_ready, kv_ready, kv_empty, o_ptr, sob, soh, som, qk_scale, B, H, GROUP, N_CTX,
              HEAD_D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, RING: gl.constexpr,
              WARPS: gl.constexpr, CAUSAL: gl.constexpr):
    dtype: gl.constexpr = q_buf.dtype
    bits: gl.constexpr = dtype.primitive_bitwidth
    s_layout: gl.constexpr = mma_layout(WARPS, BLOCK_N, bits)
    o_layout: gl.constexpr = mma_layout(WARPS, HEAD_D, bits)
    p_layout: gl.constexpr = p_operand_layout(o_layout, bits)
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    m, b, h = work_item(gl.program_id(0), gl.cdiv(N_CTX, BLOCK_M), B, H, GROUP, CAUSAL)
    tile_m0 = m * BLOCK_M
    n_blocks, n_unmasked = key_blocks(tile_m0, tile_m0, N_CTX, BLOCK_M, BLOCK_M, BLOCK_N, CAUSAL)
    pl.enter_scope("consumer.tile")
    pl.enter_scope("consumer.q_wait")
    mbarrier.wait(q_ready.index(0), 0)
    pl.exit_scope("consumer.q_wait")
    q = q_buf.index(0).reshape([BLOCK_M, HEAD_D])
    m_i, l_i, acc = fresh_state(BLOCK_M, HEAD_D, s_layout, o_layout)
    for j in range(n_blocks):
        slot = j % RING
        pl.enter_scope("consumer.kv_wait")
        mbarrier.wait(kv_ready.index(slot), (j // RING) & 1)
        pl.exit_scope("consumer.kv_wait")
        k = k_bufs.index(slot).reshape([BLOCK_N, HEAD_D]).permute((1, 0))
        v = v_bufs.index(slot).reshape([BLOCK_N, HEAD_D])
        pl.enter_scope("consumer.qk")
        s = warpgroup_mma(q, k, s_zero, use_acc=False, is_async=True)
        s = warpgroup_mma_wait(0, deps=(s, ))
        pl.exit_scope("consumer.qk")
        if j >= n_unmasked:
            pl.enter_scope("consumer.mask")
            s = mask_scores(s, tile_m0, j * BLOCK_N, N_CTX, BLOCK_M, BLOCK_N, CAUSAL, s_layout)
            pl.exit_scope("consumer.mask")
        p_op, m_i, l_i, acc = online_block(s, m_i, l_i, acc, qk_scale, dtype, p_layout, o_layout)
        pl.enter_scope("consumer.pv")
        acc = warpgroup_mma(p_op, v, acc, is_async=True)
        acc = warpgroup_mma_wait(0, deps=(acc, ))
        pl.exit_scope("consumer.pv")
        mbarrier.arrive(kv_empty.index(slot), count=1)
    pl.enter_scope("consumer.epilogue")
    store_output(o_ptr, acc, l_i, b, h, tile_m0, N_CTX, sob, soh, som, BLOCK_M, HEAD_D, o_layout)
    pl.exit_scope("consumer.epilogue")
    pl.exit_scope("consumer.tile")


@gluon.jit(do_not_specialize=["B", "H", "GROUP"])
def _attn_fwd(desc_q, desc_k, desc_v, o_ptr, sob, soh, som, qk_scale, B, H, GROUP, N_CTX, HEAD_D: gl.constexpr,
              BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, RING: gl.constexpr, CAUSAL: gl.constexpr,
              PRODUCER_REGS: gl.constexpr):
    dtype: gl.constexpr = desc_q.dtype
    q_buf = gl.allocate_shared_memory(dtype, [1] + desc_q.block_type.shape, desc_q.layout)
    k_bufs = gl.allocate_shared_memory(dtype, [RING] + desc_k.block_type.shape, desc_k.layout)
    v_bufs = gl.allocate_shared_memory(dtype, [RING] + desc_v.block_type.shape, desc_v.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [1, 1], mbarrier.MBarrierLayout())
    kv_ready = gl.allocate_shared_memory(gl.int64, [RING, 1], mbarrier.MBarrierLayout())
    kv_empty = gl.allocate_shared_memory(gl.int64, [RING, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_ready.index(0), count=1)
    for i in gl.static_range(RING):
        mbarrier.init(kv_ready.index(i), count=1)
        mbarrier.init(kv_empty.index(i), count=1)
    gl.warp_specialize([
        (_consumer, (q_buf, k_bufs, v_bufs, q_ready, kv_ready, kv_empty, o_ptr, sob, soh, som, qk_scale, B, H, GROUP,
                     N_CTX, HEAD_D, BLOCK_M, BLOCK_N, RING, 8, CAUSAL)),
        (_producer, (desc_q, desc_k, desc_v, q_buf, k_bufs, v_bufs, q_ready, kv_ready, kv_empty, B, H, GROUP, N_CTX,
                     BLOCK_M, BLOCK_N, RING, CAUSAL)),
    ], [1], [PRODUCER_REGS])


# One fixed config (tuning is stage 5's job): 128 query rows shared by the two warp groups of an 8-warp consumer
# (64 rows each), 128-key blocks, a 2-deep K/V ring (stage 4 deepens it).
BLOCK_M, BLOCK_N, RING = 128, 128, 2


# Prepared launches of repeated calls (kernels/_fastlaunch.py).
FAST = LaunchCache()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · sm_scale [+ causal mask]) v for [B, H, S, D] inputs; returns a contiguous [B, H, S, D].

    A repeated call with the same inputs (pointers, shapes, strides, dtype) launches its prepared state
    (kernels/_fastlaunch.py); any other runs the checks, builds the descriptors and launches through the JIT."""
    if interpreting():
        check_inputs(q, k, v, causal, sm_scale, tma=True)
        raise NoInterpreter(NO_INTERPRETER.format(stage=NAME))
    key = input_key(q, k, v, causal, sm_scale)
    state = FAST.get(key)
    if state is not None:
        return state(q)
    sm_scale = check_inputs(q, k, v, causal, sm_scale, tma=True)
    require_sm90(NAME, q.device)
    B, H, S, D = q.shape
    o = empty_output(q)
    grid = (triton.cdiv(S, BLOCK_M) * B * H, )
    args = (descriptor(q, BLOCK_M), descriptor(k, BLOCK_N), descriptor(v, BLOCK_N), o, o.stride(0), o.stride(1),
            o.stride(2), sm_scale * LOG2E, B, H, l2_group(B, H, S, D, k.element_size(), k.device), S)
    kwargs = dict(HEAD_D=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, RING=RING, CAUSAL=causal, PRODUCER_REGS=PRODUCER_REGS,
                  num_warps=8, maxnreg=kernel_maxnreg(12))
    launch_kept(FAST, key, functools.partial(launch_or_refuse, NAME), _attn_fwd, grid, args, kwargs, o,
                empty_output)
    return o
