"""`perfmodel predict`: what the Einstein plan expects per stage, beside each stage's bound (no GPU needed)."""

from __future__ import annotations

import argparse
import math
import sys

HELP = "each stage's TFLOP/s as the Einstein plan predicts it (absolute, relative) and its speed-of-light bound"
EXAMPLES = [
    "perfmodel predict --config B=16,H=16,S=2048,D=64,causal",
    "perfmodel predict --config B=16,H=16,S=2048,D=64,causal --gpu h100-sxm --baseline-tflops 320",
    "perfmodel predict --suite batching --format csv > batching.csv",
    "perfmodel predict --config B=4,H=16,S=8192,D=128 --gpu 'NVIDIA H200' --format json",
]

SEED_TEXT = "B=16,H=16,S=2048,D=64,causal"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", metavar="SPEC",
                       help=f"one workload, e.g. {SEED_TEXT} (add ,dtype=bf16 for bf16; default: the seed config)")
    which.add_argument("--suite", metavar="NAME", help="a named suite of configs (seed, batching, fa3-grid, tiny)")
    parser.add_argument("--gpu", default="h100-sxm", metavar="GPU",
                        help="h100-sxm (default), h100-pcie, h200-sxm, a100-sxm-80gb, or a torch device name")
    parser.add_argument("--baseline-tflops", metavar="X",
                        help="a measured stage-0 TFLOP/s: enables the Einstein relative predictions")
    parser.add_argument("--model", metavar="FILE", help="an Einstein model TOML (default: the shipped one)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")


