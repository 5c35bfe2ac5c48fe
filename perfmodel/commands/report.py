"""`perfmodel report RUN [--baseline RUN] [--format html|md] [--out FILE]`."""

from __future__ import annotations

import sys
import time
from pathlib import Path


HELP = "predicted vs measured for one run, as a self-contained HTML file or Markdown"
EXAMPLES = [
    "perfmodel report                                   # the newest bundled run -> report-<run_id>.html",
    "perfmodel report runs/20261124-seed --format md --out report.md",
    "perfmodel report runs/new --baseline runs/old      # adds the run-to-run comparison",
    "perfmodel report --no-model                        # without the predictive model (it compiles each stage)",
]


def add_arguments(parser):
    parser.add_argument("run", nargs="?", help="run folder or a bundled run's id (default: the newest bundled run, "
                                                "one that measured the installed kernels first)")
    parser.add_argument("--baseline", metavar="RUN", help="a second run folder to compare against")
    parser.add_argument("--format", choices=("html", "md"), default=None,
                        help="html (default; opens offline) or md; inferred from --out's suffix when not given")
    parser.add_argument("--out", metavar="FILE", help="where to write (default: report-<run_id>.<format>; "
                        "'-' prints to standard output)")
    parser.add_argument("--model", metavar="FILE", help="an Einstein model file instead of the shipped one")
    parser.add_argument("--no-model", dest="predictive", action="store_false",
                        help="leave out the predictive model (perfmodel/model/predictive.py), which compiles every "
                             "stage kernel for sm_90 (seconds each; a report of the bundled run takes ~2 s instead of "
                             "~8)")


def run(args) -> int:
    from perfmodel import runs
    from perfmodel.output import write_output
    from perfmodel.plan.einstein_file import load_model
    from perfmodel.reports.reporting import build_report

    start = time.perf_counter()
    fmt = args.format
    if fmt is None:
        fmt = "md" if args.out and args.out.lower().endswith((".md", ".markdown")) else "html"
    run_dir = runs.resolve_run_dirs([args.run] if args.run else None)[0]
    run_ = runs.load_run(run_dir)
    baseline = runs.load_run(args.baseline) if args.baseline else None
    model = load_model(args.model) if args.model else None
    for r in (run_, baseline):
        problem = r.missing_tables_problem() if r is not None else None
        if problem:  # the report's banner says it too
            print(f"perfmodel: warning: {problem}", file=sys.stderr)
    text = build_report(run_, baseline, fmt=fmt, model=model, predictive=args.predictive)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out) if args.out else Path(f"report-{run_.run_id}.{fmt}")
    write_output(out, text)
    print(f"wrote {out} ({len(text.encode()) / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s) for run "
          f"{run_.run_id} on {runs.gpu_name(run_) or 'no GPU'}")
    return 0
