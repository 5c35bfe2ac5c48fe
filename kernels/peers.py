"""The implementations our stages are compared against, with the stages' signature.

Every peer is `attention(q, k, v, causal=False, sm_scale=None) -> Tensor` on [B, H, S, D] inputs (last dimension
contiguous), returning [B, H, S, D]:

- `sdpa_flash`, `sdpa_cudnn`, `sdpa_efficient`: PyTorch's `scaled_dot_product_attention` pinned to one backend
  with `torch.nn.attention.sdpa_kernel` (FlashAttention-2, cuDNN's fused attention, memory-efficient
  attention). SDPA's `is_causal=True` is the top-left aligned mask, the same as kernels/reference.py.
- `flex`: `torch.nn.attention.flex_attention.flex_attention` compiled with `torch.compile`; causal through a
  block mask built once per (sequence length, device) and cached.
- `triton_tl`: the best of Triton's plain `tl` front end (kernels/triton_tl.py, this toolkit's stage 5 before the
  Gluon stages): one tuned kernel with stages 0-4's `tl` techniques as switches. Runs under the interpreter too.
- `fa3`: FlashAttention-3's `flash_attn_interface.flash_attn_func`, which takes [B, S, H, D]; we hand it
  transposed views and transpose the result back. Not installable on the lent H100 (ANCHORS.md), so there
  cuDNN is the FA3-class peer.

Each registers below as a `kernels.registry.Impl` of kind "peer". A peer that cannot run here is reported by
`available()` with the reason, never silently dropped; one that does not run a dtype says why in its `refuses`
(fp8: the SDPA backends, flex and triton_tl; FlashAttention-3's own fp8 forward is tried when it is installed).
Nothing is imported, compiled or touched on the GPU at import time.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Callable

import torch

from .registry import Impl


def _cuda_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs CUDA (no NVIDIA GPU is visible to torch)"
    return None


def _check_inputs(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"{name} expects q, k, v of one shape [B, H, S, D], got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}.")


# ---- PyTorch SDPA, one backend at a time ----------------------------------------------------------------------
def _sdpa(backend_name: str) -> Callable:
    def attention(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.nn.functional import scaled_dot_product_attention

        _check_inputs(f"sdpa_{backend_name.lower()}", q, k, v)
        with sdpa_kernel(getattr(SDPBackend, backend_name)):
            return scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale)

    attention.__name__ = f"sdpa_{backend_name.split('_')[0].lower()}"
    return attention


sdpa_flash = _sdpa("FLASH_ATTENTION")
sdpa_cudnn = _sdpa("CUDNN_ATTENTION")
sdpa_efficient = _sdpa("EFFICIENT_ATTENTION")


def _sdpa_flash_available() -> str | None:
    if (reason := _cuda_reason()) is not None:
        return reason
    if not torch.backends.cuda.is_flash_attention_available():
        return "this torch build has no FlashAttention SDPA kernels"
    return None


def _sdpa_cudnn_available() -> str | None:
    if (reason := _cuda_reason()) is not None:
        return reason
    if not torch.backends.cudnn.is_available():
        return "cuDNN is not available in this torch build"
    return None


# ---- FlexAttention (compiled) ---------------------------------------------------------------------------------
_flex_compiled: Callable | None = None
_causal_block_masks: dict[tuple[int, str], object] = {}


def _causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def _flex_fn() -> Callable:
    global _flex_compiled
    if _flex_compiled is None:
        import torch._dynamo
        from torch.nn.attention.flex_attention import flex_attention as _flex_attention

        # Every config is its own static shape, so each one is a recompile of the same code object. Past dynamo's
        # default limit of 8 it silently falls back to eager, unfused attention (seen on the H100: 7 TFLOP/s, and
        # out of memory at S=16k, from the ninth fa3-grid shape on): raise the limits so a suite stays compiled.
        cfg = torch._dynamo.config
        for name, floor in (("recompile_limit", 1024), ("cache_size_limit", 1024),
                            ("accumulated_recompile_limit", 8192), ("accumulated_cache_size_limit", 8192)):
            if hasattr(cfg, name):
                setattr(cfg, name, max(int(getattr(cfg, name)), floor))
        if hasattr(cfg, "fail_on_recompile_limit_hit"):
            cfg.fail_on_recompile_limit_hit = True  # never time an eager fallback as "flex"
        _flex_compiled = torch.compile(_flex_attention, dynamic=False)
    return _flex_compiled


def _causal_block_mask(seq_len: int, device: torch.device):
    """The causal block mask for one sequence length, built once (it is broadcast over batch and heads)."""
    key = (seq_len, str(device))
    if key not in _causal_block_masks:
        from torch.nn.attention.flex_attention import create_block_mask

        _causal_block_masks[key] = create_block_mask(_causal, B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len,
                                                     device=device)
    return _causal_block_masks[key]


def flex(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    _check_inputs("flex", q, k, v)
    block_mask = _causal_block_mask(q.shape[2], q.device) if causal else None
    return _flex_fn()(q, k, v, block_mask=block_mask, scale=sm_scale)


def _flex_available() -> str | None:
    if (reason := _cuda_reason()) is not None:
        return reason
    if importlib.util.find_spec("torch.nn.attention.flex_attention") is None:
        return "this torch has no torch.nn.attention.flex_attention"
    return None


# ---- FlashAttention-3 -----------------------------------------------------------------------------------------
def fa3(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    from flash_attn_interface import flash_attn_func

    _check_inputs("fa3", q, k, v)
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(q.shape[-1])
    # [B, H, S, D] -> [B, S, H, D] views: FA3 needs only the last dimension contiguous.
    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                          softmax_scale=sm_scale, causal=causal)
    if isinstance(out, tuple):  # some FA3 releases return (out, softmax_lse)
        out = out[0]
    return out.transpose(1, 2)


def _fa3_available() -> str | None:
    if (reason := _cuda_reason()) is not None:
        return reason
    if importlib.util.find_spec("flash_attn_interface") is None:
        return "flash_attn_interface (FlashAttention-3) is not installed"
    if torch.cuda.get_device_capability() < (9, 0):
        return "FlashAttention-3 needs a Hopper (sm_90) or newer GPU"
    return None


# ---- Triton's tl front end, tuned ------------------------------------------------------------------------------
def triton_tl(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    from .triton_tl import attention

    return attention(q, k, v, causal=causal, sm_scale=sm_scale)


def _triton_tl_available() -> str | None:
    from ._launch import interpreting

    if interpreting():
        return None
    return _cuda_reason()


# ---- what each peer does not run -------------------------------------------------------------------------------
# PyTorch runs fp8 attention only through its experimental FA3-backed op with descale tensors
# (torch.nn.attention.experimental._scaled_dot_product_attention_quantized), not through scaled_dot_product_attention.
_NO_FP8_SDPA = ("PyTorch's scaled_dot_product_attention has no fp8 path in this backend (torch's fp8 attention is "
                "the experimental FA3-backed torch.nn.attention.experimental._scaled_dot_product_attention_quantized)")
# flex_attention allocates O as query.new_empty (torch/_higher_order_ops/flex_attention.py), an 8-bit O
_NO_FP8_FLEX = ("flex_attention writes O in the inputs' dtype, an 8-bit O for fp8 inputs, not the bf16 O an fp8 "
                "forward is checked in (kernels.reference.output_dtype)")
_NO_FP8_TL = "its launcher takes fp16 and bf16 only (kernels/triton_tl.py: check_inputs without fp8=True)"


# ---- registry -------------------------------------------------------------------------------------------------
def _peer(name: str, launcher: Callable[..., torch.Tensor], description: str,
          why_unavailable: Callable[[], str | None], no_fp8: str | None = None) -> Impl:
    # the census counts our kernels and the user's; a peer gets none (triton=False), even where it launches
    # Triton kernels (triton_tl, flex's generated ones)
    return Impl(name, "peer", launcher, description, triton=False, why_unavailable=why_unavailable,
                refuses=(("fp8", no_fp8),) if no_fp8 else ())


PEERS: dict[str, Impl] = {
    p.name: p
    for p in (
        _peer("sdpa_flash", sdpa_flash, "PyTorch SDPA, FlashAttention-2 backend", _sdpa_flash_available,
              _NO_FP8_SDPA),
        _peer("sdpa_cudnn", sdpa_cudnn, "PyTorch SDPA, cuDNN fused attention (the FA3-class peer on H100)",
              _sdpa_cudnn_available, _NO_FP8_SDPA),
        _peer("sdpa_efficient", sdpa_efficient, "PyTorch SDPA, memory-efficient backend", _cuda_reason,
              _NO_FP8_SDPA),
        _peer("flex", flex, "FlexAttention compiled with torch.compile (causal via a cached block mask)",
              _flex_available, _NO_FP8_FLEX),
        _peer("triton_tl", triton_tl, "Triton tl front end, tuned: stages 0-4's tl techniques as switches "
              "(the pre-Gluon stage 5)", _triton_tl_available, _NO_FP8_TL),
        _peer("fa3", fa3, "FlashAttention-3 flash_attn_func (flash_attn_interface)", _fa3_available),
    )
}

# The peer every ratio is taken against (measured in the same process).
BASELINE_PEER = "sdpa_cudnn"


def get_peer(name: str) -> Impl:
    if name not in PEERS:
        raise KeyError(f"unknown peer {name!r}; known peers: {', '.join(PEERS)}.")
    return PEERS[name]
