"""`perfmodel import PROFILE`: any Nsight Compute report into a run folder, so `report`, `runs` and the dashboard
read its counters and stall reasons.

PROFILE is a `.ncu-rep` (or `.ncu-rep.gz`, read exactly through NVIDIA's ncu_report module) or the CSV export of
`ncu --import R --page raw --csv` (with `--details FILE`, the `--page details --csv` export too). Every profiled
kernel is kept: kernels inside this toolkit's NVTX ranges keep their implementation and config; any other kernel
is named by its innermost NVTX range, else by its kernel's function name, under the config id `imported`. The
run has the ncu_metrics and stalls tables only; views that need timings say so instead of failing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from perfmodel.errors import UserError

HELP = "turn any Nsight Compute report (.ncu-rep or its raw CSV export) into a run folder"
EXAMPLES = [
    "perfmodel import my-profile.ncu-rep                      # -> runs/<date>-imported-<gpu>/",
    "perfmodel import raw.csv --details details.csv --out runs/",
    "perfmodel report runs/<that run>                         # its stall reasons and counters",
]


def add_arguments(parser) -> None:
    parser.add_argument("profile", metavar="PROFILE", help=".ncu-rep, .ncu-rep.gz, or the raw page's CSV export")
    parser.add_argument("--details", metavar="FILE", help="the details page's CSV export (with a raw CSV PROFILE)")
    parser.add_argument("--out", default="runs", metavar="DIR", help="folder the run folder is created in "
                        "(default: runs/)")


def run(args) -> int:
    from collectors.ncu.import_profile import ImportProblem, import_profile

    try:
        path, summary = import_profile(Path(args.profile), Path(args.out),
                                       Path(args.details) if args.details else None)
    except ImportProblem as exc:
        raise UserError(str(exc)) from None
    print(summary)
    print(f"folder: {path}", file=sys.stdout)
    return 0
