"""`perfmodel compare BASE NEW`: two runs case by case; exit status 1 when a case got slower beyond noise.

Meant for a kernel repository's CI: collect a run on the main branch and one on the change, then compare them.
The comparison is perfmodel.reports.compare.compare_runs (the same table `perfmodel report --baseline` shows). Runs of
different GPU models are not judged: exit status 3 and one sentence, so a CI check whose runner changed GPU
neither passes nor fails on it silently.
"""

from __future__ import annotations

import sys

from perfmodel.errors import UserError

HELP = "compare two runs case by case; exit 1 when a case got slower beyond both runs' intervals (for CI)"
EXAMPLES = [
    "perfmodel compare runs/main runs/pr-123                    # exit 1 on a regression",
    "perfmodel compare runs/main runs/pr-123 --threshold-pct 5  # only slowdowns above 5% fail",
    "perfmodel compare runs/main runs/pr-123 --format md >> \"$GITHUB_STEP_SUMMARY\"",
    "perfmodel compare runs/main runs/pr-123 --format json > compare.json",
    "perfmodel compare runs/unsharded runs/merged --agreement   # same code twice: do the medians agree?",
]
EXIT_STATUS = """\
A case is a regression when NEW's interval of its median time lies wholly above BASE's (the bootstrap 95% CIs
when both runs kept their timing samples, else both runs' p20-p80 ranges) AND its median is slower by more than
--threshold-pct. Runs collected before samples were kept are compared on p20-p80, and the output says so.

Runs measured on different GPU models are not compared on time: every case timed in both gets the verdict
"different GPU" and the command says why (a change there is the hardware's as much as the code's). The kernel code
each run measured (run.json's kernels_hash) is named on stderr: the same code, different code, or not recorded.

exit status:
  0  no case regressed (improvements, changes within noise or below the threshold, cases not in both runs)
  1  at least one case regressed
  2  a run folder is missing or cannot be read, or an argument is wrong
  3  the runs were measured on different GPU models: nothing was judged (compare runs of one GPU model)

With --agreement the question is whether two runs of the same code agree (e.g. a merged run of shards against an
unsharded one): per case both medians and intervals and whether the intervals overlap; exit 0 when every case
timed in both agrees or differs by less than --threshold-pct, 1 when one differs by more, 3 on different GPUs."""
EXIT_OTHER_GPU = 3


def add_arguments(parser) -> None:
    parser.add_argument("base", metavar="BASE", help="the baseline run folder or bundled run id (e.g. the main "
                                                     "branch's)")
    parser.add_argument("new", metavar="NEW", help="the run to check against it (e.g. the change's)")
    # the default is read when the command runs (perfmodel.reports.compare imports pandas; --help should not wait for
    # it)
    parser.add_argument("--threshold-pct", type=float, default=None, metavar="PCT",
                        help="a slowdown must also exceed this percentage of the baseline median to count "
                             "(default: perfmodel.reports.compare.DEFAULT_THRESHOLD_PCT, 2, the width beyond which the "
                             "collector flags a median's 95%% CI as wide)")
    parser.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                        help="table (default, aligned text), md (Markdown), csv or json (every column of "
                             "perfmodel.reports.compare.compare_runs, counters included)")
    parser.add_argument("--agreement", action="store_true",
                        help="print per case whether the two runs' intervals overlap (both medians, both intervals) "
                             "and exit 1 when a case timed in both does not agree; reads no plotting package")
    parser.epilog = (parser.epilog or "") + "\n\n" + EXIT_STATUS


def run(args) -> int:
    import math

    from perfmodel import runs
    from perfmodel.reports.compare import DEFAULT_THRESHOLD_PCT, compare_runs, no_longer_ok, premise, regressions
    from runstore.layout import RunStoreError
    if args.threshold_pct is None:
        args.threshold_pct = DEFAULT_THRESHOLD_PCT
    if not (math.isfinite(args.threshold_pct) and args.threshold_pct >= 0):
        raise UserError(f"--threshold-pct must be a percentage of at least 0, got {args.threshold_pct:g}.")
    # a bundled run's id names it here as in report, gates and dashboard
    base, new = (runs.load_run(d) for d in runs.resolve_run_dirs([args.base, args.new]))
    try:
        cmp = compare_runs(new, base, threshold_pct=args.threshold_pct)
    except RunStoreError as e:  # a table part that cannot be read: the run folder is corrupt
        raise UserError(str(e).rstrip(".") + ".") from None
    why = premise(new, base)
    if args.agreement:
        code = _agreement(cmp, base, new, args.threshold_pct)
        return _premise_lines(why) or code
    from perfmodel.reports.displays import comparison_display
    from perfmodel.reports.markdown import markdown_table

    if args.format == "csv":
        print(cmp.to_csv(index=False), end="")
    elif args.format == "json":
        print(cmp.to_json(orient="records", indent=2))
    elif args.format == "md":
        print(markdown_table(comparison_display(cmp)))
    else:
        import pandas as pd

        print(f"{new.run_id} ({runs.gpu_name(new) or 'no GPU'}) against baseline {base.run_id} "
              f"({runs.gpu_name(base) or 'no GPU'}), threshold {args.threshold_pct:g}%")
        with pd.option_context("display.max_rows", None, "display.width", 250):
            print(comparison_display(cmp).to_string(index=False))
    _summary(cmp, base, new, regressions(cmp), no_longer_ok(cmp), args.threshold_pct)
    return _premise_lines(why) or (1 if not regressions(cmp).empty else 0)


