"""On the lent H100/H200: a Proton intra-kernel timeline of each Gluon stage at each config (issue 24), its tables and
its figures, and the instrumented kernel's time against the bare one's.

    python3 scripts/device_timeline.py --archive [--configs "B=16,H=16,S=2048,D=64,causal;..."] [--stages 1,2,3,4,5]
        [--out DIR] [--keep-sms 4] [--rep-ms 100] [--budget-s 540] [--keep-raw]

Needs only what the GPU machine has (torch, Triton 3.6, pandas, pyarrow, numpy) and the checkout on PYTHONPATH (run
it from the repository root). Per config and stage:

1. the stage runs once bare (stage 5 tunes here) with its Triton launch recorded: the compiled kernel's
   partitions and grid plan the capture (collectors/timeline/capture.py: one warp per warp group, a global buffer
   holding every record);
2. one launch of the instrumented build runs inside a Proton session (backend "instrumentation"); Proton writes its
   Chrome trace, which is read into the `timeline` table (collectors/timeline/read.py, schema in
   runstore/schema.py) and turned into figures with their spread (collectors/timeline/figures.py);
3. bare and instrumented are timed by the same method (CUDA-graph replay when both can be captured); a timeline
   whose instrumentation slowed the kernel by more than 10%, whose buffers dropped records, or whose output differs
   from the bare kernel's is refused, with the reason.

Written under --out (default $OUT, else ./timeline-out):

    <gpu>/timeline/<stage>-<config>.chrome_trace.gz  Proton's trace, the programs of --keep-sms SMs (ui.perfetto.dev)
    <gpu>/timeline/<stage>-<config>.meta.json        kernel, warp layout, capture plan, timings, verdict
    tables/timeline-<config>.parquet                 the timeline table (every stage; the kept SMs' programs)
    tables/timeline_figures-<config>.parquet         every stage's figures, over all SMs, with status and reason
    summary.csv, summary.txt                         one row per stage x config; what this script printed

With --archive each config's files go into one timeline-<config>.tar instead (the device tool brings back at most 8
files). Exits 2 with one sentence when Proton's instrumentation mode cannot run here.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_CONFIGS = "B=16,H=16,S=2048,D=64,causal;B=8,H=16,S=2048,D=128,causal;B=2,H=16,S=8192,D=64"
STAGES = {1: "stage1_warpspec", 2: "stage2_reduced_sync", 3: "stage3_persistent", 4: "stage4_overlap",
          5: "stage5_full"}
# the figures printed per case, in this order: (figure, phase)
SHOWN = [("busy_share", ""), ("time_share", "wait"), ("time_share", "mma"), ("iteration_cycles", ""),
         ("phase_cycles", "qk"), ("phase_cycles", "softmax"), ("phase_cycles", "pv"), ("load_hidden_share", ""),
         ("load_under_mma_share", ""), ("pingpong_share", "softmax")]


class Tee(io.TextIOBase):
    """Print to the terminal and keep a copy for summary.txt."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, s):
        self.stream.write(s)
        self.stream.flush()
        return self.copy.write(s)


