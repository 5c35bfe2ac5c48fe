"""Shards of a collection: `perfmodel collect --shard I/N` measures the I-th of N deterministic parts of a suite.

**The unit is a whole config.** Every implementation of one config lands in the same shard (and, with `--devices`,
the same process on the same GPU), so a stage and the cuDNN reference it is compared with are timed side by side,
under the same clocks, and the config's ablation, census and batching rows come from the run that timed it.

**Balancing.** Each case costs, in seconds of collector time,

    cost_s = CASE_OVERHEAD_S + 2 (warmup_ms + rep_ms) / 1000 + determinism_runs x time_ms / 1000

(the fixed part: compiling, the float64 reference, the inputs; two `do_bench` windows, the rotated one and the
bare one, which last their set time whatever the kernel; the determinism calls, which scale with the kernel). The
kernel's `time_ms` is predicted, never measured: the predictor the perfmodel layer hands the collector
(`CollectOptions.predict`, the predictive model then the bound, in that order of preference, per stage x config),
and for what it does not predict (the peers, a user's kernel, a stage it fails on) the config's FLOPs at the
datasheet tensor rate of the run's GPU (kernels/hardware.py; the H100 SXM's when the GPU is not in the table or
under --interpret). run.json's `shard.balanced_by` says which cases were costed by which. A config costs the sum
of its cases; configs are assigned greedily, longest first (ties broken by config id), each to the shard with the
least cost so far (ties to the lower index). The same code, options and GPU model give the same plan on every
machine; its id (`plan_id`, a hash of the assignment) is recorded so `perfmodel merge` can tell shards planned
differently apart.

On the lent H200 the fixed part dominates a case (runs/20261202-031456-seed-nvidia-h200, table `cases`: 0.5-3.3 s
a case against kernels of 0.4-1.1 ms, 100 determinism calls), so shards of configs of similar cost get similar
numbers of configs; the kernel time decides between long and short configs (S = 16k) and under `--suite plan`
(1000 determinism calls).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from collectors.sweep.options import CollectError, Shard
from collectors.timing.failures import one_line
from kernels.hardware import DEFAULT_GPU
from kernels.workload import AttentionConfig

# Seconds a case costs besides its kernel: the median `wall_s` of a case that does not autotune in
# runs/20261202-031456-seed-nvidia-h200 (stages 1-3, sdpa_*: 0.5-1.2 s; stage 0, which compiles first, 3.3 s).
CASE_OVERHEAD_S = 1.0
# the datasheet a FLOPs proxy is costed with when the run's GPU is not in the hardware table (or there is none)
PROXY_GPU = DEFAULT_GPU


def case_cost_s(time_ms: float, opts) -> float:
    """Collector seconds of one case whose kernel takes `time_ms` (module docstring)."""
    return CASE_OVERHEAD_S + 2 * (opts.warmup_ms + opts.rep_ms) / 1000 + opts.determinism_runs * time_ms / 1000


def _proxy_ms(cfg: AttentionConfig, gpu) -> float:
    return cfg.flops / (gpu.mma_tflops(cfg.dtype) * 1e12) * 1e3


def predicted_ms(rows: list[dict], impls: list[str], configs: list[AttentionConfig], gpu) -> dict:
    """(impl, config_id) -> (time_ms, how): the model's prediction, else the bound's (rows of the `predictions`
    table), else the FLOPs proxy on `gpu`'s datasheet ("flops")."""
    ok = {(r["impl"], r["config_id"], r["predictor"]): float(r["time_ms"]) for r in rows
          if r.get("status") == "ok" and r.get("time_ms") is not None and math.isfinite(float(r["time_ms"]))
          and float(r["time_ms"]) > 0}
    out = {}
    for cfg in configs:
        for impl in impls:
            for predictor in ("model", "bound"):
                if (impl, cfg.id, predictor) in ok:
                    out[(impl, cfg.id)] = (ok[(impl, cfg.id, predictor)], predictor)
                    break
            else:
                out[(impl, cfg.id)] = (_proxy_ms(cfg, gpu), "flops")
    return out


