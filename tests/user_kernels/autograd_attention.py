"""A kernel exported as a torch.autograd.Function's `apply`, as Triton's fused-attention tutorial exports its
`attention`: apply takes (q, k, v, causal, sm_scale) as given, and fails on sm_scale=None."""

from __future__ import annotations

import torch


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, sm_scale):
        sm_scale *= 1.44269504  # the tutorial's first use of sm_scale: None cannot be multiplied
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale / 1.44269504)


attention = _Attention.apply
