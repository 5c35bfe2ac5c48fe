"""Stage 0, baseline: FlashAttention-2 forward with an online softmax, as the design document starts from.

One program per (query tile, batch·head); Q stays in registers, K and V tiles are read with masked pointer loads
(`tl.load(..., mask=...)`, so any S works and tails read zeros), the softmax runs online (running max m_i,
running sum l_i, rescaled accumulator acc) in base 2 with the 1/sqrt(D)·log2(e) scale folded into one multiply.
The causal mask is applied the way the document describes constraint #1: by predication (`tl.where`) in every
iteration of the key loop, together with the sequence-tail mask; blocks wholly above the diagonal are not
visited (the loop ends at the diagonal), as every FlashAttention does.
No tensor descriptors, no warp specialization, no persistence, no tuning: those are the later stages.
fp8 (e4m3) inputs run the same code: both products take 8-bit operands (tl.dot of e4m3, fp32 accumulate), P is
rounded to e4m3 for P·V (`p.to(v.dtype)`, as FlashAttention-3's fp8 forward does) and O is written in bf16
(`empty_output`), so stage 5's fp8 has a baseline of its own. Under TRITON_INTERPRET=1 fp8 is refused (not measured:
Triton's interpreter rounds e4m3 wrongly, kernels/_launch.py `refuse_interpreted_fp8`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import check_inputs, empty_output, interpreting, launch_or_refuse, refuse_interpreted_fp8, strides


@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, K, V, stride_kn, stride_vn, start_m, qk_scale, N_CTX,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr):
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    if CAUSAL:
        hi = tl.minimum((start_m + 1) * BLOCK_M, N_CTX)
    else:
        hi = N_CTX
    for start_n in range(0, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # -- load K^T and compute qk; the same mask (tail, and causal) is evaluated in every iteration --
        k = tl.load(K + offs_n[None, :] * stride_kn + offs_d[:, None], mask=offs_n[None, :] < N_CTX, other=0.0)
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
        v = tl.load(V + offs_n[:, None] * stride_vn + offs_d[None, :], mask=offs_n[:, None] < N_CTX, other=0.0)
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij
    return acc, l_i, m_i


# One fixed config per head dim, no tuning: BLOCK_M 128 rows of Q per program (one wgmma M-tile per warpgroup
# row, and enough rows that K/V are re-read S/128 times), BLOCK_N 64 keys per step (the qk tile 128x64 fp32 plus
# the acc stays in registers), 3 pipeline stages for the K/V loads (two in flight while one is used), 4 warps at
# D=64 and 8 at D=128 (the 128x128 fp32 accumulator needs two warpgroups' registers to avoid spilling).
CONFIGS = {
    64: dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=3),
    128: dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3),
}


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
    Q += off_z.to(tl.int64) * stride_qz + off_h.to(tl.int64) * stride_qh
    K += off_z.to(tl.int64) * stride_kz + off_h.to(tl.int64) * stride_kh
    V += off_z.to(tl.int64) * stride_vz + off_h.to(tl.int64) * stride_vh
    Out += off_z.to(tl.int64) * stride_oz + off_h.to(tl.int64) * stride_oh
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * 1.44269504  # exp(x) = exp2(x * log2(e)): fold log2(e) into the scale
    q = tl.load(Q + offs_m[:, None] * stride_qm + offs_d[None, :], mask=offs_m[:, None] < N_CTX, other=0.0)
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, K, V, stride_kn, stride_vn, start_m, qk_scale, N_CTX,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, CAUSAL)
    acc = acc / l_i[:, None]
    tl.store(Out + offs_m[:, None] * stride_om + offs_d[None, :], acc.to(Out.dtype.element_ty),
             mask=offs_m[:, None] < N_CTX)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · sm_scale [+ causal mask]) v for [B, H, S, D] inputs; returns a contiguous [B, H, S, D] (bf16
    for fp8 inputs)."""
    sm_scale = check_inputs(q, k, v, causal, sm_scale, fp8=True)
    refuse_interpreted_fp8("stage0_baseline", q, interpreting())
    B, H, S, D = q.shape
    o = empty_output(q)
    cfg = CONFIGS[D]
    grid = (triton.cdiv(S, cfg["BLOCK_M"]), B * H)
    launch_or_refuse("stage0_baseline", _attn_fwd[grid], q, k, v, o, sm_scale,
                     *strides(q), *strides(k), *strides(v), *strides(o), H, S,
                     HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal,
                     num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return o
