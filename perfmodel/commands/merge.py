"""`perfmodel merge SHARD ... [--out RUN]`: the shards of one collection (`perfmodel collect --shard I/N`) joined into
one run folder that report, gates, compare and the dashboard read like an unsharded run (collectors/sweep/merge.py says
what is checked, how a case measured twice is resolved, and the provenance the merged run.json records)."""

from __future__ import annotations

import sys

from perfmodel.errors import UserError

HELP = "join the run folders of `perfmodel collect --shard I/N` (one suite, one GPU model) into one run"
EXAMPLES = [
    "perfmodel merge runs/shards/* --out runs/fa3-grid-h200        # every shard of one collection",
    "perfmodel merge runs/shards/*shard-1-of-2* runs/shards/*shard-2-of-2*",
    "perfmodel merge runs/shards/* --out runs/partial --allow-partial   # a shard is missing or was cut off",
]
RULES = """\
Refused (exit 2, one sentence): a folder that is not a readable run, a run collected without --shard, a shard
still being written, shards of different GPU models, suites, options or code (git commit, package, torch and
triton versions), or of different splits. A missing shard, or one that stopped before it finished, is refused
too unless --allow-partial: the merged run is then marked partial and run.json's `merge` lists what is missing.
A shard given twice (a job re-run into a new folder) is merged with a warning: a case measured in both keeps
its newest measurement (the shard whose `cases` row finished last), as a --resume'd case does.

exit status:
  0  merged, every shard complete
  1  merged, but partial (a shard missing or stopped, or a case that failed in its shard)
  2  refused"""


def add_arguments(parser) -> None:
    parser.add_argument("shards", nargs="+", metavar="SHARD", help="the shards' run folders")
    parser.add_argument("--out", default=None, metavar="RUN",
                        help="the merged run's folder (created; it must not exist or be empty). Default: a new "
                             "folder under runs/ named <date>-<suite>-merged-<gpu>")
    parser.add_argument("--allow-partial", action="store_true",
                        help="merge although a shard is missing or stopped before it finished (the merged run is "
                             "marked partial)")
    parser.epilog = (parser.epilog or "") + "\n\n" + RULES


def run(args) -> int:
    from collectors.sweep.merge import merge_runs
    from runstore.layout import RunStoreError
    from runstore.reader import load_run

    try:
        path = merge_runs(args.shards, out=args.out, allow_partial=args.allow_partial,
                          command_line=" ".join(sys.argv))
        run = load_run(path)
    except RunStoreError as exc:
        raise UserError(str(exc)) from None
    cases = run.table("cases")
    print(f"run {run.run_id}: {run.status} ({len(cases)} cases from {len(run.meta['merged_from'])} shard(s))")
    print(f"folder: {path}")
    return 0 if run.status == "complete" else 1
