"""Stage 2, reduced synchronization: stage 1 with a steady-state key loop that carries no masking at all.

Stage 1 evaluates the tail and causal masks (`tl.where` over the whole 128x64 qk tile) in every iteration. Here
the keys are split by what they need:
- off-diagonal blocks (causal: keys [0, start_m·BLOCK_M); non-causal: every whole BLOCK_N block) run a loop with
  no mask, no compare, no select: TMA waits on mbarriers, wgmma, and the online softmax only;
- the diagonal blocks (causal: BLOCK_M // BLOCK_N of them) or the one partial block at the sequence tail
  (non-causal) follow as unrolled, masked straight-line code.
Where that leaves a single loop (non-causal, S a multiple of BLOCK_N) the loop is warp-specialized as in stage 1:
producer and consumers synchronize through the mbarriers of the K/V ring alone. Triton 3.6 does not build a
correct warp-specialized kernel around the split loop on sm_90 (seen compiling for sm_90 on the CPU): a second
loop beside the specialized one crashes its warp-specialization pass, masked code before it or after it crashes
the pass's data partitioning, a guard around it leaves the loop unspecialized, and a mask branch inside the loop
crashes its pipeliner. So causal and tailed cases run the split loop software-pipelined (all warps issue the TMA
loads of a 2-deep ring and compute) rather than warp-specialized: a measured trade, not a silent fallback.
This is what the document's constraint #3 (synchronization) can mean in Triton, which emits no `__syncthreads`
by hand: the census compares `bar.sync` counts in the sm_90 PTX with stage 1's, and the per-iteration masking
that the steady state no longer carries.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import check_inputs, empty_output, launch_or_refuse, strides, use_tma_allocator


@triton.jit
def _attn_fwd_block(acc, l_i, m_i, q, desc_k, desc_v, start_n, offs_m, qk_scale, N_CTX,
                    BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, MASK: tl.constexpr):
    # one key block of the online softmax; only MASK blocks build and apply a mask
    k = desc_k.load([start_n, 0]).T
    qk = tl.dot(q, k)
    if MASK:
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask = offs_n[None, :] < N_CTX
        if CAUSAL:
            mask = mask & (offs_m[:, None] >= offs_n[None, :])
        qk = tl.where(mask, qk * qk_scale, -1.0e6)
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
    else:
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
    l_ij = tl.sum(p, 1)
    # -- rescale the running sum and accumulator to the new max --
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + l_ij
    acc = acc * alpha[:, None]
    v = desc_v.load([start_n, 0])
    acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_ij


@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, desc_k, desc_v, start_m, qk_scale, split, N_CTX,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
                    MASK_TAIL: tl.constexpr, WARP_SPECIALIZE: tl.constexpr):
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    # steady state: keys [0, split), every block whole and fully visible: no mask, no compare, no select
    for start_n in tl.range(0, split, BLOCK_N, warp_specialize=WARP_SPECIALIZE):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        acc, l_i, m_i = _attn_fwd_block(acc, l_i, m_i, q, desc_k, desc_v, start_n, offs_m, qk_scale, N_CTX,
                                        BLOCK_N, CAUSAL, False)
    # then the diagonal (causal: BLOCK_M // BLOCK_N blocks) or the sequence tail (one block), masked, as unrolled
    # straight-line code: a diagonal block wholly past N_CTX reads zeros and is masked out, adding nothing
    if CAUSAL:
        for j in tl.static_range(BLOCK_M // BLOCK_N):
            acc, l_i, m_i = _attn_fwd_block(acc, l_i, m_i, q, desc_k, desc_v, split + j * BLOCK_N, offs_m,
                                            qk_scale, N_CTX, BLOCK_N, CAUSAL, True)
    elif MASK_TAIL:
        acc, l_i, m_i = _attn_fwd_block(acc, l_i, m_i, q, desc_k, desc_v, split, offs_m, qk_scale, N_CTX,
                                        BLOCK_N, CAUSAL, True)
    return acc, l_i, m_i


# Fixed configs by (head dim, warp-specialized loop?). Warp-specialized (non-causal, S a multiple of BLOCK_N):
# stage 1's config, 4 warps (the only width Triton 3.6 specializes on sm_90) and a 2-deep K/V ring. Otherwise the
# pipelined loop with the same ring, 4 warps at D=64 and 8 at D=128 (the 128x128 fp32 accumulator needs two warp
# groups' registers, as in stage 0).
CONFIGS = {
    (64, True): dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=2),
    (128, True): dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=2),
    (64, False): dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=2),
    (128, False): dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=2),
}


@triton.jit
def _attn_fwd(Q, K, V, Out, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_qk,
              stride_kz, stride_kh, stride_kn, stride_kk,
              stride_vz, stride_vh, stride_vn, stride_vk,
              stride_oz, stride_oh, stride_om, stride_ok,
              H, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
              MASK_TAIL: tl.constexpr, WARP_SPECIALIZE: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_z = off_hz // H
    off_h = off_hz % H
    # one 2-D descriptor per (batch, head): this head's rows only, so TMA zero-fills (and clips stores) at N_CTX
    desc_q = tl.make_tensor_descriptor(Q + off_z.to(tl.int64) * stride_qz + off_h.to(tl.int64) * stride_qh,
                                       shape=[N_CTX, HEAD_DIM], strides=[stride_qm, 1],
                                       block_shape=[BLOCK_M, HEAD_DIM])
    desc_k = tl.make_tensor_descriptor(K + off_z.to(tl.int64) * stride_kz + off_h.to(tl.int64) * stride_kh,
                                       shape=[N_CTX, HEAD_DIM], strides=[stride_kn, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    desc_v = tl.make_tensor_descriptor(V + off_z.to(tl.int64) * stride_vz + off_h.to(tl.int64) * stride_vh,
                                       shape=[N_CTX, HEAD_DIM], strides=[stride_vn, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    desc_o = tl.make_tensor_descriptor(Out + off_z.to(tl.int64) * stride_oz + off_h.to(tl.int64) * stride_oh,
                                       shape=[N_CTX, HEAD_DIM], strides=[stride_om, 1],
                                       block_shape=[BLOCK_M, HEAD_DIM])
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * 1.44269504  # exp(x) = exp2(x * log2(e)): fold log2(e) into the scale
    q = desc_q.load([start_m * BLOCK_M, 0])
    if CAUSAL:
        split = start_m * BLOCK_M  # keys left of this tile's diagonal: all valid and all visible
    else:
        split = (N_CTX // BLOCK_N) * BLOCK_N  # whole key blocks; the partial block at the tail is masked
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, desc_k, desc_v, start_m, qk_scale, split, N_CTX,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, CAUSAL, MASK_TAIL, WARP_SPECIALIZE)
    acc = acc / l_i[:, None]
    desc_o.store([start_m * BLOCK_M, 0], acc.to(Out.dtype.element_ty))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · sm_scale [+ causal mask]) v for [B, H, S, D] inputs; returns a contiguous [B, H, S, D]."""
    sm_scale = check_inputs(q, k, v, causal, sm_scale, tma=True)
    B, H, S, D = q.shape
    o = empty_output(q)
    warp_specialize = not causal and S % 64 == 0
    cfg = CONFIGS[(D, warp_specialize)]
    use_tma_allocator()
    grid = (triton.cdiv(S, cfg["BLOCK_M"]), B * H)
    mask_tail = S % cfg["BLOCK_N"] != 0
    launch_or_refuse("stage2_reduced_sync", _attn_fwd[grid], q, k, v, o, sm_scale,
                     *strides(q), *strides(k), *strides(v), *strides(o), H, S,
                     HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal, MASK_TAIL=mask_tail,
                     WARP_SPECIALIZE=warp_specialize,
                     num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return o
