"""`perfmodel merge`: the shards of one collection (`perfmodel collect --shard I/N`) joined into one run.

The merged run is a run folder like any other: its tables hold every shard's rows (run_id the merged run's), in the
order an unsharded collection writes them (suite config order, then implementation order), its run.json the
suite's configs, options and environment. What tells it apart is its provenance only: run.json's `merged_from`
(each shard's run id, folder, shard, status, host, GPU, commit, wall time) and `merge` (how many shards, which are
missing, which were given twice, the plan), and the folder `shards/<shard run id>/` holding each shard's own files
(its run.json as `shard.json`, Nsight Compute reports and exports, compile logs).

Refused, in one sentence each (MergeError): a folder that is no readable run (corrupt, or no run.json), a run that
is no shard, a shard still being written, runs of different GPU models, suites, options or code (git commit and
dirty flag, package, torch and triton versions), shards of different splits (shard count or plan). A shard that
stopped before it finished (interrupted, failed) and a shard that is missing are refused unless
`allow_partial`: then the merged run says so (status `partial`, `merge.complete` false, `merge.missing`) and a
warning line is printed.

A case measured twice (the same shard given twice, e.g. a Slurm task re-run into a new folder) keeps its newest
measurement, the store's own rule for a case measured again after `--resume` (runstore/writer.py: the newest
part of a case wins): every table's rows of that case come from the shard whose `cases` row finished last (rows
the `cases` log does not name, such as the ceilings probes' counters, from the newest shard). Ceilings are kept per
GPU: one set per (device_index, gpu_uuid), from the newest shard that measured that GPU; `ceiling_values` reads
one value per name from them, the median over the GPUs.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from runstore.layout import RUN_JSON, TABLES_DIR, RunStoreError
from runstore.reader import check_tables, load_run
from runstore.schema import TABLES
from runstore.writer import RunWriter, new_run_dir

# options that differ between the shards of one collection by design (where each went, how it was started)
PER_SHARD_OPTIONS = frozenset({"out_dir", "command_line", "resume", "shard", "run_dir", "devices", "predict",
                               "progress", "plan", "ncu_timeout_s"})
# environment fields that name the code the shards ran (merge refuses shards that differ in any; kernels_hash: the
# kernels package's sources, kernels.source.kernels_code, which also tells two dirty trees of one commit apart)
VERSION_FIELDS = ("git_commit", "git_dirty", "kernels_hash", "torch_version", "triton_version")
SHARDS_DIR = "shards"  # in a merged run: each shard's own files, under its run id
FINISHED = ("complete", "partial")  # a shard in another state stopped before its end


class MergeError(RunStoreError):
    """Shards that cannot be merged as asked; the message is one sentence."""


@dataclass
class MergePlan:
    """The shards, checked, and what the merged run will say about them."""

    runs: list  # runstore.reader.Run, ordered by shard index, then by when each was created
    count: int
    missing: list[int] = field(default_factory=list)
    twice: dict[int, list[str]] = field(default_factory=dict)  # shard index -> run ids given for it
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and all(r.status in FINISHED for r in self.runs)


def _name(run) -> str:
    return str(run.path)


def _differ(what: str, runs, value, show=lambda v: v) -> None:
    """Refuse when `value(run)` is not the same for every run, naming the first two that differ."""
    first = runs[0]
    for other in runs[1:]:
        if value(other) != value(first):
            raise MergeError(f"cannot merge runs of different {what}: {_name(first)} has {show(value(first))}, "
                             f"{_name(other)} {show(value(other))}.")


def _options(run) -> dict:
    return {k: v for k, v in (run.meta.get("options") or {}).items() if k not in PER_SHARD_OPTIONS}


def _versions(run) -> dict:
    env = run.environment
    return {**{k: env.get(k) for k in VERSION_FIELDS}, "package": (run.meta.get("shard") or {}).get("package_version")}


def _show_versions(v: dict) -> str:
    return ", ".join(f"{k} {v[k]}" for k in v if v[k] is not None) or "no recorded version"


def _show_options(v: dict) -> str:
    return "options " + ", ".join(f"{k}={v[k]!r}" for k in sorted(v))[:300]


def check_shards(paths, allow_partial: bool = False) -> MergePlan:
    """Open and check the shard folders `paths` (module docstring); MergeError / RunStoreError when they cannot
    be merged."""
    if not paths:
        raise MergeError("give the run folders of the shards to merge (e.g. runs/shards/*).")
    runs = []
    seen_paths = set()
    for p in paths:
        run = load_run(p)
        check_tables(run.path)
        if run.path.resolve() in seen_paths:
            raise MergeError(f"{run.path} is given twice.")
        seen_paths.add(run.path.resolve())
        shard = run.meta.get("shard")
        if not isinstance(shard, dict) or not {"index", "count", "configs", "suite_configs"} <= set(shard):
            why = ("it is already a merged run" if run.meta.get("merged_from")
                   else "it was collected without --shard")
            raise MergeError(f"{run.path} is not a shard ({why}); merge joins the run folders of "
                             "`perfmodel collect --shard I/N`.")
        if run.status == "running":
            raise MergeError(f"{run.path} is still being written (status running); merge it once its collect ends.")
        runs.append(run)
    _differ("schema versions", runs, lambda r: r.meta.get("schema_version", 1))
    _differ("GPU models", runs, lambda r: r.environment.get("gpu_name") or "no GPU")
    _differ("suites", runs, lambda r: (r.meta.get("suite"), r.meta["shard"]["suite_configs"]),
            lambda v: f"suite {v[0]} ({len(v[1])} configs)")
    _differ("options", runs, _options, _show_options)
    _differ("code", runs, _versions, _show_versions)
    _differ("splits", runs, lambda r: int(r.meta["shard"]["count"]), lambda v: f"{v} shards")
    _differ("splits", runs, lambda r: r.meta["shard"].get("plan_id"), lambda v: f"shard plan {v}")
    runs.sort(key=lambda r: (int(r.meta["shard"]["index"]), str(r.meta.get("created", "")), r.run_id))
    count = int(runs[0].meta["shard"]["count"])
    plan = MergePlan(runs, count)
    by_index: dict[int, list[str]] = {}
    for r in runs:
        by_index.setdefault(int(r.meta["shard"]["index"]), []).append(r.run_id)
    plan.twice = {i: ids for i, ids in by_index.items() if len(ids) > 1}
    plan.missing = [i for i in range(1, count + 1) if i not in by_index]
    stopped = [r for r in runs if r.status not in FINISHED]
    if stopped and not allow_partial:
        r = stopped[0]
        raise MergeError(f"{r.path} stopped before it finished (status {r.status}): finish it with `perfmodel collect "
                         f"--resume {r.path}`, or pass --allow-partial to merge what it measured.")
    if plan.missing and not allow_partial:
        given = ", ".join(str(i) for i in sorted(by_index))
        raise MergeError(f"shard {plan.missing[0]} of {count} is missing (given: {given}); pass its run folder, or "
                         "--allow-partial to merge without it (the merged run is then marked partial).")
    for i, ids in sorted(plan.twice.items()):
        plan.warnings.append(f"shard {i}/{count} is given {len(ids)} times ({', '.join(ids)}): a case measured in "
                             "more than one keeps its newest measurement.")
    for r in stopped:
        plan.warnings.append(f"{r.run_id} stopped before it finished (status {r.status}); what it measured is merged "
                             "and the merged run is partial.")
    if plan.missing:
        plan.warnings.append(f"shard(s) {', '.join(str(i) for i in plan.missing)} of {count} missing; the merged "
                             "run is partial.")
    return plan


# ---- the tables ---------------------------------------------------------------------------------------------------
def ceiling_values(ceilings: pd.DataFrame) -> dict[str, float]:
    """{name: value} of a `ceilings` table with one value per name: the median over the rows with a finite,
    positive value. A run measured on several GPUs (`perfmodel collect --devices`, merged shards) has one row per
    GPU and name; a run of one GPU has one, which is its value."""
    if ceilings.empty:
        return {}
    values = pd.to_numeric(ceilings["value"], errors="coerce")
    ok = ceilings.assign(_v=values)[(values > 0) & (values < float("inf"))]
    return {str(n): float(g.median()) for n, g in ok.groupby("name")["_v"] if n}


def _case_winners(runs) -> dict[tuple[str, str], int]:
    """(impl, config_id) -> the position in `runs` of the shard whose `cases` row of that case finished last."""
    best: dict[tuple[str, str], tuple[str, int]] = {}
    for pos, run in enumerate(runs):
        cases = run.table("cases")
        for impl, cid, fin in zip(cases["impl"], cases["config_id"], cases["finished"]):
            key = (str(impl), str(cid))
            stamp = (str(fin or ""), pos)
            if key not in best or stamp >= best[key]:
                best[key] = stamp
    return {k: v[1] for k, v in best.items()}


def _order(df: pd.DataFrame, config_rank: dict, impl_rank: dict) -> pd.DataFrame:
    """Rows in the order an unsharded collection writes them: suite config order, then implementation order
    (a variant label `impl#id` after its implementation; probes last), the shard's own order within a case."""
    if df.empty or "config_id" not in df.columns:
        return df.reset_index(drop=True)
    big = len(config_rank) + len(impl_rank) + 1
    c = df["config_id"].map(lambda v: config_rank.get(str(v), big))
    i = df["impl"].map(lambda v: impl_rank.get(str(v).split("#")[0], big))
    return df.assign(_c=c, _i=i).sort_values(["_c", "_i"], kind="stable").drop(columns=["_c", "_i"]) \
        .reset_index(drop=True)


