"""`perfmodel collect`: measure every stage and peer on a suite into a run folder (collectors/sweep/collect.py).

This module only turns the arguments into a frozen `CollectOptions`, runs the collection, maps the collectors'
own errors (they cannot import perfmodel) to `UserError`, and prints where the run is and what it holds.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from kernels.suites import SUITE_HELP
from perfmodel.errors import UserError


HELP = "measure every stage and peer on a suite into a run folder (H100; timings, ncu counters, census)"
EXAMPLES = [
    "perfmodel collect --suite seed                         # the document's config, with Nsight Compute",
    "perfmodel collect --suite fa3-grid --refs sdpa_cudnn,sdpa_flash --out runs/",
    "perfmodel collect --config B=8,H=16,S=4096,D=128,causal --stages stage0_baseline,stage5_full --no-ncu",
    "perfmodel collect --suite fa3-grid --no-ablation    # only the stages, peers and counters",
    "perfmodel collect --suite seed --timeline --refs none  # + a Proton timeline of each Gluon stage (H100/H200)",
    "perfmodel collect --resume runs/20261124-163012-seed-nvidia-h100-80gb-hbm3",
    "perfmodel collect --interpret --stages stage0_baseline,stage1_warpspec   # no GPU: correctness + census",
    "perfmodel collect --suite fa3-grid --shard 2/4 --out runs/shards   # one of 4 jobs; then perfmodel merge",
    "perfmodel collect --suite fa3-grid --devices all     # one worker per GPU of this host, one run folder",
    "perfmodel collect --interpret --impl mine=my_attn.py:attention --stages stage0_baseline --refs none",
    "perfmodel collect --suite fa3-grid-fp8 --no-ncu   # fp8 (e4m3): stages 0 and 5; the rest recorded as not run",
]


def add_arguments(parser) -> None:
    parser.add_argument("--suite", default=None, metavar="NAME",
                        help="named configs (default: seed, or tiny with --interpret): "
                             + "; ".join(f"{k}: {v}" for k, v in SUITE_HELP.items()))
    parser.add_argument("--config", action="append", metavar="B=..,H=..,S=..,D=..[,causal]",
                        help="a config instead of the suite's (repeatable), e.g. B=16,H=16,S=2048,D=64,causal; "
                             "dtype=fp16 (default), bf16 or fp8 (e4m3 inputs, bf16 output, checked against the float64 "
                             "math of the 8-bit values; an implementation that does not run fp8 is recorded as "
                             "unavailable with its reason)")
    parser.add_argument("--stages", default=None, metavar="all|none|NAME,...",
                        help="stages to measure, in registry order (default: all)")
    parser.add_argument("--refs", default=None, metavar="all|none|NAME,...",
                        help="peers: sdpa_flash, sdpa_cudnn, sdpa_efficient, flex, triton_tl, fa3 (default: all)")
    parser.add_argument("--impl", action="append", default=[], metavar="NAME=SPEC",
                        help="a kernel of your own (repeatable): SPEC is package.module:function or "
                             "path/to/file.py:function, a function (q, k, v, causal=..., sm_scale=...) on [B, H, S, D] "
                             "tensors (README: 'Measure your own kernel'). Each failed or wrong case is printed with "
                             "its reason; when every kernel of yours failed or was wrong in all its cases, collect "
                             "exits 1 (as for a run that is not complete; 2 is bad input, 130 interrupted)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder the run folder is created in (default: runs/)")
    parser.add_argument("--no-ncu", action="store_true",
                        help="skip the Nsight Compute session (counters are recorded as not measured)")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the ablation phase (each technique switch of the stages that declare switches, "
                             "e.g. stage 5, timed on and off over its tuner's candidates; every variant is checked "
                             "against the reference and timed like a case)")
    parser.add_argument("--timeline", action=argparse.BooleanOptionalAction, default=None,
                        help="also record a Proton intra-kernel timeline of each Gluon stage (and of a kernel of "
                             "yours that declares Proton scopes) at each config: one instrumented launch after the "
                             "cases, stored as the tables timeline, timeline_figures and timeline_cases and a Chrome "
                             "trace under timeline/ in the run folder (ui.perfetto.dev opens it); the instrumented "
                             "build is timed against the bare one by the same method, and a timeline whose "
                             "instrumentation cost more than 10%% is refused with the reason. On by default in "
                             "--suite plan (--no-timeline leaves it out); needs an H100 or H200, not --interpret. "
                             "`perfmodel report` and the dashboard's Inside the kernel page show it")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run: finished cases are kept, the rest are measured")
    parser.add_argument("--interpret", action="store_true",
                        help="no GPU: run the kernels under Triton's CPU interpreter on small configs and record "
                             "correctness and census only (timings and counters: not measured)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="measure only the I-th of N parts of the suite (counted from 1), into its own run "
                             "folder: whole configs, split the same way on every machine and balanced by predicted "
                             "time (collectors/sweep/shard.py); join the N folders with `perfmodel merge` (README: "
                             "'Sweeps beyond one GPU')")
    parser.add_argument("--devices", default=None, metavar="all|0,1,...",
                        help="one worker process per GPU of this host (nvidia-smi's numbering), each measuring its "
                             "share of the suite (split as --shard does) with its own ceilings and Nsight Compute "
                             "session; one run folder, merged at the end; --resume continues every worker")
    parser.add_argument("--determinism", type=int, default=None, metavar="N",
                        help="repeated runs compared bitwise per case (default: the suite's own, 1000 for "
                             "--suite plan as the document asks, else 100)")



def run(args) -> int:
    from collectors.ncu.profile import NcuError
    from collectors.sweep.collect import collect
    from collectors.sweep.options import CollectError, CollectOptions, Interrupted
    from kernels.registry import ImplError
    from kernels.user_kernels import parse_impl_args
    from perfmodel.model.predictors import prediction_rows
    from perfmodel.reports.collect_summary import YOURS_FAILED_EXIT, findings, yours_failed, yours_failed_sentence
    from perfmodel.strict import parse_config
    from runstore.layout import RunStoreError
    from runstore.reader import load_run

    configs = tuple(parse_config(text) for text in (args.config or []))
    resume = args.resume is not None  # an empty --resume is a folder that holds no run, never a new run
    if resume and args.out is not None:
        raise UserError("--resume continues the run in its own folder; drop --out (or start a new run with it).")
    if resume and (args.shard is not None or args.devices is not None):
        raise UserError("--resume continues a run as it was started (its shard or GPUs are in its run.json); drop "
                        "--shard / --devices.")
    try:
        impls = parse_impl_args(args.impl)
    except ImplError as exc:
        raise UserError(str(exc)) from None
    try:
        opts = CollectOptions(
            predict=prediction_rows, suite=args.suite, configs=configs, stages=args.stages, refs=args.refs,
            impls=tuple(impls.items()),
            out_dir=args.resume if resume else args.out or "runs", ncu=not args.no_ncu, resume=resume,
            ablation=not args.no_ablation, timeline=args.timeline,
            interpret=args.interpret,
            determinism_runs=args.determinism,
            shard=args.shard, devices=args.devices,
            command_line=tuple(sys.argv),
        )
        path = collect(opts)
        run = load_run(path)
    except (CollectError, RunStoreError, NcuError) as exc:
        raise UserError(str(exc)) from None
    except Interrupted as exc:
        print(f"perfmodel: interrupted; what was measured so far is kept in {exc.run_dir}: continue with "
              f"`perfmodel collect --resume {shlex.quote(str(exc.run_dir))}`.", file=sys.stderr)
        return 130
    cases = run.table("cases")
    counts = cases["status"].value_counts().to_dict() if not cases.empty else {}
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cases"
    print(f"run {run.run_id}: {run.status} ({summary})")
    print(f"folder: {path}")
    from perfmodel.reports.timing_view import timing_lines

    for line in timing_lines(run):  # how the times were measured, and their agreement with Nsight Compute
        print(line)
    for line in findings(run):  # each failed or wrong case and census with its reason, then the run's problems
        print(f"perfmodel: warning: {line}", file=sys.stderr)
    failed = yours_failed(run)
    if failed:
        print(f"perfmodel: error: {yours_failed_sentence(run, failed)}", file=sys.stderr)
        return YOURS_FAILED_EXIT
    return 0 if run.status == "complete" else 1