@dataclass
class ShardPlan:
    """Which shard measures each config of a suite, and what each config was predicted to cost."""

    count: int
    configs: list[str]  # every config id of the suite, in suite order
    assignment: dict[str, int]  # config id -> shard index (from 1)
    cost_s: dict[str, float]  # config id -> predicted collector seconds
    balanced_by: dict[str, list[str]]  # "model" | "bound" | "flops" -> ["<impl> <config_id>", ...]
    predictions: list[dict] = field(default_factory=list, repr=False)  # the predictor's rows (not in run.json)
    prediction_error: str | None = None  # why the predictor gave no rows, if it failed

    @property
    def plan_id(self) -> str:
        text = json.dumps([self.count, [[c, self.assignment[c]] for c in self.configs]])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def configs_of(self, index: int) -> list[str]:
        return [c for c in self.configs if self.assignment[c] == index]

    def record(self, shard: Shard) -> dict:
        """run.json's `shard`: which shard this run is, what it measures, and how the suite was split."""
        load = {str(i): round(sum(self.cost_s[c] for c in self.configs_of(i)), 3)
                for i in range(1, self.count + 1)}
        return {"index": shard.index, "count": shard.count, "unit": "config", "plan_id": self.plan_id,
                "configs": self.configs_of(shard.index), "suite_configs": list(self.configs),
                "assignment": dict(self.assignment), "cost_s": {c: round(v, 3) for c, v in self.cost_s.items()},
                "shard_cost_s": load, "balanced_by": self.balanced_by,
                "case_cost": f"{CASE_OVERHEAD_S:g} s + 2 (warmup_ms + rep_ms) / 1000 + determinism_runs x "
                             "predicted time_ms / 1000 (collectors/sweep/shard.py)"}

    def to_json(self) -> dict:
        return {"count": self.count, "configs": self.configs, "assignment": self.assignment, "cost_s": self.cost_s,
                "balanced_by": self.balanced_by, "predictions": self.predictions,
                "prediction_error": self.prediction_error}

    @classmethod
    def from_json(cls, d: dict) -> "ShardPlan":
        return cls(int(d["count"]), list(d["configs"]), {k: int(v) for k, v in d["assignment"].items()},
                   {k: float(v) for k, v in d["cost_s"].items()}, dict(d["balanced_by"]),
                   list(d.get("predictions") or []), d.get("prediction_error"))


def make_plan(count: int, impls: list[str], configs: list[AttentionConfig], opts, gpu_name: str | None,
              predict=None) -> ShardPlan:
    """Split `configs` (each with every one of `impls`) into `count` shards of similar predicted cost; `predict` is
    CollectOptions.predict (None: every case is costed by its FLOPs). A failing predictor costs by FLOPs too."""
    from kernels.hardware import get_gpu

    if count > len(configs):
        raise CollectError(f"{count} shards of {len(configs)} config(s): a shard is a whole config, so use at "
                           f"most {len(configs)} shard(s).")
    try:
        gpu = get_gpu(gpu_name or PROXY_GPU)
    except Exception:  # a GPU the hardware table does not know: the predictor fails the same way; cost by FLOPs
        gpu = get_gpu(PROXY_GPU)
    rows, error = [], None
    if predict is not None:
        try:
            rows = list(predict(impls, configs, gpu))
        except Exception as exc:  # the run records it in its predictions phase; balancing falls back to FLOPs
            error = one_line(exc)
    times = predicted_ms(rows, impls, configs, gpu)
    by: dict[str, list[str]] = {"model": [], "bound": [], "flops": []}
    cost = {c.id: 0.0 for c in configs}
    for (impl, cid), (t_ms, how) in times.items():
        by[how].append(f"{impl} {cid}")
        cost[cid] += case_cost_s(t_ms, opts)
    cost = {c: round(v, 6) for c, v in cost.items()}  # the same floats on every machine
    load = [0.0] * count
    assignment: dict[str, int] = {}
    for cid in sorted(cost, key=lambda c: (-cost[c], c)):
        i = min(range(count), key=lambda k: (load[k], k))
        assignment[cid] = i + 1
        load[i] += cost[cid]
    return ShardPlan(count, [c.id for c in configs], assignment, cost, {k: v for k, v in by.items() if v},
                     rows, error)
