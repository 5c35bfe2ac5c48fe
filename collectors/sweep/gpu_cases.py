"""One case of `perfmodel collect` on the GPU, and the GPU state over all of them.

Per case, in this order (collectors/timing/bench.py does the first two for `perfmodel bench` too): correctness against
the float64 reference (a wrong or failing case is recorded and not timed); timings over rotated inputs
(collectors.timing.measure.time_case: the GPU's time by CUDA-graph replay, the host loop's, and the host launch cost)
plus a bare `do_bench` of the same call on one input set, whose ratio to the host loop's time is the collector's own
overhead (`overhead_pct`); the host launch cost and its share of the GPU time (the `launch` table, with
`host_bound`); determinism (N more calls on the same inputs compared bitwise with the first output). The
case's rows are stored at once, its row in the `cases` log last: that row is what `--resume` skips.
"""

from __future__ import annotations

import math
import time

from collectors.sweep import preflight
from collectors.sweep.case_rows import LOGS_DIR, note_compile_log, now, status_row
from collectors.timing.failures import one_line
from kernels.workload import AttentionConfig
from runstore.schema import case_key


def gpu_case(opts, writer, impl, cfg: AttentionConfig, sampler, problems: list[str]) -> None:
    """Measure `impl` at `cfg` with the options `opts` (a CollectOptions) and append its rows to `writer`'s run;
    `sampler` is the GPU state sampler (collectors/timing/gpu_state.py), `problems` gets a failed compile's note."""
    import torch

    from collectors.timing.bench import bench_case
    from collectors.timing.measure import bare_do_bench

    t0 = time.monotonic()
    with preflight.compile_log(writer.path / LOGS_DIR, f"{impl.name}-{cfg.id}") as log:
        res = bench_case(impl, cfg, warmup_ms=opts.warmup_ms, rep_ms=opts.rep_ms, time_it=True,
                         seed=opts.seed, keep_inputs=True)
    note_compile_log(problems, writer, f"{impl.name} {cfg.id}", res.status, res.error, log)
    sets = res.extra.pop("sets", None)
    out0 = res.extra.pop("out", None)
    bare_ms = math.nan
    launch_row = status_row("launch", impl.name, cfg, res.status, res.error or None)
    det_row = status_row("determinism", impl.name, cfg, res.status, res.error or None)
    if res.status == "ok" and sets is not None:
        q, k, v = sets[0]
        call = (lambda: impl.launcher(q, k, v, causal=cfg.causal))
        try:
            bare_ms = bare_do_bench(call, opts.warmup_ms, opts.rep_ms)
        except Exception as exc:
            res.error = f"bare do_bench failed: {one_line(exc)}"
        t1 = time.monotonic()
        times = res.times
        if times is not None and math.isfinite(times.host_launch_us):
            time_ms = times.gpu.median_ms
            launch_row.update(status="ok", error=None, host_launch_us=times.host_launch_us, time_ms=time_ms,
                              timing_method=times.gpu.method, host_bound=times.host_bound,
                              launch_share=times.host_launch_us / (time_ms * 1000.0))
        else:
            launch_row.update(status="failed", error="the host launch path could not be timed")
        try:
            same = 0
            for _ in range(opts.determinism_runs):
                o = call()
                same += int(torch.equal(o, out0))
                del o
            det_row.update(status="ok", error=None, n_runs=opts.determinism_runs, n_identical=same,
                           bitwise_identical=same == opts.determinism_runs)
        except Exception as exc:
            det_row.update(status="failed", error=one_line(exc))
    else:
        t1 = time.monotonic()
    timing = res.timing_row(writer.run_id, bare_ms)
    timing.pop("run_id", None)
    timing.update(
        n_inputs=len(sets) if sets is not None and res.timing else None,
        **sampler.case_state(t0, t1),  # clocks, power, temperature, throttle reasons (collectors/timing/gpu_state.py)
    )
    if res.status == "ok" and not res.timing:
        timing["status"] = "failed"
    correctness = res.correctness_row(writer.run_id)
    correctness.pop("run_id", None)
    samples = res.sample_rows(writer.run_id)  # every timed repetition (none when not timed)
    del sets, out0, res.extra
    writer.append("correctness", [correctness])
    writer.append("timings", [timing])
    writer.append("timing_samples", samples)  # before `cases`, like every table of the case (--resume)
    writer.append("launch", [launch_row])
    writer.append("determinism", [det_row])
    writer.append("cases", [{**case_key(impl.name, cfg), "status": correctness["status"],
                             "error": correctness.get("error") or None,
                             "wall_s": round(time.monotonic() - t0, 3), "finished": now()}])
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def record_clocks(writer, sampler) -> None:
    """The GPU state over this invocation's timings, in run.json (a `--resume`'s in its `resumes` entry)."""
    summary = sampler.summary()
    env = dict(writer.meta.get("environment") or {})
    if writer.meta.get("resumes"):
        writer.meta["resumes"][-1]["clocks_during_timing"] = summary
        writer.update_meta()
        return
    env["clocks_during_timing"] = summary
    writer.update_meta(environment=env)


def device_identity() -> dict:
    """`device_index` and `gpu_uuid` of the GPU this process measures (the ceilings table's device columns): the
    index as the host numbers it (CUDA_VISIBLE_DEVICES when it names one GPU by number, else torch's current device)
    and the UUID nvidia-smi and NVML know it by; None for what cannot be read (no GPU)."""
    import os

    out = {"device_index": None, "gpu_uuid": None}
    try:
        import torch

        if not torch.cuda.is_available():
            return out
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        out["device_index"] = int(visible) if visible.isdigit() else int(torch.cuda.current_device())
        uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
        out["gpu_uuid"] = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
    except Exception:
        pass
    return out
