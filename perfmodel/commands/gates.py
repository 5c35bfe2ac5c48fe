"""`perfmodel gates RUN [RUN ...]`: the plan's success gates on the evidence of one or more runs of one GPU model.

The exit status says what a kernel repository's CI should do with it (EXIT_CODES below); the gates themselves
are judged in perfmodel/plan/gates.py, the runs joined in perfmodel/plan/gates_evidence.py.
"""

from __future__ import annotations

import sys

HELP = "check runs against the plan's success gates (exit 0 pass, 1 fail, 3 not measured, 2 bad input)"
EXIT_CODES = """\
Several runs of one GPU model are judged as one body of evidence (e.g. a seed, a batching and a fa3-grid run);
where two runs measured the same case the newest run's figure is used, and the `run` column says where each
figure came from. Thresholds are those of the model file (--model; default: the shipped plan).

exit status:
  0  every required gate passes (stretch gates count only with --strict; gates judged by a person never block)
  1  a required gate fails
  2  bad input: a missing or corrupt run folder, a bad --model file, runs from different GPU models
  3  no required gate fails, but one is not measured by the runs given; the command that measures each is
     printed. --allow-missing accepts that (exit 0). An --interpret run, a run without tables, a run that lacks
     a table it lists (a copy that lost tables/timings), or runs that measure no required gate at all exit 3
     even with --allow-missing: a CPU-interpreter run holds no GPU timings or counters, a run without tables
     holds nothing, and a lost table may hold what fails a gate, so none is evidence that a gate passes."""
EXAMPLES = [
    "perfmodel gates                                    # the newest bundled run",
    "perfmodel gates runs/SEED runs/BATCHING runs/GRID  # one verdict from three runs of one GPU",
    "perfmodel gates runs/new && echo 'plan met'        # CI: 0 only when every required gate passes",
    "perfmodel gates runs/new --allow-missing           # 0 when nothing measured fails (exit 1 still fails)",
    "perfmodel gates runs/new --strict                  # stretch gates count too",
    "perfmodel gates runs/new --model my-plan.toml --format md   # your plan's thresholds",
]


def add_arguments(parser):
    parser.description = f"{HELP}.\n\n{EXIT_CODES}"
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="run folder(s) of one GPU model, or bundled run ids (default: the newest bundled "
                             "run, one that measured the installed kernels first)")
    parser.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                        help="output format (default: an aligned table)")
    parser.add_argument("--strict", action="store_true", help="stretch gates block as well as required ones")
    parser.add_argument("--allow-missing", action="store_true",
                        help="a required gate the runs do not measure does not hold the exit status at 3 "
                             "(an --interpret run, a run without tables or one that lacks a table it lists still "
                             "cannot exit 0)")
    parser.add_argument("--model", metavar="FILE", help="an Einstein model file instead of the shipped one")


def run(args) -> int:
    from perfmodel import runs
    from perfmodel.errors import UserError
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.plan.gate_reading import one_run_for
    from perfmodel.plan.gates import blocking, evaluate_evidence, exit_status, failed, not_measured
    from perfmodel.plan.gates_evidence import Evidence
    from perfmodel.reports.displays import gates_display
    from perfmodel.reports.markdown import markdown_table

    model = load_model(args.model) if args.model else load_model()
    evidence = Evidence(runs.load_runs(runs.resolve_run_dirs(args.runs or None)))
    gates = evaluate_evidence(evidence, model)
    if blocking(gates, strict=args.strict).empty:
        raise UserError(f"model {model.path} has no gate that can block (a required gate, or a stretch gate with "
                        "--strict, that a person does not judge), so there is nothing to check.")
    several = len(evidence.runs) > 1
    shown = gates_display(gates).drop(columns=["plan says"])
    if several:
        shown.insert(shown.columns.get_loc("detail"), "run", gates["run"])
    if args.format == "csv":
        print(gates.to_csv(index=False), end="")
    elif args.format == "json":
        print(gates.to_json(orient="records", indent=2))
    elif args.format == "md":
        print(markdown_table(shown))
    else:
        what = f"{len(evidence.runs)} runs (oldest first: {evidence.run_id})" if several \
            else f"run {evidence.run_id}"
        print(f"gates for {what} on {evidence.gpu}; model {model.path}")
        print(shown.to_string(index=False, max_colwidth=70))

    problems = evidence.problems()
    code = exit_status(gates, strict=args.strict, allow_missing=args.allow_missing, problems=problems)
    bad, missing = failed(gates, include_stretch=args.strict), not_measured(gates, strict=args.strict)
    err = sys.stderr
    counts = gates["status"].value_counts()
    print(f"{counts.get('pass', 0)} pass, {counts.get('fail', 0)} fail, {counts.get('not_measured', 0)} not "
          f"measured, {counts.get('report', 0)} to judge by hand"
          + (f"; failing: {', '.join(bad['gate'])}" if not bad.empty else ""), file=err)
    if several and evidence.replaced_cases():
        print(f"{evidence.replaced_cases()} measurements (a case in one table) were made by more than one run: the "
              "newest run's are used, and the gates that read them say whose they replace.", file=err)
    for sentence in problems:
        print(f"perfmodel: {sentence}", file=err)
    if not missing.empty:
        held = "" if args.allow_missing else " (exit 3 unless --allow-missing)"
        print(f"not measured{held}; what measures each:", file=err)
        width = max(len(g) for g in missing["gate"])
        for gid, cmd, detail in zip(missing["gate"], missing["command"], missing["detail"]):
            print(f"  {gid:<{width}}  {cmd or detail}", file=err)
        commands = set(missing["command"]) - {""}
        together = one_run_for([g for g in model.gates if g.id in set(missing["gate"])])
        if len(commands) > 1 and together:
            print(f"one run measures them all: {together}", file=err)
    if code == 3 and not problems and not blocking(gates, args.strict)["status"].isin(("pass", "fail")).any():
        print("perfmodel: these runs measure none of the gates that block, so nothing shows the plan is met and "
              "they cannot pass, not even with --allow-missing.", file=err)
    return code
