"""A module that asks torch.cuda about the GPU when it is imported (the tutorial filters its TMA configs so)."""

import torch

SM90 = torch.cuda.get_device_capability()[0] == 9


def attention(q, k, v, causal=False, sm_scale=None):
    return q
