"""Kernels of a user's own that tests/test_api_callable.py gives `perfmodel.collect` as functions. This module is
importable by name (pytest puts tests/ on sys.path, as a notebook's folder is on its own), so each function here is
recorded as `callable_kernels:<name>` and the interpreter's process imports it from there."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def attention(q, k, v, causal=False, sm_scale=None):
    """The attention of PyTorch itself: correct by construction."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale)


@triton.jit
def _copy(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst + offs, tl.load(src + offs, mask=offs < n), mask=offs < n)


def copy_attention(q, k, v, causal=False, sm_scale=None):
    """PyTorch's attention copied out by a Triton kernel: a Triton launch, correct when it runs."""
    ref = attention(q, k, v, causal, sm_scale).contiguous()
    out = torch.empty_like(ref)
    _copy[(triton.cdiv(ref.numel(), 256),)](ref, out, ref.numel(), BLOCK=256)
    return out
