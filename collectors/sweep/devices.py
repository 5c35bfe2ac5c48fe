"""`perfmodel collect --devices all|0,1,...`: one worker process per GPU of this host, one run folder.

The parent splits the suite as `--shard` does (collectors/sweep/shard.py: whole configs, balanced by predicted time,
predicted once here and handed to the workers in the plan), creates the run folder and starts one worker per GPU:
`python -m collectors.sweep.devices --worker SPEC`, with CUDA_VISIBLE_DEVICES set to that GPU
(CUDA_DEVICE_ORDER=PCI_BUS_ID, so the index is nvidia-smi's). Each worker is a whole collect of its shard (its own
ceilings, measured on its GPU, and with ncu its own Nsight Compute session) into its own run folder inside the run:

    <run>/run.json, tables/        the merged run (collectors/sweep/merge.py), written once every worker has ended
    <run>/shards/plan.json         the split, with the predictions it was made from
    <run>/shards/shard-I-of-N/     worker I's run folder (a shard run like `--shard I/N` writes)
    <run>/shards/shard-I-of-N.log  its output; shard-I-of-N.progress.json: its progress, which the parent adds up

No two processes ever write the same folder, so part numbers never clash. An interruption loses nothing: each
worker keeps what it measured (its run is `interrupted`), and `perfmodel collect --resume <run>` resumes every
worker that did not complete, on the GPU it started on, then merges again (the merged tables are replaced).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from collectors.sweep.env import package_version
from collectors.sweep.local import collect_here, resolve_impls
from collectors.sweep.merge import SHARDS_DIR  # the one folder of a run that holds shards (merged copies, or workers)
from collectors.sweep.options import CollectError, CollectOptions, Interrupted, Shard
from runstore.layout import TABLES_DIR
from runstore.reader import load_run
from runstore.safe_io import atomic_write_json, child_process_options, sigterm_as_interrupt
from runstore.writer import RunWriter, new_run_dir

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str | None = None


def list_gpus() -> list[Gpu]:
    """The GPUs of this host as nvidia-smi numbers them (no CUDA context is made); empty without nvidia-smi."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,uuid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit():
            gpus.append(Gpu(int(parts[0]), parts[1], parts[2] if len(parts) > 2 else None))
    return gpus


def pick_devices(text: str, gpus: list[Gpu]) -> list[Gpu]:
    """`all` or `0,1,...` -> the GPUs named, of one model; CollectError in one sentence otherwise."""
    if not gpus:
        raise CollectError("--devices needs this host's NVIDIA GPUs, and nvidia-smi lists none here; run without "
                           "--devices (or with --interpret, which needs no GPU).")
    by_index = {g.index: g for g in gpus}
    if str(text).strip() == "all":
        chosen = list(gpus)
    else:
        parts = [p.strip() for p in str(text).split(",")]
        if not parts or not all(p.isdigit() for p in parts):
            raise CollectError(f"--devices takes all or GPU indices such as 0,1 (nvidia-smi's numbering), "
                               f"not {text!r}.")
        if len(set(parts)) != len(parts):
            raise CollectError(f"--devices {text} names a GPU twice.")
        unknown = [p for p in parts if int(p) not in by_index]
        if unknown:
            have = ", ".join(str(i) for i in sorted(by_index))
            raise CollectError(f"--devices {text}: this host has no GPU {unknown[0]} (its GPUs: {have}).")
        chosen = [by_index[int(p)] for p in parts]
    models = sorted({g.name for g in chosen})
    if len(models) > 1:
        raise CollectError(f"--devices mixes GPU models ({', '.join(models)}); a run is of one GPU model, so name "
                           "GPUs of one model.")
    return chosen


def is_devices_run(path) -> bool:
    try:
        return isinstance(load_run(path).meta.get("devices"), dict)
    except Exception:
        return False


