"""Named config suites shipped with the toolkit.

- `seed`: the design document's own configuration (H100, fp16, S=2048; B=16 for the FA3 figure it quotes,
  head dim 64 and causal as in its validation script).
- `batching`: the document's batching gate (B = 1, 8, 32 at the seed's other values).
- `fa3-grid`: the FlashAttention-3 paper's forward grid (Shah et al. 2024, Fig. 5): batch·seqlen = 16k,
  S in 512 … 16k, head dim 64 and 128 with hidden size 2048 (so 2048/D heads), causal and not: 24 configs.
- `plan`: every config the plan's gates read, each once: seed, batching and fa3-grid (28 configs), so that one
  `perfmodel collect --suite plan` measures everything `perfmodel gates` checks.
- `fa3-grid-fp8`: the fa3-grid in fp8 (e4m3 inputs, bf16 output), the grid the FlashAttention-3 paper measures its
  fp8 forward on and the plan's fp8 stretch gate names ("fa3-grid in fp8"): stages 0 and 5 run it, the other stages
  and the peers are recorded as not run with their reason (kernels.registry.Impl.refusal).
- `tiny`: small shapes for `--interpret` runs on the CPU (tails, both head dims, causal both ways).
- `tiny-fp8`: the tiny shapes in fp8, for `--interpret`: the sm_90 census of stages 0 and 5 in fp8 and the others'
  refusals (their correctness needs the GPU: Triton 3.6's interpreter rounds e4m3 wrongly, kernels/_launch.py).

A suite may also name how many repetitions its determinism check compares bitwise (`SUITE_DETERMINISM_RUNS`);
a suite that names none leaves it to the collector's default.
"""

from __future__ import annotations

from .workload import AttentionConfig

SEED = AttentionConfig(B=16, H=16, S=2048, D=64, causal=True, dtype="fp16")


def _fa3_grid(dtype: str = "fp16") -> list[AttentionConfig]:
    configs = []
    for D in (64, 128):
        for causal in (False, True):
            for S in (512, 1024, 2048, 4096, 8192, 16384):
                configs.append(AttentionConfig(B=16384 // S, H=2048 // D, S=S, D=D, causal=causal, dtype=dtype))
    return configs


def _each_once(*suites: list[AttentionConfig]) -> list[AttentionConfig]:
    """The configs of `suites` in order, a config that two suites share kept at its first place only."""
    seen: dict[str, AttentionConfig] = {}
    for configs in suites:
        for c in configs:
            seen.setdefault(c.id, c)
    return list(seen.values())


_BATCHING = [SEED.with_(B=b) for b in (1, 8, 32)]
_TINY = [
    AttentionConfig(B=1, H=2, S=17, D=64, causal=True),
    AttentionConfig(B=2, H=1, S=100, D=64, causal=False),
    AttentionConfig(B=1, H=1, S=130, D=128, causal=True),
]

SUITES: dict[str, list[AttentionConfig]] = {
    "seed": [SEED],
    "batching": _BATCHING,
    "fa3-grid": _fa3_grid(),
    "plan": _each_once([SEED], _BATCHING, _fa3_grid()),
    "fa3-grid-fp8": _fa3_grid("fp8"),
    "tiny": _TINY,
    "tiny-fp8": [c.with_(dtype="fp8") for c in _TINY],
}

SUITE_HELP = {
    "seed": "the document's config: B16 H16 S2048 D64 causal fp16",
    "batching": "B = 1, 8, 32 at the seed's other values (the document's batching gate)",
    "fa3-grid": "FlashAttention-3 paper grid: B·S = 16k, S 512..16k, D 64/128, H = 2048/D, causal and not (24)",
    "plan": "everything the plan's gates read, each config once: seed + batching + fa3-grid (28), and 1000 "
            "determinism repetitions",
    "fa3-grid-fp8": "the fa3-grid in fp8 (e4m3 inputs, bf16 output; 24): stages 0 and 5 run it, the rest are "
                    "recorded as not run with their reason",
    "tiny": "three small shapes for CPU interpreter runs (tails, D 64/128, causal both ways)",
    "tiny-fp8": "the tiny shapes in fp8 (e4m3), for --interpret: the fp8 census; correctness needs the GPU",
}

# Suites that name their own determinism repetitions (bitwise comparisons per case). `plan` asks for the
# document's "Constant-time: Bitwise identical across 1000 runs" (seed/einstein-triton-integration.md, Minimum
# Viable); the model file's determinism gate (`repetitions`) is the figure the gates check against.
SUITE_DETERMINISM_RUNS: dict[str, int] = {"plan": 1000}
# repetitions of the determinism check for a suite that names none (and for custom configs)
DEFAULT_DETERMINISM_RUNS = 100


def get_suite(name: str, dtype: str | None = None) -> list[AttentionConfig]:
    """The configs of suite `name`, optionally with every dtype replaced (e.g. bf16)."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}.")
    configs = SUITES[name]
    return [c.with_(dtype=dtype) for c in configs] if dtype else list(configs)


def suite_determinism_runs(name: str) -> int | None:
    """The determinism repetitions suite `name` asks for, or None when it leaves them to the collector."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}.")
    return SUITE_DETERMINISM_RUNS.get(name)
