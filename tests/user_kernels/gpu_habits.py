"""Habits of GPU code that Triton's interpreter and a CPU machine cannot serve, at a call: a torch.cuda query, and
@triton.autotune over several configs (it benchmarks them on a GPU)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def asks_torch_cuda(q, k, v, causal=False, sm_scale=None):
    major, _ = torch.cuda.get_device_capability()
    return q


@triton.autotune(configs=[triton.Config({"BLOCK": 128}), triton.Config({"BLOCK": 256})], key=["n"])
@triton.jit
def _tuned_copy(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst + offs, tl.load(src + offs, mask=offs < n), mask=offs < n)


def autotuned(q, k, v, causal=False, sm_scale=None):
    out = torch.empty_like(q)
    _tuned_copy[lambda meta: (triton.cdiv(q.numel(), meta["BLOCK"]),)](q, out, q.numel())
    return out


@triton.jit
def _refused(x, BLOCK: tl.constexpr):
    tl.static_assert(BLOCK == 3, "BLOCK must be 3 in this kernel")


def does_not_compile(q, k, v, causal=False, sm_scale=None):
    _refused[(1,)](q, BLOCK=128)
    return q