# ---- the parent ---------------------------------------------------------------------------------------------------
def collect_on_devices(opts: CollectOptions, spawn=None) -> Path:
    """Collect `opts` with one worker per GPU (module docstring); `spawn(argv, env, log)` starts a worker
    (default subprocess.Popen). Returns the run folder."""
    from collectors.sweep.shard import make_plan

    spawn = spawn or _popen
    if opts.resume:
        writer = RunWriter(opts.out_dir, {"command_line": " ".join(opts.command_line or ())}, resume=True)
        workers = writer.meta["devices"]["workers"]
    else:
        chosen = pick_devices(opts.devices, list_gpus())
        configs = opts.config_list()
        opts, impls = resolve_impls(opts)  # user kernels' SPECs resolved to absolute paths
        n = min(len(chosen), len(configs))
        chosen = chosen[:n]
        gpu_name = None if opts.interpret else chosen[0].name
        plan = make_plan(n, [i.name for i in impls], configs, opts, gpu_name, opts.predict)
        suite = opts.suite if not opts.configs else "custom"
        run_dir = new_run_dir(opts.out_dir, suite, gpu_name or ("interpret" if opts.interpret else None))
        workers = [{"device_index": g.index, "gpu_uuid": g.uuid, "gpu_name": g.name, "shard": f"{k + 1}/{n}",
                    "folder": f"{SHARDS_DIR}/shard-{k + 1}-of-{n}"} for k, g in enumerate(chosen)]
        meta = {"suite": suite, "mode": "interpret" if opts.interpret else "gpu",
                "configs": [{"config_id": cf.id, **cf.as_dict()} for cf in configs],
                "impls": [{"name": i.name, "kind": i.kind} for i in impls],
                "command_line": " ".join(opts.command_line or ()), "options": opts.as_meta(),
                "environment": {"gpu_name": gpu_name, "host": os.uname().nodename},
                "devices": {"requested": opts.devices, "workers": workers, "plan": f"{SHARDS_DIR}/{PLAN_FILE}",
                            "plan_id": plan.plan_id, "package_version": package_version()}}
        writer = RunWriter(run_dir, meta, run_id=run_dir.name)
        (run_dir / SHARDS_DIR).mkdir(exist_ok=True)
        atomic_write_json(run_dir / SHARDS_DIR / PLAN_FILE, plan.to_json())
        base = dataclasses.replace(opts, devices=None, progress=None, predict=None, plan=None,
                                   command_line=opts.command_line)
        for k, w in enumerate(workers):
            spec = {"options": base.as_meta(), "shard": str(Shard(k + 1, n)), "run_dir": str(run_dir / w["folder"]),
                    "plan": str(run_dir / SHARDS_DIR / PLAN_FILE)}
            atomic_write_json(run_dir / (w["folder"] + ".spec.json"), spec)
    t0 = time.monotonic()
    try:
        with sigterm_as_interrupt():
            ended = _run_workers(writer, workers, spawn, opts.progress)
            _merge(writer, workers, ended)
    except KeyboardInterrupt:
        writer.finish("interrupted")
        raise Interrupted(writer.path) from None
    except BaseException as exc:
        writer.finish("failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise
    devices = dict(writer.meta["devices"], elapsed_s=round(time.monotonic() - t0, 1))
    status = "complete" if all(e["status"] == "complete" for e in ended) else "partial"
    writer.update_meta(devices=devices)
    writer.finish(status)
    return writer.path


def _popen(argv, env, log):
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, **child_process_options())


def _worker_status(path: Path) -> str | None:
    try:
        return load_run(path).status
    except Exception:
        return None


def _run_workers(writer, workers, spawn, progress) -> list[dict]:
    """Start every worker whose run is not complete, show their summed progress, wait; returns per worker its
    status and last log line."""
    from collectors.sweep.progress import Aggregate

    root = writer.path
    procs = {}
    for k, w in enumerate(workers):
        folder = root / w["folder"]
        if _worker_status(folder) == "complete":
            continue
        spec = json.loads((root / (w["folder"] + ".spec.json")).read_text())
        # where the run is now (a run folder may have been moved since it started)
        spec.update(resume=(folder / "run.json").is_file(), run_dir=str(folder),
                    plan=str(root / SHARDS_DIR / PLAN_FILE))
        atomic_write_json(root / (w["folder"] + ".spec.json"), spec)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(w["device_index"]), "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
               "PYTHONUNBUFFERED": "1"}
        env.pop("TRITON_INTERPRET", None)  # the worker's census compiles for sm_90; --interpret starts its own child
        argv = [sys.executable, "-m", "collectors.sweep.devices", "--worker", str(root / (w["folder"] + ".spec.json"))]
        log = open(root / (w["folder"] + ".log"), "a")
        procs[k] = (spawn(argv, env, log), log)
    bar = Aggregate([root / (w["folder"] + ".progress.json") for w in workers],
                    [f"gpu{w['device_index']}" for w in workers], progress)
    try:
        while any(p.poll() is None for p, _ in procs.values()):
            bar.update()
            time.sleep(0.5)
    except BaseException:
        for p, _ in procs.values():  # Ctrl-C reached them too; `kill` of the parent is passed on
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p, _ in procs.values():
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    finally:
        for _, log in procs.values():
            log.close()
    bar.update()
    bar.close()
    ended = []
    for k, w in enumerate(workers):
        tail = (root / (w["folder"] + ".log")).read_text(errors="replace").strip().splitlines()[-1:] \
            if (root / (w["folder"] + ".log")).exists() else []
        ended.append({"status": _worker_status(root / w["folder"]) or "missing",
                      "line": tail[0][:300] if tail else "no output", "worker": w})
    return ended


