"""Time the Python launch path of the Gluon stages on the CPU, the driver's calls replaced by no-ops.

    python scripts/bench_launch_path.py --label after --csv benchmarks/cpu/launch-path-after.csv
    PYTHONPATH=/path/to/an/older/checkout python scripts/bench_launch_path.py --label before --csv ...

Each stage is called on CPU tensors of the config's shape under Triton's JIT exactly as on an H100 (the JIT
compiles for sm_90, binds and specializes its arguments, the launcher's wrapper encodes the tensor descriptors),
with tests/stub_cuda_driver.py standing in for the driver, so what is timed is every host step above
`cuLaunchKernelEx` (and the stand-in's cuTensorMapEncodeTiled, which does nothing here). With today's kernels both
paths are timed: `full` (the prepared launch forgotten before every call, so each call checks, builds and binds,
then prepares) and `cached` (kernels/_fastlaunch.py); a checkout from before the cache has only `full`. The output
is allocated by the CPU allocator here, not by PyTorch's CUDA caching allocator. The figures are per call, in
microseconds: the median and the 20th and 80th percentiles of `--calls` calls after `--warmup`.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the stand-in driver

GLUON_STAGES = ("stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap", "stage5_full")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit(module_file: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(Path(module_file).parent), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="B=16,H=16,S=2048,D=64,causal")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--label", required=True, help="what the code timed is, e.g. before / after")
    parser.add_argument("--csv", type=Path, help="write the rows here (else print them)")
    args = parser.parse_args(argv)

    import torch
    import triton

    from kernels import _launch
    from kernels.workload import parse_config
    from stub_cuda_driver import stub_cuda_driver

    cfg = parse_config(args.config)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(cfg.B, cfg.H, cfg.S, cfg.D, generator=g).to(torch.float16) for _ in range(3))
    _launch.interpreting = lambda: True  # the input check takes CPU tensors (at the same cost); see the docstring
    rows = []
    with stub_cuda_driver():
        for name in GLUON_STAGES:
            module = importlib.import_module(f"kernels.{name}")
            module.interpreting = lambda: False
            if hasattr(module, "PINNED_CONFIG"):  # stage 5 tunes on a GPU: pinned to its census default
                module.PINNED_CONFIG = module.CENSUS_CONFIG(cfg)
            fast = getattr(module, "FAST", None)
            for path in (("full", "cached") if fast is not None else ("full",)):
                def call():
                    if path == "full" and fast is not None:
                        fast.clear()
                    module.attention(q, k, v, causal=cfg.causal)

                for _ in range(args.warmup):
                    call()
                times = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    call()
                    times.append((time.perf_counter() - t0) * 1e6)
                rows.append({"impl": name, "path": path, "config_id": cfg.id, "calls": args.calls,
                             "median_us": round(statistics.median(times), 2),
                             "p20_us": round(_percentile(times, 0.2), 2), "p80_us": round(_percentile(times, 0.8), 2),
                             "label": args.label, "commit": _commit(module.__file__), "cpu": _cpu_name(),
                             "python": platform.python_version(), "torch": torch.__version__,
                             "triton": triton.__version__, "date": datetime.date.today().isoformat()})
                print(f"{name:22s} {path:7s} median {rows[-1]['median_us']:8.1f} us "
                      f"(p20 {rows[-1]['p20_us']:.1f}, p80 {rows[-1]['p80_us']:.1f})", flush=True)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