def gpu_folder(name: str) -> str:
    low = name.lower()
    return "h200" if "h200" in low else "h100" if "h100" in low else "".join(c if c.isalnum() else "-" for c in low)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="configs separated by ';' (default: %(default)s)")
    parser.add_argument("--stages", default="1,2,3,4,5", help="Gluon stage numbers (default: %(default)s)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "timeline-out")
    parser.add_argument("--keep-sms", type=int, default=4,
                        help="SMs whose programs the kept trace and timeline table hold (0: all; figures use all)")
    parser.add_argument("--rep-ms", type=float, default=100.0, help="timing repetitions' length (ms)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="start no case after this many seconds")
    parser.add_argument("--keep-raw", action="store_true", help="also keep Proton's full trace under --out/raw")
    parser.add_argument("--archive", action="store_true", help="one .tar per config instead of the file tree")
    args = parser.parse_args(argv)

    from collectors.timeline.capture import proton_problem
    from kernels.workload import ConfigError, parse_config

    try:
        configs = [parse_config(c) for c in args.configs.split(";") if c.strip()]
        stages = [STAGES[int(s)] for s in args.stages.split(",") if s.strip()]
    except ConfigError as exc:
        print(f"device_timeline: bad --configs: {exc}", file=sys.stderr)
        return 2
    except (KeyError, ValueError):
        print(f"device_timeline: --stages takes numbers among {', '.join(map(str, STAGES))}, got {args.stages!r}.",
              file=sys.stderr)
        return 2
    problem = proton_problem()
    if problem:
        print(f"device_timeline: no timeline can be recorded: {problem}", file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tee = Tee(sys.stdout)
    sys.stdout = tee
    rows = []
    t_start = time.monotonic()
    try:
        import torch
        import triton

        gpu = torch.cuda.get_device_name()
        print(f"{gpu}, torch {torch.__version__}, triton {triton.__version__}; {len(configs)} configs x "
              f"{len(stages)} stages, keeping {args.keep_sms or 'all'} SMs")
        for config in configs:
            written, timelines, figures = [], [], []
            for stage in stages:
                if time.monotonic() - t_start > args.budget_s:
                    rows.append(_not_run(stage, config, f"not started: past the {args.budget_s:.0f} s budget"))
                    continue
                case = run_case(stage, config, out, gpu, args)
                rows.append(case.row)
                written += case.files
                timelines += [case.timeline] if case.timeline is not None else []
                figures += [case.figures] if case.figures is not None else []
            print_side_by_side(config, figures)
            tables = write_tables(out, config, timelines, figures)
            if args.archive:
                archive(out, config, written + tables)
    except KeyboardInterrupt:
        print("interrupted: the cases finished so far are written", file=sys.stderr)
    finally:
        sys.stdout = tee.stream
        write_summary(out, rows, tee.copy.getvalue())
    return 0 if rows and all(r["status"] in ("ok", "refused") for r in rows) else 1


def _not_run(stage, config, reason) -> dict:
    from runstore.schema import case_key

    return {**case_key(stage, config), "status": "not_run", "reason": reason}


# ---- one stage at one config -----------------------------------------------------------------------------------
@dataclass
class Case:
    """What one stage at one config produced: its summary row, the files written, its timeline rows (the kept SMs')
    and its figures (all SMs), both with the case key columns; None where the case failed first."""

    row: dict
    files: list = field(default_factory=list)
    timeline: object = None
    figures: object = None


def run_case(stage: str, config, out: Path, gpu: str, args) -> Case:
    """Capture, read, time and judge one case."""
    import torch

    from collectors.timeline.capture import TimelineUnavailable, jit_launches, plan_capture, record_launch, timed_pair
    from collectors.timeline.figures import figures, overhead_pct, overhead_refusal
    from collectors.timeline.read import TraceUnreadable, load_trace, read_timeline, select_sms, spread_sms
    from collectors.timing.measure import inputs_for_rotation, l2_bytes
    from collectors.timing.stats import ratio_gain_ci
    from kernels._launch import KernelUnsupported
    from kernels.workload import torch_dtype
    from runstore.schema import case_key

    key = case_key(stage, config)
    row = {**key, "status": "failed", "reason": "", "gpu": gpu}
    case = Case(row)
    files = case.files
    t0 = time.monotonic()
    print(f"\n== {stage} {config.id}", flush=True)
    module = importlib.import_module(f"kernels.{stage}")
    folder = out / gpu_folder(gpu) / "timeline"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{stage}-{config.id}"
    raw = Path(tempfile.mkdtemp(prefix="timeline-raw-"))
    try:
        gen = torch.Generator(device="cuda").manual_seed(0)
        shape, dtype = (config.B, config.H, config.S, config.D), torch_dtype(config.dtype)
        sets = [tuple(torch.randn(shape, generator=gen, device="cuda").to(dtype) for _ in range(3))
                for _ in range(inputs_for_rotation(config, l2_bytes()))]
        q, k, v = sets[0]
        module.FAST.clear()  # a prepared launch of earlier inputs would bypass the recorded JIT launch
        with jit_launches() as launches:
            bare_out = module.attention(q, k, v, causal=config.causal)  # stage 5 tunes here
        torch.cuda.synchronize()
        if not launches:
            raise TimelineUnavailable(f"{stage} made no Triton launch to instrument.")
        launch = launches[-1]
        plan = plan_capture(launch, config)
        row.update(kernel=launch.fn.__name__, programs=plan.programs,
                   sampled_warps=",".join(map(str, plan.sampled_warps)), buffer_mib=round(plan.total_bytes / 2**20, 1))
        if hasattr(module, "last_tuned_config"):
            row["tuned_config"] = str(module.last_tuned_config() or "")
        mode = plan.mode()

        rec = record_launch(lambda: module.attention(q, k, v, causal=config.causal), raw / stem, mode)
        row["dropped_events"], row["parse_problems"] = rec.dropped_events, rec.parse_problems
        same = bool(torch.equal(rec.output, bare_out))
        row["output_matches_bare"] = same
        doc = load_trace(rec.trace)
        row["trace_mib"] = round(rec.trace.stat().st_size / 2**20, 1)
        if args.keep_raw:
            (out / "raw").mkdir(exist_ok=True)
            shutil.copy(rec.trace, out / "raw" / rec.trace.name)
        tl = read_timeline(doc, plan.layout)
        row.update(events=len(tl), sms=int(tl["sm"].nunique()))
        kept_sms = spread_sms(tl["sm"].unique(), args.keep_sms)
        trace_file = folder / f"{stem}.chrome_trace.gz"
        with gzip.open(trace_file, "wt") as fh:
            json.dump(select_sms(doc, kept_sms), fh, separators=(",", ":"))
        files.append(trace_file)
        del doc
        figs = figures(tl)
        print(f"   captured {len(tl):,} scopes of {tl['program'].nunique()} programs on {row['sms']} SMs "
              f"({row['trace_mib']} MiB of trace) in {time.monotonic() - t0:.0f} s", flush=True)

        pair = timed_pair(lambda i: module.attention(*sets[i], causal=config.causal), len(sets), mode,
                          reset=module.FAST.clear, rep_ms=args.rep_ms)
        pct = overhead_pct(pair.bare.median_ms, pair.instrumented.median_ms)
        _, low, high = ratio_gain_ci(pair.instrumented.samples_ms, pair.bare.samples_ms)
        row.update(bare_ms=pair.bare.median_ms, bare_ms_p20=pair.bare.p20_ms, bare_ms_p80=pair.bare.p80_ms,
                   instrumented_ms=pair.instrumented.median_ms, instrumented_ms_p20=pair.instrumented.p20_ms,
                   instrumented_ms_p80=pair.instrumented.p80_ms, overhead_pct=pct, overhead_ci_low_pct=100 * low,
                   overhead_ci_high_pct=100 * high, timing_method=pair.method, timing_note=pair.note)
        reasons = [overhead_refusal(pct)]
        if rec.dropped_events:
            reasons.append(f"Proton's buffers dropped {rec.dropped_events} records, so some scopes are missing.")
        if rec.parse_problems:
            reasons.append(f"Proton could not pair {rec.parse_problems} records (its log says scope mismatch or "
                           "clock overflow), so some scopes are missing.")
        if not same:
            diff = (rec.output.float() - bare_out.float()).abs().max().item()
            reasons.append(f"the instrumented kernel's output differs from the bare one's (max |diff| {diff:.3g}).")
        reasons = [r for r in reasons if r]
        row["status"], row["reason"] = ("refused", " ".join(reasons)) if reasons else ("ok", "")
        case.figures = figs.assign(**key, status=row["status"], reason=row["reason"])
        case.timeline = tl[tl["sm"].isin(kept_sms)].assign(**key)
        meta = {"impl": stage, "config": config.as_dict(), "config_id": config.id, "gpu": gpu,
                "kernel": row["kernel"], "layout": plan.layout.as_dict(), "plan": plan.as_dict(),
                "kept_sms": kept_sms, "row": {k: _plain(v) for k, v in row.items()}}
        meta_file = folder / f"{stem}.meta.json"
        meta_file.write_text(json.dumps(meta, indent=1) + "\n")
        files.append(meta_file)
        print_case(figs, row)
    except Exception as exc:  # one case's failure (a refusal, a compile error, a CUDA error) ends that case only
        expected = isinstance(exc, (TimelineUnavailable, TraceUnreadable, KernelUnsupported))
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        row["reason"] = text if expected else f"{type(exc).__name__}: {text}"
        print(f"   failed: {row['reason']}", flush=True)
        if os.environ.get("TIMELINE_TRACEBACK"):
            traceback.print_exc()
    finally:
        shutil.rmtree(raw, ignore_errors=True)
        module.FAST.clear()
        torch.cuda.empty_cache()
    row["wall_s"] = round(time.monotonic() - t0, 1)
    return case


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v


def _fmt(r) -> str:
    if r is None:
        return "-"
    if r["unit"] == "share":
        return f"{r['median']:.2f} [{r['p20']:.2f}-{r['p80']:.2f}]"
    return f"{r['median']:.0f} [{r['p20']:.0f}-{r['p80']:.0f}]"


def print_case(figs, row) -> None:
    """The case's key figures, one line per partition: median [p20-p80] over the samples."""
    partitions = sorted(figs["partition"].unique())
    print(f"   {'figure':28s}" + "".join(f"{p:>22s}" for p in partitions))
    for figure, phase in SHOWN:
        sel = figs[(figs["figure"] == figure) & (figs["phase"] == phase)]
        if sel.empty:
            continue
        cells = []
        for p in partitions:
            hit = sel[sel["partition"] == p]
            cells.append(_fmt(hit.iloc[0] if len(hit) else None))
        name = figure + (f".{phase}" if phase else "")
        print(f"   {name:28s}" + "".join(f"{c:>22s}" for c in cells))
    if "overhead_pct" in row:
        print(f"   bare {row['bare_ms']:.4f} ms, instrumented {row['instrumented_ms']:.4f} ms "
              f"({row['timing_method']}): overhead {row['overhead_pct']:.1f}% [{row['overhead_ci_low_pct']:.1f}, "
              f"{row['overhead_ci_high_pct']:.1f}]; {row['status']}{': ' + row['reason'] if row['reason'] else ''}",
              flush=True)


def print_side_by_side(config, frames: list) -> None:
    """The key figures' medians of every stage at one config, stages as columns: what each technique changed."""
    import pandas as pd

    if not frames:
        return
    figs = pd.concat(frames, ignore_index=True)
    shown = pd.concat([figs[(figs["figure"] == f) & (figs["phase"] == ph)] for f, ph in SHOWN])
    if shown.empty:
        return
    shown = shown.assign(what=shown["figure"] + shown["phase"].map(lambda ph: f".{ph}" if ph else ""))
    table = shown.pivot_table(index=["what", "partition"], columns="impl", values="median", aggfunc="first",
                              sort=False)
    print(f"\n== {config.id}: medians by stage (refused stages' figures included; see the status above)")
    print(table.to_string(float_format=lambda v: f"{v:.3g}"), flush=True)


# ---- writing ---------------------------------------------------------------------------------------------------
def write_tables(out: Path, config, timelines: list, figs: list) -> list[Path]:
    """The config's timeline table (schema columns; run_id empty: no run store yet) and figures, as Parquet."""
    import pandas as pd

    from runstore.schema import columns

    tables = out / "tables"
    tables.mkdir(exist_ok=True)
    written = []
    if timelines:
        frame = pd.concat(timelines, ignore_index=True).assign(run_id="")
        path = tables / f"timeline-{config.id}.parquet"
        frame[columns("timeline")].to_parquet(path, index=False)
        written.append(path)
    if figs:
        path = tables / f"timeline_figures-{config.id}.parquet"
        pd.concat(figs, ignore_index=True).to_parquet(path, index=False)
        written.append(path)
    return written


def archive(out: Path, config, files: list[Path]) -> None:
    path = out / f"timeline-{config.id}.tar"
    with tarfile.open(path, "w") as tar:
        for f in files:
            tar.add(f, arcname=str(f.relative_to(out)))
    for f in files:
        f.unlink(missing_ok=True)
    print(f"   {path.name}: {path.stat().st_size / 2**20:.1f} MiB", flush=True)


def write_summary(out: Path, rows: list[dict], printed: str) -> None:
    import pandas as pd

    if rows:
        frame = pd.DataFrame(rows)
        frame.to_csv(out / "summary.csv", index=False)
        shown = [c for c in ("impl", "config_id", "status", "overhead_pct", "bare_ms", "instrumented_ms", "events",
                             "dropped_events", "wall_s", "reason") if c in frame]
        table = frame[shown].to_string(index=False, max_colwidth=80)
        print("\n" + table)
        printed += "\n" + table + "\n"
    (out / "summary.txt").write_text(printed)
    for d in (out / "tables",):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


if __name__ == "__main__":
    sys.exit(main())