def merged_tables(runs, config_order: list[str], impl_order: list[str]) -> dict[str, pd.DataFrame]:
    """Every table of the shards `runs` (oldest first for equal shards) joined: a case's rows from its newest
    measurement, the ceilings one set per GPU (module docstring)."""
    names = sorted({t for r in runs for t in r.tables()})
    winners = _case_winners(runs)
    config_rank = {c: k for k, c in enumerate(config_order)}
    impl_rank = {n: k for k, n in enumerate(impl_order)}
    out = {}
    for name in names:
        frames = []
        for pos, run in enumerate(runs):
            df = run.table(name)
            if df.empty:
                continue
            frames.append(df.assign(_pos=pos))
        if not frames:
            continue
        df = pd.concat(frames, ignore_index=True)
        if TABLES[name]["case"]:
            keys = list(zip(df["impl"].astype(str), df["config_id"].astype(str)))
            newest = df.groupby(["impl", "config_id"], dropna=False)["_pos"].transform("max")
            keep = [winners.get(k, n) == p for k, n, p in zip(keys, newest, df["_pos"])]
            df = _order(df[keep], config_rank, impl_rank)
        elif name == "ceilings":
            dev = [f"{'' if pd.isna(i) else i}|{'' if pd.isna(u) else u}"
                   for i, u in zip(df["device_index"], df["gpu_uuid"])]
            newest = df.assign(_dev=dev).groupby("_dev")["_pos"].transform("max")
            df = df[df["_pos"] == newest]
        if name == "timeline_cases" and "trace_file" in df.columns:  # the trace lies in the shard's copy (write_merged)
            df = df.assign(trace_file=[f"{SHARDS_DIR}/{runs[p].run_id}/{t}" if isinstance(t, str) and t else t
                                       for t, p in zip(df["trace_file"], df["_pos"])])
        out[name] = df.drop(columns=["_pos", "run_id"], errors="ignore").reset_index(drop=True)
    return out


