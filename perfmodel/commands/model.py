"""`perfmodel model`: show the Einstein model, check where it contradicts itself, physics and published figures,
or score the predictors of a stage's time (the bound and the predictive model) against measured runs and bench
tables."""

from __future__ import annotations

import argparse
import textwrap

HELP = "show or check the Einstein model; score the bound and the predictive model against measured times"
EXAMPLES = [
    "perfmodel model check",
    "perfmodel model check --gpu h100-sxm --config B=16,H=16,S=2048,D=64,causal --format json",
    "perfmodel model check --model my-plan.toml",
    "perfmodel model show",
    "perfmodel model score runs/20261127-* runs/202612* --bench benchmarks/*.csv",
]
SCORE_EXAMPLES = [
    "perfmodel model score                                  (the bundled runs)",
    "perfmodel model score runs/20261127-* runs/202612*     (run folders; a bundled run also by its id)",
    "perfmodel model score runs/202612* --bench benchmarks/*.csv benchmarks/h200/*.csv",
    "perfmodel model score 20261202-053909-seed-nvidia-h200 --format json",
    "perfmodel model score runs/20261202-060607-seed-nvidia-h200 --loops sass   (the model on the SASS loops)",
    "perfmodel model score runs/RUN --phases        (per key block and phase, against the run's Proton timelines)",
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
    score = sub.add_parser(
        "score", help="median and geometric-mean |error| of the bound and the model against measured stage times",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score every registered predictor of a stage's time (the bound, perfmodel/model/bound.py, and the "
                    "predictive model, perfmodel/model/predictive.py) "
                    "against the stage times measured in runs and bench tables: per stage and overall, the median "
                    "and geometric mean of |predicted / measured - 1| and the share predicted faster; the same by "
                    "S, D, causal, dtype, B and GPU; whether each stage-to-stage gain has the measured sign; and, "
                    "for cases with Nsight Compute counters, whether the binding term names ncu's busiest unit. "
                    "A run's cases are scored with the predictions it stored before it was measured while they "
                    "carry today's model version (stored, out of sample), else computed now from the "
                    "ceilings and micro-benchmarks it measured; a bench table's cases are predicted with the "
                    "datasheet. Without micro-benchmarks of its own, a run or table takes the bundled run's of the "
                    "same SM (the sources table says whose).",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in SCORE_EXAMPLES))
    score.add_argument("runs", nargs="*", metavar="RUN",
                       help="run folders or bundled run ids (default: the bundled runs, unless --bench is given)")
    score.add_argument("--bench", nargs="+", action="extend", default=[], metavar="CSV",
                       help="tables written by `perfmodel bench --csv` (e.g. benchmarks/*.csv)")
    score.add_argument("--format", choices=("table", "json"), default="table")
    score.add_argument("--loops", choices=("ptx", "sass"), default="ptx",
                       help="where the model reads each stage's math loops: the PTX Triton emits (the model, "
                            "default), or the SASS that runs (perfmodel/model/sass_mix.py; scored as model_sass, an "
                            "experiment, never from stored predictions)")
    score.add_argument("--phases", action="store_true",
                       help="instead of the stage times: the model's time of one key-block iteration against the "
                            "cycles per key block of each consumer in the runs' Proton timelines (perfmodel collect "
                            "--timeline), and phase by phase where the model has a figure for the phase (a model that "
                            "prices pipes per SM, not phases, as v3 does, says 'no model figure' there; perfmodel/"
                            "model/phase_score.py). A refused timeline is listed with its reason. Exit 0 when at least "
                            "one timeline was compared, 3 when no run given has one (one sentence names the command "
                            "that records it), 2 for bad input")


def _wrap(prefix: str, text: str) -> str:
    return textwrap.fill(text, width=WIDTH, initial_indent=prefix, subsequent_indent=" " * 18)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _check(args) -> int:
    import json
    from collections import Counter

    from kernels.hardware import get_gpu
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.plan.modelcheck import check_model, findings_frame
    from perfmodel.strict import parse_config

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
    from perfmodel.plan.einstein_file import load_model

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


def _score_sources(args):
    from perfmodel.errors import UserError
    from perfmodel.model import score_sources
    from perfmodel.runs import bundled_run_dirs, load_run, resolve_run_dirs

    if args.runs:
        dirs = resolve_run_dirs(args.runs)
    elif args.bench:
        dirs = []
    else:
        dirs = bundled_run_dirs()
    sources, seen = [], set()
    for d in dirs:
        run = load_run(d)
        if run.run_id not in seen:  # a run given twice (runs/X and the bundled X) counts once
            seen.add(run.run_id)
            sources.append(score_sources.run_source(run))
    for path in args.bench:
        if path not in seen:
            seen.add(path)
            sources.append(score_sources.bench_source(path))
    if not sum(len(s.measurements) for s in sources):
        raise UserError("no stage was timed ok in the given runs and tables: nothing to score.")
    return sources


