"""A module that asks the GPU driver for its device when it is imported, as Triton's tutorial does."""

import triton

DEVICE = triton.runtime.driver.active.get_active_torch_device()


def attention(q, k, v, causal=False, sm_scale=None):
    return q
