"""The GPU memory one case needs, against the GPU's: what `perfmodel collect` refuses before it measures anything
(`memory_problem`), what `perfmodel predict` asks of a kernel's own tensors (`too_large`), and the chunks of heads
the correctness check holds the float64 reference for at once (`heads_per_chunk`, collectors/timing/bench.py).
"""

from __future__ import annotations

# Largest float64 score block the correctness check's reference materializes at once
# (collectors.timing.bench.check_output walks the heads of one batch entry in chunks this size; one head at S=16k is 2
# GiB and is always allowed: a chunk holds at least one head).
REFERENCE_CHUNK_BYTES = 1 << 30


def heads_per_chunk(H: int, S: int, chunk_bytes: int = REFERENCE_CHUNK_BYTES) -> int:
    """Heads of one batch entry whose float64 S x S scores fit `chunk_bytes` (at least one)."""
    return max(1, min(H, chunk_bytes // max(1, S * S * 8)))


def case_bytes(config) -> int:
    """Bytes a case needs on the GPU at once: two input sets of Q, K, V and O in the config's dtype (the timing
    rotates over sets, at least two) and, for the largest chunk of heads the correctness check holds at once
    (`heads_per_chunk`), the float64 reference (kernels/reference.py: Q, K, V and O in float64, the score and
    probability matrices and, when causal, the masked copy of the scores) and PyTorch's low-precision math beside
    it (its scores and probabilities, counted at 4 bytes an element)."""
    heads = heads_per_chunk(config.H, config.S)
    elements = heads * config.S * config.D
    scores = heads * config.S * config.S
    return int(2 * config.min_hbm_bytes + 8 * (4 * elements + (3 if config.causal else 2) * scores) + 4 * 2 * scores)


def too_large(configs, total_bytes: int | None, need=case_bytes) -> list[tuple[object, int]]:
    """(config, bytes it needs) for each config of `configs` whose `need(config)` (default: `case_bytes`, what a
    collected case holds) is more than `total_bytes` of GPU memory; none when the memory is unknown. (`perfmodel
    predict` asks it with the kernel's own tensors, `AttentionConfig.tensor_bytes`, and the hardware table's memory.)"""
    if not total_bytes:
        return []
    return [(cfg, n) for cfg in configs if (n := int(need(cfg))) > total_bytes]


def memory_problem(configs, total_bytes: int | None, gpu: str | None = None) -> str | None:
    """Why a config of `configs` cannot fit `total_bytes` of GPU memory, or None (also when it is unknown)."""
    over = too_large(configs, total_bytes)
    if not over:
        return None
    cfg, need = over[0]
    return (f"config {cfg.id} needs about {need / 2**30:,.1f} GiB of GPU memory (two sets of its inputs and "
            f"output, and the float64 reference of the largest chunk of heads it checks at once), more than the {total_bytes / 2**30:,.1f} GiB of "
            f"{gpu or 'this GPU'}; use a smaller B, H or S.")


def device_memory() -> tuple[str | None, int | None]:
    """(name, total memory in bytes) of the current CUDA device, or (None, None) without one."""
    import torch

    if not torch.cuda.is_available():
        return None, None
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return props.name, int(props.total_memory)
