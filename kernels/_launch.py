"""What every stage's launcher shares: input checks, the interpreter switch, the SM count, TMA scratch space.

Nothing here touches a GPU or compiles anything at import time: `interpreting()` and `sm_count()` read the
environment and the device when a launcher is called, so a test can switch TRITON_INTERPRET on with monkeypatch.
"""

from __future__ import annotations

import math
import os

import torch

from .hardware import DEFAULT_GPU, GPUS
from .schedule import L2_SHARE, l2_budget, l2_group_heads
from .workload import TORCH_DTYPE_NAMES

SUPPORTED_HEAD_DIMS = (64, 128)
GPU_DTYPES = (torch.float16, torch.bfloat16)
# 8-bit inputs, accepted by the launchers that say so (stage 5); their output is bf16 (`empty_output`).
FP8_DTYPES = tuple(getattr(torch, n) for n in (TORCH_DTYPE_NAMES["fp8"], ) if hasattr(torch, n))
# float32 is accepted so that the CPU interpreter tests can run the kernels at full precision.
ALL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# SM count used under TRITON_INTERPRET=1, where there is no GPU: small, so a persistent grid still has every
# program loop over several work items (the path the persistent stages need covered).
INTERPRETER_SM_COUNT = 2
# TMA (cp.async.bulk.tensor) needs the global base address and every stride but the last 16-byte aligned.
TMA_ALIGN_BYTES = 16


class KernelUnsupported(RuntimeError):
    """Triton refused to compile or run this stage for this case; no other stage is substituted."""


class NoInterpreter(KernelUnsupported):
    """The kernel cannot run under TRITON_INTERPRET=1 (a Gluon kernel: Triton has no Gluon interpreter). Not a
    failure of the kernel: nothing could be measured on the CPU, so a run records the case as not measured."""


# Triton 3.6's interpreter rounds fp32 -> e4m3 without carrying into the exponent (a value that rounds up to the next
# power of two loses half of it: 0.4997 -> 0.25), so a kernel that rounds P to e4m3 is wrong there for the
# interpreter's sake; the GPU's cvt.rn.satfinite.e4m3x2.f32 rounds correctly. tests/test_fp8.py shows the bug (and
# says when a Triton fixes it) and checks stage 0's fp8 under the interpreter with torch's rounding swapped in.
INTERPRETER_ROUNDS_E4M3 = False


def refuse_interpreted_fp8(stage: str, q: torch.Tensor, interpreted: bool) -> None:
    """Raise NoInterpreter for 8-bit inputs of a kernel that runs `interpreted` (the stage module's own
    `interpreting()`, which the sm_90 census sets False) while the interpreter rounds e4m3 wrongly
    (INTERPRETER_ROUNDS_E4M3): a CPU check of such a kernel would measure the interpreter, not the kernel."""
    if q.dtype in FP8_DTYPES and interpreted and not INTERPRETER_ROUNDS_E4M3:
        raise NoInterpreter(f"{stage}: fp8 is not checked under TRITON_INTERPRET=1: Triton's interpreter rounds fp32 "
                            "to e4m3 without the carry into the exponent (0.4997 becomes 0.25), so P rounded to e4m3 "
                            "would be wrong for the interpreter's sake; the GPU checks it.")


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (TRITON_INTERPRET=1), read at call time."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of `device` (a small fixed number under the interpreter)."""
    if interpreting() or device.type != "cuda":
        return INTERPRETER_SM_COUNT
    return torch.cuda.get_device_properties(device).multi_processor_count


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float | None,
                 tma: bool = False, fp8: bool = False) -> float:
    """Validate q, k, v for the attention launchers and return the softmax scale to use.

    Accepted: [B, H, S, D] tensors of one shape, dtype (fp16/bf16, fp8 e4m3 where the launcher says `fp8=True`,
    fp32 only under the interpreter) and device, head dim 64 or 128, last dimension contiguous (any other strides,
    e.g. a transposed [B, S, H, D] view). With `tma=True` the base addresses and strides must also be 16-byte
    aligned, as the TMA unit requires.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
        if t.dim() != 4:
            raise ValueError(f"{name} must have 4 dimensions [B, H, S, D], got shape {tuple(t.shape)}.")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k and v must have the same shape, got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}.")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must have the same dtype, got {q.dtype}, {k.dtype}, {v.dtype}.")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must be on the same device, got {q.device}, {k.device}, {v.device}.")
    allowed = (ALL_DTYPES if interpreting() else GPU_DTYPES) + (FP8_DTYPES if fp8 else ())
    if q.dtype not in allowed:
        raise ValueError(f"dtype {q.dtype} is not supported here; use one of "
                         f"{', '.join(str(d) for d in allowed)}.")
    if not interpreting() and q.device.type != "cuda":
        raise ValueError(f"inputs are on {q.device}; the kernels run on a CUDA device "
                         "(or on the CPU with TRITON_INTERPRET=1).")
    B, H, S, D = q.shape
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head dimension {D} is not supported; these kernels handle head dims 64 and 128 only.")
    if min(B, H, S) < 1:
        raise ValueError(f"B, H and S must be at least 1, got shape {tuple(q.shape)}.")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(3) != 1:
            raise ValueError(f"{name}'s last dimension must be contiguous (stride 1), got strides {t.stride()}.")
        if tma:
            esize = t.element_size()
            if t.data_ptr() % TMA_ALIGN_BYTES or any((s * esize) % TMA_ALIGN_BYTES for s in t.stride()[:3]):
                raise ValueError(f"{name}'s base address and strides must be 16-byte aligned for TMA loads, "
                                 f"got strides {t.stride()} and address offset {t.data_ptr() % TMA_ALIGN_BYTES}.")
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be True or False, got {causal!r}.")
    if sm_scale is None:
        return 1.0 / math.sqrt(D)
    sm_scale = float(sm_scale)
    if not math.isfinite(sm_scale) or sm_scale <= 0.0:
        raise ValueError(f"sm_scale must be a positive finite number, got {sm_scale!r}.")
    return sm_scale


# The budget used where no GPU says its L2 size (the census compiles without one; the value is a runtime argument
# there): L2_SHARE (kernels/schedule.py) of the hardware table's H100 L2.
L2_BUDGET_BYTES = l2_budget(GPUS[DEFAULT_GPU].l2_bytes)


# Integer arguments the persistent kernels (stages 3-5) must not be specialized on. Triton compiles a separate
# kernel for every combination of "equals 1" and "divisible by 16" of its integer arguments; the batch size, head
# count and L2 group vary across a suite (B = 32, 16, 8, 1 ...), so without this one kernel config compiled up to
# four times per suite, and stage 5's tuner recompiled its dozen candidates for each (about 13 s a key on the
# H100, 2026-11-24). They only index tiles, so the specialization bought nothing measurable.
UNSPECIALIZED_SHAPE_ARGS = ("B", "H", "GROUP")


def l2_group(B: int, H: int, S: int, D: int, element_size: int, device: torch.device | None = None) -> int:
    """Heads whose work items are taken together (causal heaviest first among them) so that their K and V stay in
    L2: as many as fit in L2_SHARE of the GPU's L2 (L2_BUDGET_BYTES off a GPU), at least one."""
    budget = L2_BUDGET_BYTES
    if device is not None and device.type == "cuda" and not interpreting():
        budget = l2_budget(torch.cuda.get_device_properties(device).L2_cache_size)
    return l2_group_heads(B, H, S, D, element_size, budget)


