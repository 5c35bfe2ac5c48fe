"""`perfmodel bench`: time the stages and the peers on a suite, each checked against the reference first.

The measuring is collectors.timing.bench (shared with `perfmodel collect`); this module only turns arguments into
configs and implementations, drives the loop with a progress line, and prints or writes the table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kernels.suites import SUITE_HELP, SUITES
from perfmodel.errors import UserError

HELP = "time stages and peers on a suite (TFLOP/s, spread, ratio to cuDNN); needs an NVIDIA GPU"
EXAMPLES = [
    "perfmodel bench                                   # the seed config, all stages and peers",
    "perfmodel bench --suite fa3-grid --refs sdpa_cudnn,sdpa_flash --csv benchmarks/fa3-grid.csv",
    "perfmodel bench --config B=4,H=16,S=8192,D=128 --stages stage0_baseline,stage5_full --dtype bf16",
    "perfmodel bench --suite batching --refs none",
    "perfmodel bench --suite fa3-grid-fp8 --stages stage0_baseline,stage5_full --refs none   # fp8 (e4m3)",
]

NO_GPU = ("perfmodel bench needs an NVIDIA GPU with CUDA and none is visible here; on a CPU, "
          "`perfmodel collect --interpret` checks every stage under Triton's interpreter instead.")

# The dtypes bench times (fp8: e4m3 inputs, bf16 output; kernels/workload.py's short names).
BENCH_DTYPES = ("fp16", "bf16", "fp8")

# Columns printed on the terminal (the CSV has them all).
SHOWN = ["impl", "config_id", "status", "time_ms", "timing_method", "host_loop_ms", "host_launch_us", "host_bound",
         "spread_pct", "tflops", "vs_cudnn", "vs_cudnn_ci_low", "vs_cudnn_ci_high", "max_abs_err", "exact_frac",
         "error"]


def add_arguments(parser) -> None:
    parser.add_argument("--suite", default="seed", choices=list(SUITES),
                        help="named configs: " + "; ".join(f"{k}: {v}" for k, v in SUITE_HELP.items()))
    parser.add_argument("--config", action="append", metavar="B=..,H=..,S=..,D=..[,causal]",
                        help="a config instead of the suite (repeatable), e.g. B=16,H=16,S=2048,D=64,causal")
    parser.add_argument("--stages", default="all", metavar="all|none|NAME,...",
                        help="stages to time, in registry order (default: all)")
    parser.add_argument("--refs", default="all", metavar="all|none|NAME,...",
                        help="peers: sdpa_flash, sdpa_cudnn, sdpa_efficient, flex, triton_tl, fa3 (default: all; "
                             "ratios are to sdpa_cudnn)")
    parser.add_argument("--impl", action="append", default=[], metavar="NAME=SPEC",
                        help="a kernel of your own (repeatable): SPEC is package.module:function or "
                             "path/to/file.py:function, a function (q, k, v, causal=..., sm_scale=...) on [B, H, S, D] "
                             "tensors (README: 'Measure your own kernel')")
    parser.add_argument("--dtype", choices=list(BENCH_DTYPES),
                        help="override every config's dtype: fp16, bf16, or fp8 (e4m3 inputs, bf16 output, checked "
                             "against the float64 math of the 8-bit values with the budget of PyTorch's fp8 math; "
                             "stages 0 and 5 run it, the others are recorded as not run with their reason, and "
                             "vs_cudnn is empty: cuDNN is not run in fp8)")
    parser.add_argument("--csv", metavar="FILE", help="also write the full table (with GPU, versions, date) here")
    parser.add_argument("--rep-ms", type=float, default=100.0, help="timed milliseconds per case (default 100)")
    parser.add_argument("--warmup-ms", type=float, default=25.0, help="warm-up milliseconds per case (default 25)")


def _configs(args):
    from kernels.suites import get_suite
    from perfmodel.strict import parse_config

    if args.config:
        configs = [parse_config(text) for text in args.config]
        return [c.with_(dtype=args.dtype) for c in configs] if args.dtype else configs
    return get_suite(args.suite, dtype=args.dtype)



def run(args) -> int:
    from collectors.timing import bench
    from collectors.timing.measure import cuda_available
    from kernels.user_kernels import parse_impl_args

    configs = _configs(args)
    if any(c.dtype not in BENCH_DTYPES for c in configs):
        raise UserError("perfmodel bench times fp16, bf16 and fp8 configs only; use dtype=fp16, bf16 or fp8.")
    try:
        impls = bench.resolve(args.stages, args.refs, parse_impl_args(args.impl))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not impls:
        raise UserError("nothing to benchmark: --stages and --refs are both empty.")
    if args.rep_ms <= 0 or args.warmup_ms < 0:
        raise UserError("--rep-ms must be positive and --warmup-ms not negative.")
    csv_path = Path(args.csv) if args.csv else None
    if csv_path is not None and not csv_path.parent.exists():
        raise UserError(f"the folder for --csv ({csv_path.parent}) does not exist.")
    if not cuda_available():
        raise UserError(NO_GPU)

    env = bench.environment()
    progress = bench.Progress(len(configs) * len(impls))
    kinds = {i.name: i.kind for i in impls}
    results = []
    for config in configs:
        for impl in impls:
            progress.step(f"{impl.name} {config.id}")
            results.append(bench.bench_case(impl, config, warmup_ms=args.warmup_ms, rep_ms=args.rep_ms))
            if csv_path is not None:  # rewritten after every case: an interrupted bench keeps what it measured
                _write_csv(bench.bench_table(results, env, kinds=kinds), csv_path)
    progress.close()

    table = bench.bench_table(results, env, kinds=kinds)
    print(f"{env['gpu']} | torch {env['torch']} | triton {env['triton']} | cuDNN {env['cudnn'] or '-'} | "
          f"{env['date']}")
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(table[SHOWN].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if csv_path is not None:
        _write_csv(table, csv_path)
        print(f"wrote {csv_path}", file=sys.stderr)
    bad = table[(table["kind"] == "stage") & table["status"].isin(["wrong", "failed"])]
    return 1 if len(bad) else 0


def _write_csv(table, path: Path) -> None:
    from perfmodel.output import write_output  # light: the GPU machine has no plotly (perfmodel.reports.reporting has)

    write_output(path, table.to_csv(index=False))
