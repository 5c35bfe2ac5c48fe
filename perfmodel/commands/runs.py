"""`perfmodel runs [DIR]`: the run folders under DIR with their GPU, date, status, size, collection time and whether
they measured the installed kernel code; below the table, a line for each run of other or unrecorded kernel code and
each run that lacks a table it lists."""

from __future__ import annotations

HELP = "list run folders with their GPU, date, status, size, collection time and kernel code"
EXAMPLES = [
    "perfmodel runs                 # the runs under runs/",
    "perfmodel runs /data/h100-runs",
]

SHOWN = ["run_id", "gpu", "created", "status", "n_cases", "size_mb", "collect_min", "kernels"]


def add_arguments(parser) -> None:
    parser.add_argument("dir", nargs="?", default="runs", metavar="DIR",
                        help="a folder of run folders, or one run folder (default: runs/)")


def run(args) -> int:
    from perfmodel.runs import list_runs

    df = list_runs(args.dir)
    if df.empty:
        print(f"no runs under {args.dir}")
        return 0
    # minutes `perfmodel collect` ran, over its first invocation and every --resume ("x3": three invocations)
    df["collect_min"] = [("-" if w is None or w != w else f"{w / 60:.1f}" + (f" x{int(n)}" if n and n > 1 else ""))
                         for w, n in zip(df["wall_s"], df["invocations"])]
    shown = df[SHOWN].copy()
    shown["gpu"] = shown["gpu"].fillna("-")
    shown["created"] = shown["created"].fillna("-").astype(str).str.slice(0, 19).str.replace("T", " ")
    shown["n_cases"] = shown["n_cases"].map(lambda n: "-" if n is None or n != n else str(int(n)))
    shown["kernels"] = shown["kernels"].fillna("-")  # installed | differs | unknown (perfmodel.runs.kernel_code)
    print(shown.to_string(index=False))
    for _, r in df.iterrows():
        for line in (r["kernels_line"], r["missing_tables"]):
            if isinstance(line, str) and line:
                print(f"{r['run_id']}: {line}")
        if isinstance(r["error"], str) and r["error"]:
            print(f"{r['path']}: {r['error']}")
    return 0