# ---- run.json -------------------------------------------------------------------------------------------------------
def _ncu_meta(runs) -> dict | None:
    metas = [(r, r.meta.get("ncu")) for r in runs if isinstance(r.meta.get("ncu"), dict)]
    if not metas:
        return None
    statuses = [m.get("status") for _, m in metas]
    status = next((s for s in ("failed", "partial") if s in statuses), statuses[0])
    if "ok" in statuses and any(s != "ok" for s in statuses) and status not in ("failed",):
        status = "partial"
    merged = {k: v for k, v in metas[0][1].items() if k != "sessions"}
    merged["status"] = status
    merged["sessions"] = [{**s, "shard_run_id": r.run_id} for r, m in metas for s in (m.get("sessions") or [])]
    return merged


def merged_meta(plan: MergePlan, command_line: str | None = None) -> dict:
    """run.json of the merged run (without the fields RunWriter owns)."""
    first = plan.runs[0]
    suite_configs = list(first.meta["shard"]["suite_configs"])
    present = {c for r in plan.runs for c in r.meta["shard"]["configs"]}
    dicts = {c["config_id"]: c for r in plan.runs for c in (r.meta.get("configs") or []) if "config_id" in c}
    impls: dict[str, dict] = {}
    for r in plan.runs:
        for i in r.meta.get("impls") or []:
            impls.setdefault(i.get("name"), i)
    options = {k: v for k, v in (first.meta.get("options") or {}).items() if k not in ("shard", "run_dir")}
    walls = [r.meta.get("wall_s") for r in plan.runs]
    phases: dict[str, float] = {}
    for r in plan.runs:
        for k, v in (r.meta.get("phases_s") or {}).items():
            phases[k] = round(phases.get(k, 0.0) + float(v), 1)
    meta = {
        "suite": first.meta.get("suite"), "mode": first.meta.get("mode"),
        "configs": [dicts[c] for c in suite_configs if c in present and c in dicts],
        "impls": list(impls.values()), "options": options, "environment": dict(first.environment),
        "command_line": command_line or first.meta.get("command_line"),
        "problems": [f"{r.run_id}: {p}" for r in plan.runs for p in (r.meta.get("problems") or [])],
        "ablation": {k: v for r in plan.runs for k, v in (r.meta.get("ablation") or {}).items()},
        # the collector seconds of all shards together (they may have run at the same time)
        "wall_s": round(sum(float(w) for w in walls if isinstance(w, (int, float))), 1), "phases_s": phases,
        "merged_from": [{
            "run_id": r.run_id, "path": str(r.path.resolve()), "shard": f"{r.meta['shard']['index']}/{plan.count}",
            "status": r.status, "created": r.meta.get("created"), "finished": r.meta.get("finished"),
            "host": r.environment.get("host"), "gpu_name": r.environment.get("gpu_name"),
            "cuda_visible_devices": r.environment.get("cuda_visible_devices"),
            "git_commit": r.environment.get("git_commit"), "wall_s": r.meta.get("wall_s"),
            "configs": r.meta["shard"]["configs"]} for r in plan.runs],
        "merge": {"shards": plan.count, "complete": plan.complete, "missing": plan.missing,
                  "given_twice": {str(k): v for k, v in plan.twice.items()}, "unit": first.meta["shard"].get("unit"),
                  "plan_id": first.meta["shard"].get("plan_id"),
                  "balanced_by": first.meta["shard"].get("balanced_by"),
                  "shard_cost_s": first.meta["shard"].get("shard_cost_s"),
                  "case_rule": "a case measured in more than one shard keeps the rows of the shard whose cases row "
                               "finished last"},
    }
    ncu = _ncu_meta(plan.runs)
    if ncu is not None:
        meta["ncu"] = ncu
    preds = [r.meta.get("predictions") for r in plan.runs if isinstance(r.meta.get("predictions"), dict)]
    if preds:
        meta["predictions"] = {**preds[0], "n_rows": sum(int(p.get("n_rows") or 0) for p in preds),
                               "n_failed": sum(int(p.get("n_failed") or 0) for p in preds)}
    return meta


