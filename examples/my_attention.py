"""A user's own attention kernel, as it would sit in a repository of theirs: nothing here imports the toolkit.

A plain Triton FlashAttention forward (online softmax, one program per (query block, batch x head)) with the
signature the toolkit expects: attention(q, k, v, causal=False, sm_scale=None) on [B, H, S, D] tensors.
"""

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _fwd(Q, K, V, O, scale, sqb, sqh, sqs, skb, skh, sks, svb, svh, svs, sob, soh, sos, H, S,
         D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, CAUSAL: tl.constexpr):
    m0 = tl.program_id(0) * BM
    b, h = tl.program_id(1) // H, tl.program_id(1) % H
    rows = m0 + tl.arange(0, BM)
    cols = tl.arange(0, D)
    q = tl.load(Q + b * sqb + h * sqh + rows[:, None] * sqs + cols[None, :], mask=rows[:, None] < S, other=0.0)
    m = tl.full([BM], -float("inf"), tl.float32)
    l = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, D], tl.float32)
    end = tl.minimum(m0 + BM, S) if CAUSAL else S
    for n0 in range(0, end, BN):
        keys = n0 + tl.arange(0, BN)
        kmask = keys[:, None] < S
        k = tl.load(K + b * skb + h * skh + keys[:, None] * sks + cols[None, :], mask=kmask, other=0.0)
        v = tl.load(V + b * svb + h * svh + keys[:, None] * svs + cols[None, :], mask=kmask, other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale
        keep = keys[None, :] < S
        if CAUSAL:
            keep = keep & (rows[:, None] >= keys[None, :])
        s = tl.where(keep, s, -float("inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m - m_new)
        l = l * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m = m_new
    out = acc / l[:, None]
    tl.store(O + b * sob + h * soh + rows[:, None] * sos + cols[None, :], out.to(O.dtype.element_ty),
             mask=rows[:, None] < S)


def attention(q, k, v, causal=False, sm_scale=None):
    B, H, S, D = q.shape
    o = torch.empty((B, H, S, D), dtype=q.dtype, device=q.device)
    scale = sm_scale if sm_scale is not None else 1.0 / math.sqrt(D)
    BM, BN = 64, 64
    _fwd[(triton.cdiv(S, BM), B * H)](q, k, v, o, scale, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
                                      *o.stride()[:3], H, S, D=D, BM=BM, BN=BN, CAUSAL=causal, num_warps=4)
    return o
