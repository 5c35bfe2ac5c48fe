"""Per math loop of stages 0-5: the PTX instruction mix the model reads against the SASS that runs, by class.

    python scripts/sass_vs_ptx.py [--out FILE]

Each stage is compiled for sm_90 on the CPU as the census compiles it (perfmodel/model/sass_mix.py `compile_stage`),
at the seed config (B16 H16 S2048 D64 causal fp16) and at B4 H16 S4096 D128 fp16, causal (the seed's other values)
and not (the fa3-grid config the H200 run of 2026-12-01 measured). For every math loop it prints:

1. the mix in instruction_mix.LoopMix's classes, one PTX row (instruction_mix.loop_mix, what the model reads
   today) and one SASS row (perfmodel.model.sass_mix: the same fields read from `nvdisasm` of the cubin), with
   `none` = instructions in no class (wgmma fence / commit / wait; WARPGROUP.ARRIVE / DEPBAR), and the replay
   of one warp group alone (perfmodel.model.critical_path.iteration_seconds at the bundled H200 run's micro-benchmarks,
   kernels.hardware h200-sxm) on the PTX nodes and on the SASS nodes;
2. the SASS in its own pipe classes (collectors/census/sass_ops.py CLASSES; uniform-datapath ops apart, `@!PT` apart),
with the
   predicated count, the mbarrier retries left out and the control words' stall cycles summed.

Counts are per thread and iteration, static (both sides of a branch in the loop). Nothing here is measured: the
figures are what the compiler wrote, and they change with Triton, ptxas and the kernels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("stage0_baseline", "stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap",
          "stage5_full")
MIX_COLUMNS = ("instructions", "wgmma", "ex2", "fp", "cvt", "predicate", "int_alu", "shfl", "smem_loads",
               "smem_stores", "global_mem", "bar_sync", "mbarrier_wait", "mbarrier_arrive")
_CLASS_FIELDS = MIX_COLUMNS[1:]


def _configs():
    from kernels.suites import SEED

    big = SEED.with_(B=4, S=4096, D=128)
    return (SEED, big, big.with_(causal=False))


def _latencies():
    """The replay's latencies at the bundled H200 run's micro-benchmarks (None when none is bundled)."""
    from kernels.hardware import GPUS
    from perfmodel.model.predictive import latencies
    from perfmodel.model.run_gpu import with_micro

    return latencies(with_micro(GPUS["h200-sxm"], {}, ""))


def frames():
    """(mix frame, SASS class frame): one row per (config, stage, math loop, source) and per (config, stage,
    math loop)."""
    import pandas as pd

    from perfmodel.model import critical_path, sass_mix
    from perfmodel.model.instruction_mix import MixError, kernel_mix

    lat = _latencies()
    mix_rows, class_rows = [], []
    for config in _configs():
        for impl in STAGES:
            stage = impl[len("stage")]
            try:
                compiled = sass_mix.compile_stage(impl, config)
            except MixError as exc:
                mix_rows.append({"config": config.id, "stage": stage, "loop": f"not compiled: {exc}"})
                continue
            ptx = kernel_mix(compiled).math_loops
            sass = sass_mix.kernel_sass_mix(compiled)
            for n, p in enumerate(ptx):
                s = sass.sass_loops[n] if sass.from_sass else None
                name = f"{p.label} -> {s.label}" if s else f"{p.label} ({sass.source})"
                for source, mix in (("PTX", p), ("SASS", s.mix if s else None)):
                    if mix is None:
                        continue
                    row = {"config": config.id, "stage": stage, "loop": name, "source": source,
                           **{c: getattr(mix, c) for c in MIX_COLUMNS}}
                    row["none"] = mix.instructions - sum(getattr(mix, c) for c in _CLASS_FIELDS)
                    row["replay_ns"] = (round(critical_path.iteration_seconds(mix.path, lat) * 1e9)
                                        if lat is not None else None)
                    mix_rows.append(row)
                if s:
                    class_rows.append({"config": config.id, "stage": stage, "loop": name,
                                       **{c: v for c, v in s.classes.items()}, "predicated": s.predicated,
                                       "retry_not_counted": s.spin_retry_instructions,
                                       "stall_cycles": s.stall_cycles, "match": s.match})
    return pd.DataFrame(mix_rows), pd.DataFrame(class_rows)


def provenance() -> str:
    """What made the figures: Triton, the nvdisasm read, the kernels' source hash, the replay's latencies."""
    import triton
    from triton import knobs

    from kernels.source import source_hash

    tool = knobs.nvidia.nvdisasm
    return (f"Triton {triton.__version__}; nvdisasm {tool.version} ({tool.path}); kernels source hash "
            f"{source_hash()}; replay_ns: critical_path.iteration_seconds, one warp group alone, at the bundled "
            f"H200 run's micro-benchmarks (kernels.hardware h200-sxm)")


def render(mix, classes) -> str:
    """The two tables as text, one block per config."""
    short = {"instructions": "instr", "predicate": "pred", "smem_loads": "lds", "smem_stores": "sts",
             "global_mem": "gmem", "bar_sync": "bar", "mbarrier_wait": "mbar_w", "mbarrier_arrive": "mbar_a",
             "int_alu": "int", "replay_ns": "replay_ns"}
    out = []
    for config in mix["config"].unique():
        out.append(f"== {config}: LoopMix classes, PTX (what the model reads) vs SASS, per thread and iteration")
        part = mix[mix["config"] == config].drop(columns="config").rename(columns=short)
        out.append(part.to_string(index=False))
        if len(classes):
            out.append(f"\n== {config}: SASS pipe classes (collectors/census/sass_ops.py CLASSES; zero columns left "
                       "out)")
            part = classes[classes["config"] == config].drop(columns="config")
            keep = [c for c in part.columns if c in ("stage", "loop", "match") or (part[c] != 0).any()]
            out.append(part[keep].to_string(index=False))
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    from runstore.safe_io import atomic_write_text

    text = provenance() + "\n\n" + render(*frames())
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
