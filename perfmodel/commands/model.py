"""`perfmodel model`: show the Einstein model, or check where it contradicts itself, physics and published figures."""

from __future__ import annotations

import argparse
import textwrap

HELP = "show the Einstein model or check it against itself, physics and published figures"
EXAMPLES = [
    "perfmodel model check",
    "perfmodel model check --gpu h100-sxm --config B=16,H=16,S=2048,D=64,causal --format json",
    "perfmodel model check --model my-plan.toml",
    "perfmodel model show",
]

WIDTH = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION")
    check = sub.add_parser("check", help="findings: internal inconsistencies, physics, evidence",
                           description="Findings are the product: the exit status is 0 unless the model file is "
                                       "invalid (2).")
    check.add_argument("--model", metavar="FILE", help="an Einstein model TOML (default: the shipped one)")
    check.add_argument("--gpu", default="h100-sxm", metavar="GPU", help="GPU for the physics checks (default h100-sxm)")
    check.add_argument("--config", metavar="SPEC", default="B=16,H=16,S=2048,D=64,causal",
                       help="config for the physics and evidence checks (default: the seed config)")
    check.add_argument("--format", choices=("table", "json"), default="table")
    show = sub.add_parser("show", help="the constraints, stages and gates of the model")
    show.add_argument("--model", metavar="FILE", help="an Einstein model TOML (default: the shipped one)")
    show.add_argument("--format", choices=("table", "json"), default="table")


def _wrap(prefix: str, text: str) -> str:
    return textwrap.fill(text, width=WIDTH, initial_indent=prefix, subsequent_indent=" " * 18)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _check(args) -> int:
    import json
    from collections import Counter

    from perfmodel.strict import parse_config
    from perfmodel.einstein import load_model
    from perfmodel.hardware import get_gpu
    from perfmodel.modelcheck import check_model, findings_frame

    config = parse_config(args.config)
    gpu = get_gpu(args.gpu)
    model = load_model(args.model)
    findings = check_model(model, gpu, config)
    if args.format == "json":
        print(json.dumps(findings_frame(findings).to_dict(orient="records"), indent=2, ensure_ascii=False))
        return 0
    print(f"model {model.path}")
    print(f"checked at {config.id} on {gpu.name}")
    print()
    for f in findings:
        print(_wrap(f"{f.severity.upper():<8}{f.kind:<10}{f.subject}: ", f.message))
    counts = Counter(f.severity for f in findings)
    print()
    print(f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} notes "
          f"(findings are the product, not failures)")
    return 0


def _show(args) -> int:
    import json
    from dataclasses import asdict

    from perfmodel.commands.predict import render_table
    from perfmodel.einstein import load_model

    model = load_model(args.model)
    if args.format == "json":
        print(json.dumps(asdict(model), indent=2, ensure_ascii=False))
        return 0
    print(f"{model.title} ({model.date}) from {model.path}")
    print(f"reference: {model.reference.name} {model.reference.tflops:g} TFLOP/s at {model.reference.config} "
          f"on {model.reference.gpu} ({model.reference.quote!r})")
    print("\nconstraints")
    rows = [[c.id, c.key, c.name, f"+{c.gain_low:.0%}..+{c.gain_high:.0%}", c.removed_by_stage,
             ", ".join(e.metric for e in c.evidence)] for c in model.constraints]
    print(render_table(rows, ["id", "key", "name", "claimed gain", "stage", "evidence"], right={0, 4}))
    print("\nstages")

    def band(lo, hi, unit=""):
        if lo is None:
            return "-"
        return f"{lo:g}{unit}" if lo == hi else f"{lo:g}-{hi:g}{unit}"

    rows = [[s.index, s.impl, s.label, band(s.target_low_tflops, s.target_high_tflops),
             band(s.vs_fa3_low, s.vs_fa3_high, "x"), s.removes_text or "-", _cut(s.expected_gain, 40)]
            for s in model.stages]
    print(render_table(rows, ["stage", "impl", "label", "TFLOP/s", "vs FA3", "removes", "expected"], right={0, 3, 4}))
    print("\ngates")

    def rule(g):
        if g.comparison == "report":
            return "report"
        if g.comparison == "between":
            return f"{g.threshold:g}..{g.threshold_high:g}"
        if g.comparison == "approx":
            return f"~{g.threshold:g} (±{g.rel_tol:.0%})"
        return f"{g.comparison} {g.threshold:g}"

    rows = [[g.id, g.stage, g.kind, rule(g), _cut(g.metric, 40), "yes" if g.measurable else "no"] for g in model.gates]
    print(render_table(rows, ["id", "stage", "kind", "rule", "metric", "measurable"], right={1}))
    return 0


def run(args: argparse.Namespace) -> int:
    from perfmodel.errors import UserError

    if args.model_command == "check":
        return _check(args)
    if args.model_command == "show":
        return _show(args)
    raise UserError("choose an action: `perfmodel model check` or `perfmodel model show`.")
