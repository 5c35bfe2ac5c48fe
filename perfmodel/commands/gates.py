"""`perfmodel gates RUN`: the plan's success gates on one run; exit status 1 when a required gate fails."""

from __future__ import annotations

HELP = "check a run against the plan's success gates (exit 1 when a required gate fails)"
EXAMPLES = [
    "perfmodel gates                       # the bundled run",
    "perfmodel gates runs/20261124-seed --format md",
    "perfmodel gates runs/new --strict     # stretch gates count too",
]


def add_arguments(parser):
    parser.add_argument("run", nargs="?", help="run folder (default: the run bundled with the package)")
    parser.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                        help="output format (default: an aligned table)")
    parser.add_argument("--strict", action="store_true", help="fail on stretch gates as well as required ones")
    parser.add_argument("--model", metavar="FILE", help="an Einstein model file instead of the shipped one")


def run(args) -> int:
    from perfmodel import runs
    from perfmodel.einstein import load_model
    from perfmodel.gates import evaluate_gates, failed
    from perfmodel.report import gates_display, markdown_table

    run_ = runs.load_run(runs.resolve_run_dirs([args.run] if args.run else None)[0])
    model = load_model(args.model) if args.model else None
    gates = evaluate_gates(run_, model)
    shown = gates_display(gates).drop(columns=["plan says"])
    if args.format == "csv":
        print(gates.to_csv(index=False), end="")
    elif args.format == "json":
        print(gates.to_json(orient="records", indent=2))
    elif args.format == "md":
        print(markdown_table(shown))
    else:
        print(f"gates for run {run_.run_id} on {runs.gpu_name(run_) or 'no GPU'}")
        print(shown.to_string(index=False, max_colwidth=70))
    bad = failed(gates, include_stretch=args.strict)
    counts = gates["status"].value_counts()
    print(f"{counts.get('pass', 0)} pass, {counts.get('fail', 0)} fail, {counts.get('not_measured', 0)} not "
          f"measured, {counts.get('report', 0)} to judge by hand"
          + (f"; failing: {', '.join(bad['gate'])}" if not bad.empty else ""),
          file=__import__("sys").stderr)
    return 1 if not bad.empty else 0