# ---- writing --------------------------------------------------------------------------------------------------------
def write_merged(writer: RunWriter, plan: MergePlan, copy_files: bool = True) -> None:
    """Append the merged tables to `writer`'s run (one part each) and copy each shard's own files under shards/."""
    impl_order = [i.get("name") for i in writer.meta.get("impls") or []]
    config_order = [c["config_id"] for c in writer.meta.get("configs") or []]
    for name, df in merged_tables(plan.runs, config_order, impl_order).items():
        writer.append(name, df)
    if copy_files:
        for run in plan.runs:
            dest = writer.path / SHARDS_DIR / run.run_id
            dest.mkdir(parents=True, exist_ok=True)
            for p in run.path.iterdir():
                if p.name in (TABLES_DIR, ".lock") or p.name.startswith("."):
                    continue
                target = dest / ("shard.json" if p.name == RUN_JSON else p.name)
                if p.is_dir():
                    shutil.copytree(p, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(p, target)


def merge_runs(paths, out: str | Path | None = None, out_root: str | Path = "runs", allow_partial: bool = False,
               command_line: str | None = None, warn=None) -> Path:
    """Merge the shard folders `paths` into the run folder `out` (created; it must not exist or be empty), or into a
    new folder under `out_root`; returns its path. `warn(line)` gets each warning (default: stderr)."""
    plan = check_shards(paths, allow_partial)
    for line in plan.warnings:
        (warn or (lambda s: print(f"perfmodel: warning: {s}", file=sys.stderr)))(line)
    meta = merged_meta(plan, command_line)
    if out is None:
        gpu = meta["environment"].get("gpu_name") or ("interpret" if meta.get("mode") == "interpret" else None)
        run_dir = new_run_dir(Path(out_root), f"{meta.get('suite') or 'custom'}-merged", gpu)
    else:
        run_dir = Path(out).expanduser().absolute()
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise MergeError(f"--out {run_dir} already exists and is not empty; name a new folder for the merged "
                             "run.")
        if any(run_dir.resolve() == r.path.resolve() for r in plan.runs):
            raise MergeError(f"--out {run_dir} is one of the shards; name a new folder for the merged run.")
    writer = RunWriter(run_dir, meta, run_id=run_dir.name)
    try:
        write_merged(writer, plan)
    except OSError as e:
        writer.finish("failed", error=f"cannot write {e.filename or run_dir}: {e.strerror or e}")
        raise RunStoreError(f"cannot write {e.filename or run_dir}: {e.strerror or e}.") from None
    except BaseException as exc:
        writer.finish("failed", error=f"{type(exc).__name__}: {exc}"[:300])
        raise
    writer.finish("complete" if plan.complete and all(r.status == "complete" for r in plan.runs) else "partial")
    return run_dir
