"""Measure a kernel of your own against the toolkit's stages, from Python (README: "Measure your own kernel").

    python examples/measure_my_kernel.py            # on a CPU: Triton's interpreter, correctness and census
    python examples/measure_my_kernel.py --gpu      # on an H100/H200: timings, Nsight Compute, the report

The kernel measured is examples/my_attention.py:attention, a plain Triton FlashAttention forward written the way a
user's own file would be; point SPEC at yours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import perfmodel

HERE = Path(__file__).resolve().parent
SPEC = f"{HERE / 'my_attention.py'}:attention"


def main() -> int:
    gpu = "--gpu" in sys.argv
    run = perfmodel.collect(
        impls={"my_attention": SPEC},
        configs=["B=1,H=2,S=128,D=64,causal"] if not gpu else ["B=16,H=16,S=2048,D=64,causal"],
        stages="stage0_baseline", refs="sdpa_cudnn" if gpu else "none",
        out=HERE.parent / "runs", interpret=not gpu, ncu=gpu, determinism=3 if not gpu else None,
    )
    print(run.table("correctness")[["impl", "config_id", "status", "max_abs_err", "budget_abs_err"]]
          .to_string(index=False))
    print(run.table("census")[["impl", "status", "wgmma", "registers", "grid_programs", "error"]]
          .to_string(index=False))
    if gpu:
        print(run.table("timings")[["impl", "config_id", "status", "tflops"]].to_string(index=False))
    report = Path(run.path) / "report.html"  # inside the run folder, not loose in the checkout
    out = perfmodel.report(run, out=report)
    print(f"run folder: {run.path}\nreport: {report} ({len(out) // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