def _pct(v, sign: str = "+") -> str:
    """v as a whole percentage ("+12%"; sign="" for "12%"), "-" for a missing value."""
    import math

    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * 100:{sign}.0f}%"


def _abs_pct(v) -> str:
    return _pct(v, sign="")


def _score_table(result, predictors) -> str:
    from perfmodel.commands.predict import render_table
    from perfmodel.model.scoring import BREAKDOWNS

    names = list(predictors)
    n_runs = sum(s.kind == "run" for s in result.sources)
    n_bench = len(result.sources) - n_runs
    out = [f"{len(result.cases)} measured stage times from {n_runs} run(s) and {n_bench} bench table(s); "
           f"predictor(s): " + "; ".join(f"{p.name} = {p.description}" for p in predictors.values()), ""]
    out[-1:-1] = [f"model version today: v{_version()} (perfmodel/model/predictive.py MODEL_VERSION; a run's stored "
                  "predictions are scored out of sample while they carry it)", _sample_note()]
    rows = [[s.name, s.kind, len(s.measurements), _methods(s.measurements), s.gpu_source,
             s.predictions if s.kind == "run" else "computed now"] for s in result.sources]
    out += [render_table(rows, ["source", "kind", "stage times", "timed by", "ceilings", "predictions"], right={2}),
            ""]
    out += [*_host_bound_lines(result), ""]
    out.append("|error| of the predicted time (predicted / measured - 1); fast = cases predicted faster than measured")
    header = ["group", "n", *[f"{p} {k}" for p in names for k in ("median", "geomean", "fast")]]
    rows = []
    for key in ("all", *BREAKDOWNS):
        frame = result.errors[key]
        for r in frame.to_dict("records"):
            label = "all" if key == "all" else f"{key}={r['group']}"
            rows.append([label, r["n"], *[cell for p in names for cell in (
                _abs_pct(r[f"{p}_median_abs"]), _abs_pct(r[f"{p}_geomean_abs"]), round(r[f"{p}_fast"] * r["n"]))]])
    out += [render_table(rows, header, right=set(range(1, len(header)))), ""]
    out.append("stage-to-stage gain t[k-1] / t[k] - 1 (median), and the share of pairs whose predicted gain has "
               "the measured sign")
    header = ["stages", "n", "measured", *[f"{p} {k}" for p in names for k in ("gain", "sign right")]]
    rows = [[r["transition"], r["n"], _pct(r["measured_median_gain"]),
             *[f(r[f"{p}_{k}"]) for p in names for k, f in (("median_gain", _pct), ("sign_right", _abs_pct))]]
            for r in result.gain_summary.to_dict("records")]
    out.append(render_table(rows, header, right=set(range(1, len(header)))))
    out += ["", _binding_table(result)]
    return "\n".join(out)


def _methods(measurements) -> str:
    """How a source's stage times were measured, e.g. "cuda_graph 40, host_loop 2" (a GPU time by CUDA graph is
    scored against the predicted GPU time, a host loop's against the time with the exposed host launch)."""
    counts = measurements["timing_method"].value_counts()
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _host_bound_lines(result) -> list[str]:
    """The cases left out of every summary: their host launch path is at least their GPU time."""
    apart = result.host_bound
    if not len(apart):
        return ["host-bound cases left out: none (a case whose host launch path is at least its time is left out of "
                "every figure below; a table without host launch costs cannot say)"]
    lines = [f"host-bound cases left out of every figure below ({len(apart)}: the host launch path is at least the "
             "time, which then measures the host, not the kernel):"]
    lines += [f"  {r['source']} {r['impl']} {r['config_id']}: {r['measured_ms']:.4f} ms ({r['timing_method']})"
              for r in apart.to_dict("records")]
    return lines


def _sample_note() -> str:
    """Which figures are in sample: those computed now, unless the source was measured after the version froze."""
    from perfmodel.model.predictive import FROZEN_AT, MODEL_VERSION

    frozen = FROZEN_AT.get(MODEL_VERSION)
    if frozen is None:
        return (f"IN SAMPLE: model v{MODEL_VERSION} is not frozen yet (perfmodel/model/predictive.py FROZEN_AT), so "
                "every prediction computed now is in sample: the runs and tables were measured before it was made")
    return (f"model v{MODEL_VERSION} was frozen at {frozen}: a prediction computed now is in sample for a source "
            "measured before that commit; only stored predictions are out of sample by construction")


def _version() -> int:
    """Today's model version (what a run's stored predictions must carry to be used)."""
    from perfmodel.model.predictive import MODEL_VERSION

    return MODEL_VERSION