def programs_per_sm(kernel, device: torch.device) -> int:
    """How many programs of a compiled Triton kernel fit on one SM at once (registers, shared memory, threads)."""
    if interpreting() or device.type != "cuda":
        return 1
    props = torch.cuda.get_device_properties(device)
    kernel._init_handles()
    threads = 32 * kernel.metadata.num_warps
    regs = max(1, kernel.n_regs) * threads
    smem = max(1, kernel.metadata.shared)
    by_regs = props.regs_per_multiprocessor // regs
    by_smem = props.shared_memory_per_multiprocessor // (smem + 1024)  # 1 KB reserved per block
    by_threads = props.max_threads_per_multi_processor // threads
    return max(1, min(by_regs, by_smem, by_threads))


def strides(t: torch.Tensor) -> tuple[int, int, int, int]:
    """All four strides of a [B, H, S, D] tensor (a transposed [B, S, H, D] view keeps its real strides)."""
    return tuple(t.stride())  # type: ignore[return-value]


def empty_output(q: torch.Tensor) -> torch.Tensor:
    """The output O, [B, H, S, D] contiguous, in q's dtype (bf16 for 8-bit q, as FlashAttention-3's fp8 forward
    writes) and device."""
    dtype = torch.bfloat16 if q.dtype in FP8_DTYPES else q.dtype
    return torch.empty(q.shape, dtype=dtype, device=q.device)


def _tma_scratch(size: int, alignment: int, stream) -> torch.Tensor:
    # Device-side tensor descriptors (tl.make_tensor_descriptor) are written into this global scratch space,
    # 128 bytes per descriptor per program.
    device = "cpu" if interpreting() else "cuda"
    return torch.empty(size, dtype=torch.int8, device=device)


def use_tma_allocator() -> None:
    """Give Triton the scratch allocator that device-side tensor descriptors need (called by launchers)."""
    import triton

    triton.set_allocator(_tma_scratch)


_REFUSAL_MARKERS = ("PassManager::run failed", "NVGPUWarpSpecialization", "out of resource", "OutOfResources",
                    "CompilationError", "MLIR", "LLVM ERROR")


def is_compiler_refusal(exc: BaseException) -> bool:
    """True when `exc` is Triton refusing to build a kernel (a crashed pass, too many resources), not a bug here."""
    name = type(exc).__name__
    text = f"{name}: {exc}"
    return name in ("CompilationError", "OutOfResources", "PTXASError") or any(m in text for m in _REFUSAL_MARKERS)


def launch_or_refuse(stage: str, launch, *args, **kwargs):
    """Run `launch(*args, **kwargs)`; if Triton refuses the kernel, raise KernelUnsupported naming the stage."""
    try:
        return launch(*args, **kwargs)
    except KernelUnsupported:
        raise
    except Exception as exc:  # Triton raises several unrelated types for a failed compile
        if is_compiler_refusal(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KernelUnsupported(f"{stage}: Triton refused this case ({type(exc).__name__}: {first[:300]}); "
                                    "no other stage was run in its place.") from exc
        raise
