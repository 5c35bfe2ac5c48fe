"""Kernels that fail in each way a new user's first kernel does: it raises, returns None, a tuple, fp32 for fp16
inputs (however close), the [B, S, H, D] layout, or wrong values."""

from __future__ import annotations

import torch


def _sdpa(q, k, v, causal, sm_scale):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale)


def raises(q, k, v, causal=False, sm_scale=None):
    raise ValueError("my kernel does not support causal yet")


def returns_none(q, k, v, causal=False, sm_scale=None):
    return None


def returns_tuple(q, k, v, causal=False, sm_scale=None):
    return _sdpa(q, k, v, causal, sm_scale), None


def returns_fp32(q, k, v, causal=False, sm_scale=None):
    return _sdpa(q.float(), k.float(), v.float(), causal, sm_scale)


def returns_bshd(q, k, v, causal=False, sm_scale=None):
    return _sdpa(q, k, v, causal, sm_scale).transpose(1, 2).contiguous()


def wrong_values(q, k, v, causal=False, sm_scale=None):
    return _sdpa(q, k, v, not causal, sm_scale)