def _premise_lines(why) -> int:
    """Say on stderr which kernel code the runs measured and, on different GPUs, why nothing was judged; the exit
    status that forces (EXIT_OTHER_GPU on different GPUs, else 0)."""
    print(why.kernels_line(), file=sys.stderr)
    if why.methods_line():
        print(why.methods_line(), file=sys.stderr)
    if why.same_gpu:
        return 0
    print(why.gpu_line(), file=sys.stderr)
    return EXIT_OTHER_GPU


def _summary(cmp, base, new, bad, gone, threshold_pct: float) -> None:
    """What the verdicts add up to, on stderr (so that --format csv/json stays machine-readable on stdout)."""
    from perfmodel.reports.compare import PAIR_PCT_LABEL

    err = sys.stderr
    counts = cmp["verdict"].value_counts()
    print(", ".join(f"{int(n)} {v}" for v, n in counts.items()) or "no cases in either run", file=err)
    if cmp["interval"].eq(PAIR_PCT_LABEL).any():
        print("compared on p20–p80 (at least one run kept no timing samples, so no bootstrap CI): p20–p80 is the "
              "spread of one repetition, wider than the median's CI, so only large changes can show.", file=err)
    for r in gone.itertuples():
        status = r.status_new if isinstance(r.status_new, str) else "missing"
        print(f"note: {r.impl} at {r.config_id} was timed in the baseline but is {status} in {new.run_id}.",
              file=err)
    for r in bad.itertuples():
        print(f"regression: {r.impl} at {r.config_id} {r.time_change_pct:+.1f}% ({r.time_ms_base:.4g} -> "
              f"{r.time_ms_new:.4g} ms; intervals {r.interval}; threshold {threshold_pct:g}%)", file=err)


def _agreement(cmp, base, new, threshold_pct: float) -> int:
    """Per case: both medians, both intervals, and whether they overlap (perfmodel.reports.compare's `within noise`); a
    case whose intervals are apart by less than the threshold is shown as such and does not fail."""
    import pandas as pd

    from perfmodel.reports.compare import OTHER_GPU

    timed = cmp[cmp["verdict"] != "not comparable"].copy()
    near = f"apart, within {threshold_pct:g}%"
    timed["agree"] = timed["verdict"].map(lambda v: "yes" if v == "within noise" else near if v == "below threshold"
                                          else "not judged" if v == OTHER_GPU else "NO")
    show = pd.DataFrame({
        "impl": timed["impl"], "config_id": timed["config_id"],
        f"{base.run_id} ms": timed["time_ms_base"].map("{:.4g}".format),
        "interval": [f"{lo:.4g}-{hi:.4g}" for lo, hi in zip(timed["time_ms_low_base"], timed["time_ms_high_base"])],
        f"{new.run_id} ms": timed["time_ms_new"].map("{:.4g}".format),
        "interval ": [f"{lo:.4g}-{hi:.4g}" for lo, hi in zip(timed["time_ms_low_new"], timed["time_ms_high_new"])],
        "change %": timed["time_change_pct"].map("{:+.2f}".format), "agree": timed["agree"]})
    with pd.option_context("display.max_rows", None, "display.width", 250):
        print(show.to_string(index=False) if not show.empty else "no case was timed in both runs")
    n_agree, n_near = int((timed["agree"] == "yes").sum()), int((timed["agree"] == near).sum())
    kind = timed["interval"].dropna().iloc[0] if timed["interval"].notna().any() else "interval"
    print(f"{n_agree} of {len(timed)} cases timed in both runs agree within their {kind}s, {n_near} more differ by "
          f"less than {threshold_pct:g}% (--threshold-pct); {int((cmp['verdict'] == 'not comparable').sum())} not "
          "timed in both.", file=sys.stderr)
    return 0 if n_agree + n_near == len(timed) else 1
