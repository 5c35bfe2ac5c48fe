"""Stage 1, producer/consumer: the baseline's loop, with its loads handed to a producer warp group.

Against stage 0 this changes only how K and V reach the tensor cores (the document's "architecture only" step):
- Q, K, V and O go through tensor descriptors (`tl.make_tensor_descriptor`, built on the device for each
  (batch, head) with that head's real strides and its own bound N_CTX), so the loads are TMA bulk copies into
  shared memory that zero-fill past the end of this head's sequence, and the O store is clipped there;
- the key loop is `tl.range(..., warp_specialize=True)`: Triton's warp-specialization pass splits the loop into a
  producer partition (one warp issuing the TMA loads) and consumer warp groups (wgmma + softmax), which talk
  through mbarriers in shared memory instead of every warp doing both jobs in turn.
The loop body itself is stage 0's: the tail and causal masks are still evaluated with `tl.where` in every
iteration, so the difference against stage 0 is the load path alone. If Triton refuses to build this for a case,
the launcher raises KernelUnsupported; it never falls back to another stage.
Causal is refused on the GPU (KernelUnsupported, see CAUSAL_REFUSAL): Triton 3.6 builds the warp-specialized
causal loop but it computes wrong results on the H100 (measured 2026-11-24), while the same loop is right without
the row-dependent causal mask (non-causal, with or without the sequence-tail mask) and under the interpreter.
Triton splits the 128 query rows between its two consumer warp groups (data partitioning); the causal mask is the
one operand that depends on the row index, which points at that split.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import (KernelUnsupported, check_inputs, empty_output, interpreting, launch_or_refuse, strides,
                      use_tma_allocator)


@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, desc_k, desc_v, start_m, qk_scale, N_CTX,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr):
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    if CAUSAL:
        hi = tl.minimum((start_m + 1) * BLOCK_M, N_CTX)
    else:
        hi = N_CTX
    for start_n in tl.range(0, hi, BLOCK_N, warp_specialize=True):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # -- TMA load of K (zero past N_CTX) and qk; the same mask is evaluated in every iteration --
        k = desc_k.load([start_n, 0]).T
        qk = tl.dot(q, k)
        mask = offs_n[None, :] < N_CTX
        if CAUSAL:
            mask = mask & (offs_m[:, None] >= offs_n[None, :])
        qk = tl.where(mask, qk * qk_scale, -1.0e6)
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        l_ij = tl.sum(p, 1)
        # -- rescale the running sum and accumulator to the new max --
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + l_ij
        acc = acc * alpha[:, None]
        v = desc_v.load([start_n, 0])
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij
    return acc, l_i, m_i


# One fixed config per head dim (tuning is stage 5's job). 4 warps: with Triton 3.6 on sm_90 only 4-warp programs
# get warp-specialized (the pass turns them into 12 warps: a producer warp group plus two consumer warp groups,
# each owning 64 of the 128 query rows); an 8-warp program compiles but is silently left unspecialized (seen in
# the sm_90 PTX: no setmaxnreg, 8 warps). BLOCK_N 64 keeps each consumer's qk tile and acc in registers at D=128;
# num_stages 2 is the depth of the K/V shared-memory ring the producer fills (stage 4 makes it deeper).
CONFIGS = {
    64: dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=2),
    128: dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=2),
}


CAUSAL_REFUSAL = ("stage1_warpspec: causal attention is refused on the GPU: Triton 3.6 compiles this stage's "
                  "warp-specialized causal loop for sm_90 without error but it computes wrong results (max error "
                  "0.4-1.0 against the float64 reference on every fa3-grid and batching causal config, H100, "
                  "2026-11-24; also with every program running all key blocks); no other stage was run in its place.")


@triton.jit
def _attn_fwd(Q, K, V, Out, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_qk,
              stride_kz, stride_kh, stride_kn, stride_kk,
              stride_vz, stride_vh, stride_vn, stride_vk,
              stride_oz, stride_oh, stride_om, stride_ok,
              H, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
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
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, desc_k, desc_v, start_m, qk_scale, N_CTX,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, CAUSAL)
    acc = acc / l_i[:, None]
    desc_o.store([start_m * BLOCK_M, 0], acc.to(Out.dtype.element_ty))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · sm_scale [+ causal mask]) v for [B, H, S, D] inputs; returns a contiguous [B, H, S, D]."""
    sm_scale = check_inputs(q, k, v, causal, sm_scale, tma=True)
    if causal and not interpreting():
        raise KernelUnsupported(CAUSAL_REFUSAL)
    B, H, S, D = q.shape
    o = empty_output(q)
    cfg = CONFIGS[D]
    use_tma_allocator()
    grid = (triton.cdiv(S, cfg["BLOCK_M"]), B * H)
    launch_or_refuse("stage1_warpspec", _attn_fwd[grid], q, k, v, o, sm_scale,
                     *strides(q), *strides(k), *strides(v), *strides(o), H, S,
                     HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal,
                     num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return o