def _merge(writer, workers, ended) -> None:
    """Replace the run's tables by the merge of the workers' runs (new parts first, then the old ones removed)."""
    from collectors.sweep.merge import check_shards, merged_meta, write_merged
    from runstore.layout import part_files as _part_files

    have = [e for e in ended if e["status"] not in ("missing",)]
    problems = [f"the worker on GPU {e['worker']['device_index']} ({e['worker']['shard']}) ended {e['status']}: "
                f"{e['line']}" for e in ended if e["status"] not in ("complete", "partial")]
    if not have:
        raise CollectError(f"no worker started a run; {problems[0] if problems else 'see the shards/*.log files'}.")
    plan = check_shards([writer.path / e["worker"]["folder"] for e in have], allow_partial=True)
    old = [p for d in (writer.path / TABLES_DIR).iterdir() if d.is_dir() for _, p in _part_files(d)] \
        if (writer.path / TABLES_DIR).is_dir() else []
    meta = merged_meta(plan, writer.meta.get("command_line"))
    meta.pop("command_line", None)
    meta.pop("options", None)  # the run's own (with --devices), not a worker's
    meta["problems"] = problems + meta["problems"]
    writer.update_meta(**meta)
    write_merged(writer, plan, copy_files=False)
    for p in old:
        p.unlink()


# ---- a worker -------------------------------------------------------------------------------------------------------
def _options_from_meta(d: dict, **overrides) -> CollectOptions:
    from kernels.workload import AttentionConfig

    names = {f.name for f in dataclasses.fields(CollectOptions)}
    kw = {k: v for k, v in d.items() if k in names and k not in ("predict", "progress", "plan")}
    kw["configs"] = tuple(AttentionConfig(**c) for c in d.get("configs") or [])
    kw["impls"] = tuple((d.get("impls") or {}).items())
    kw["command_line"] = tuple(d.get("command_line") or ())
    kw.update(overrides)
    return CollectOptions(**kw)


def _worker(spec_path: str) -> int:
    from collectors.ncu.profile import NcuError
    from collectors.sweep.shard import ShardPlan
    from runstore.layout import RunStoreError

    spec = json.loads(Path(spec_path).read_text())
    progress_file = Path(str(spec["run_dir"]) + ".progress.json")

    def progress(done, total, label):
        atomic_write_json(progress_file, {"done": done, "total": total, "label": label, "at": time.time()})

    try:
        if spec.get("resume"):
            opts = _options_from_meta(spec["options"], resume=True, out_dir=spec["run_dir"], run_dir=None,
                                      shard=None, suite=None, stages=None, refs=None, impls=(), configs=(),
                                      determinism_runs=None, progress=progress)
        else:
            plan = ShardPlan.from_json(json.loads(Path(spec["plan"]).read_text()))
            opts = _options_from_meta(spec["options"], shard=spec["shard"], run_dir=spec["run_dir"], plan=plan,
                                      resume=False, progress=progress)
        path = collect_here(opts)  # a worker's shard folder is a run of its own, collected in its process
    except (CollectError, RunStoreError, NcuError) as exc:
        print(f"perfmodel: error: {exc}", flush=True)
        return 2
    except KeyboardInterrupt:
        print("perfmodel: interrupted; what was measured so far is kept.", flush=True)
        return 130
    run = load_run(path)
    print(f"run {run.run_id}: {run.status}", flush=True)
    return 0 if run.status == "complete" else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2]))
    print("usage: python -m collectors.sweep.devices --worker SPEC.json (started by perfmodel collect --devices)",
          file=sys.stderr)
    sys.exit(2)