def _binding_table(result) -> str:
    from perfmodel.commands.predict import render_table
    from perfmodel.model.scoring import BUSY_PCT

    frame = result.binding
    if not len(frame) or not frame.iloc[0]["n"]:
        return "binding term against ncu: no scored case has Nsight Compute counters in its run"
    names = [c[: -len("_agree")] for c in frame.columns if c.endswith("_agree")]
    text = (f"binding term against ncu's busiest unit, over the {frame.iloc[0]['n']} cases profiled (the case's "
            f"longest kernel; a unit is busy at >= {BUSY_PCT:g}% of peak, else ncu's verdict is latency; the chain "
            "and an exposed launch agree with latency, issue with the issue slots, FMA or ALU pipe)")
    header = ["group", "n", "ncu verdicts", *[f"{p} {k}" for p in names for k in ("agrees", "terms")]]
    rows = [[r["group"], r["n"], r["ncu_bound"], *[f(r[f"{p}_{k}"]) for p in names
                                                    for k, f in (("agree", _abs_pct), ("terms", str))]]
            for r in frame.to_dict("records")]
    return "\n".join([textwrap.fill(text, width=WIDTH), render_table(rows, header, right={1})])


def _score_json(result, predictors) -> str:
    import json
    import math

    from perfmodel.model.scoring import BUSY_PCT

    def records(frame):
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in frame.astype(object).to_dict("records")]

    doc = {
        "predictors": [{"name": p.name, "description": p.description} for p in predictors.values()],
        "model_version": _version(),
        "sample": _sample_note(),
        "host_bound_left_out": records(result.host_bound[["source", "impl", "config_id", "measured_ms",
                                                          "timing_method"]]),
        "sources": [{"name": s.name, "kind": s.kind, "stage_times": len(s.measurements), "ceilings": s.gpu_source,
                     "predictions": s.predictions if s.kind == "run" else "computed now"} for s in result.sources],
        "busy_pct": BUSY_PCT,
        "binding": records(result.binding),
        "errors": {k: records(v) for k, v in result.errors.items()},
        "gains": records(result.gain_summary),
        "cases": records(result.cases),
        "gain_cases": records(result.gains),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


def _phases(args) -> int:
    import json
    import math
    import sys

    import pandas as pd

    from perfmodel.commands.predict import render_table
    from perfmodel.model.phase_score import NO_TIMELINE_RUNS, NONE_COMPARED, phase_rows
    from perfmodel.runs import bundled_run_dirs, load_run, resolve_run_dirs

    if args.bench:
        from perfmodel.errors import UserError

        raise UserError("--phases compares the model with runs' Proton timelines; a bench table has none: drop "
                        "--bench.")
    frames = [phase_rows(load_run(d)) for d in (resolve_run_dirs(args.runs) if args.runs else bundled_run_dirs())]
    rows = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(not f.empty for f in frames) \
        else frames[0] if frames else pd.DataFrame()
    compared = not rows.empty and rows["timeline_cycles"].notna().any()
    if args.format == "json":
        print(json.dumps([{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                          for r in rows.astype(object).to_dict("records")], indent=2, default=str))
    elif not rows.empty:
        def n(v, fmt):
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

        table = [[r["run_id"], r["config_id"], r["impl"], r["partition"], r["phase"],
                  "-" if n(r["timeline_cycles"], ".0f") == "-" else
                  f"{n(r['timeline_cycles'], '.0f')} [{n(r['timeline_p20'], '.0f')}-{n(r['timeline_p80'], '.0f')}]",
                  n(r["model_cycles"], ".0f"), _pct(r["model_err"]), _cut(str(r["note"]), 70)]
                 for r in rows.to_dict("records")]
        print("cycles per key block: the timeline's median [p20-p80] over work items, the model's at its clock; "
              "err = model / timeline - 1")
        print(render_table(table, ["run", "config", "impl", "partition", "phase", "timeline", "model", "err", "note"],
                           right={5, 6, 7}))
    if not compared:
        print(f"perfmodel: {NO_TIMELINE_RUNS if rows.empty else NONE_COMPARED}", file=sys.stderr)
        return 3
    return 0


def _score(args) -> int:
    from perfmodel.model.predictors import PREDICTORS, sass_variant

    if args.phases:
        return _phases(args)
    from perfmodel.model.scoring import score

    predictors = sass_variant() if args.loops == "sass" else PREDICTORS
    result = score(_score_sources(args), predictors)
    print(_score_json(result, predictors) if args.format == "json" else _score_table(result, predictors))
    return 0


def run(args: argparse.Namespace) -> int:
    from perfmodel.errors import UserError

    if args.model_command == "check":
        return _check(args)
    if args.model_command == "show":
        return _show(args)
    if args.model_command == "score":
        return _score(args)
    raise UserError("choose an action: `perfmodel model check`, `perfmodel model show` or `perfmodel model score`.")