def _positive_float(text: str, what: str) -> float:
    from perfmodel.errors import UserError

    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{what} must be a number, got {text!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{what} must be a positive number, got {text!r}.")
    return value


def _fmt(x: float, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _band(lo: float, hi: float) -> str:
    if math.isnan(lo):
        return "-"
    return f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f}"


def render_table(rows: list[list[str]], header: list[str], right: set[int]) -> str:
    """Plain aligned text: columns two spaces apart, numbers right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _no_kernel_notes(frame) -> list[str]:
    """One line per reason some stages have no kernel at this config (their bound columns say "no kernel")."""
    by_reason: dict[str, list[str]] = {}
    for r in frame.itertuples(index=False):
        if r.no_kernel:
            by_reason.setdefault(r.no_kernel.removeprefix("no kernel: "), []).append(r.impl)
    return [f"no kernel: {', '.join(impls)} ({why}); the bound describes a kernel that does not exist."
            for why, impls in by_reason.items()]


def _that_fit(configs: list, gpu) -> list:
    """The configs whose Q, K, V and O fit the memory of `gpu` (kernels/hardware.py), checked as `perfmodel collect`
    checks its cases (collectors/timing/memory.py `too_large`), with the kernel's own tensors in place of what a
    collected case also holds (a second input set, the float64 reference). No time is printed for a kernel that cannot
    run there: when no config fits, the first is refused in one sentence; else those that do not are left out with a
    warning naming them."""
    from collectors.timing.memory import too_large
    from perfmodel.errors import UserError

    over = too_large(configs, gpu.memory_bytes, need=lambda config: config.tensor_bytes)
    if not over:
        return configs
    memory = f"{gpu.memory_bytes / 2**30:,.1f} GiB"
    if len(over) == len(configs):
        config, need = over[0]
        others = f" (nor can the other {len(over) - 1} configs)" if len(over) > 1 else ""
        raise UserError(f"config {config.id} cannot run on {gpu.name}{others}: its Q, K, V and O need "
                        f"{need / 2**30:,.1f} GiB ({need:,} bytes), more than the GPU's {memory} of memory, so there "
                        "is no time to predict; use a smaller B, H or S.")
    left_out = {config.id for config, _ in over}
    print(f"perfmodel: warning: left out {', '.join(sorted(left_out))}: their Q, K, V and O need more than the "
          f"{memory} of memory of {gpu.name}, so no kernel can run them there.", file=sys.stderr)
    return [config for config in configs if config.id not in left_out]


def _table(frame, config, gpu, baseline) -> str:
    header = ["stage", "impl", "removes", "ein_abs", "ein_rel", "bound", "time_ms", "tensor_ms", "exp_ms",
              "hbm_ms", "launch_ms", "wave_ms"]
    rows = []
    for r in frame.itertuples(index=False):
        rows.append([r.stage, r.impl, r.removes or "-", _band(r.einstein_abs_low_tflops, r.einstein_abs_high_tflops),
                     _band(r.einstein_rel_low_tflops, r.einstein_rel_high_tflops),
                     "no kernel" if r.no_kernel else _fmt(r.bound_tflops, 0),
                     _fmt(r.bound_time_ms, 4), _fmt(r.tensor_ms, 4), _fmt(r.exp_ms, 4), _fmt(r.hbm_ms, 4),
                     _fmt(r.launch_ms, 4), _fmt(r.wave_ms, 4)])
    measured = f" (measured: {', '.join(sorted(gpu.measured))})" if gpu.measured else " (datasheet ceilings)"
    head = [
        f"{config.id} on {gpu.name}{measured}",
        f"  {config.flops / 1e9:,.1f} GFLOP, {config.min_hbm_bytes / 1e6:,.1f} MB minimum HBM traffic, "
        f"{config.arithmetic_intensity:.0f} FLOP/B (ridge {gpu.ridge_flop_per_byte:.0f}); "
        f"roofline {frame['roofline_tflops'].iloc[0]:.0f} TFLOP/s",
        "",
    ]
    rel = (f"baseline {baseline:g} x the claimed gains removed so far" if baseline else "needs --baseline-tflops X")
    notes = [
        "",
        "TFLOP/s: ein_abs = the plan's target as written (its setting: H100 SXM, fp16, S=2048);",
        f"         ein_rel = {rel};",
        "         bound = the stage's speed-of-light bound (perfmodel/model/bound.py): every unit at its ceiling.",
        "*_ms: the bound's terms; they overlap per stage, time_ms = overlapped compute + wave + launch.",
        *_no_kernel_notes(frame),
    ]
    table = render_table(rows, header, right=set(range(3, len(header))))
    return "\n".join([*head, table, *notes])


def run(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from kernels.hardware import get_gpu
    from kernels.suites import get_suite
    from perfmodel.errors import UserError
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.plan.predictions import predict
    from perfmodel.strict import parse_config

    if args.suite is not None:  # an empty name is an unknown suite, never the default
        try:
            configs = get_suite(args.suite)
        except KeyError as e:
            raise UserError(str(e.args[0])) from None
    else:  # an empty --config is refused by the parser, never read as the seed config
        configs = [parse_config(SEED_TEXT if args.config is None else args.config)]
    gpu = get_gpu(args.gpu)
    baseline = _positive_float(args.baseline_tflops, "--baseline-tflops") if args.baseline_tflops is not None else None
    model = load_model(args.model)

    from perfmodel.plan.predictions import KERNEL_DTYPES, KERNEL_HEAD_DIMS

    for config in configs:
        if config.D not in KERNEL_HEAD_DIMS or config.dtype not in KERNEL_DTYPES:
            raise UserError(f"no kernel of this toolkit runs {config.id}: the kernels run head dims "
                            f"{' and '.join(map(str, KERNEL_HEAD_DIMS))} in {', '.join(KERNEL_DTYPES)}, so there is "
                            "nothing to predict; `perfmodel model check` covers the plan's own numbers.")
    configs = _that_fit(configs, gpu)
    frames = []
    for config in configs:
        frame = predict(config, gpu, model=model, baseline_tflops=baseline)
        if args.format == "table":
            print(_table(frame, config, gpu, baseline))
            if config is not configs[-1]:
                print()
        frames.append(frame.assign(config_id=config.id, gpu=gpu.key))
    if args.format != "table":
        out = pd.concat(frames, ignore_index=True)
        out = out[["config_id", "gpu", *[c for c in out.columns if c not in ("config_id", "gpu")]]]
        if args.format == "csv":
            print(out.to_csv(index=False), end="")
        else:
            records = json.loads(out.to_json(orient="records"))
            print(json.dumps(records, indent=2))
    return 0
