"""The measured stage times a predictor is scored against, and the GPU figures each is predicted with: a run
folder (`run_source`: its `timings`, its measured ceilings and micro-benchmarks, its launch costs, its stored
predictions when today's model version made them, and Nsight Compute's busiest unit per case) or a `perfmodel bench
--csv` table (`bench_source`: each row's GPU's datasheet and the bundled run's micro-benchmarks of the same SM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kernels.hardware import GpuSpec, HardwareError, get_gpu
from kernels.workload import AttentionConfig, ConfigError
from perfmodel.errors import UserError
from perfmodel.model import predictive
from perfmodel.model.run_gpu import run_gpu, with_micro
from runstore.schema import CONFIG_COLUMNS, PROBE_CONFIG_ID, V1_TIMING_METHOD

from perfmodel.model.predictors import STAGE_INDEX, Predicted


BENCH_COLUMNS = ("gpu", "impl", "B", "H", "S", "D", "causal", "dtype", "status", "time_ms")


# ncu unit -> the short metric (collectors/ncu/metrics.py) of its utilization, % of peak
NCU_UNITS = {"tensor": "tensor_pipe_pct", "mufu": "xu_pipe_pct", "issue": "issue_active_pct",
             "fma": "fma_pipe_pct", "alu": "alu_pipe_pct", "smem": "l1_throughput_pct", "dram": "dram_throughput_pct"}


# ---- measurements -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One run folder or bench table: its stage measurements and the GPU ceilings its cases are predicted with."""

    name: str
    kind: str  # "run" | "bench"
    gpus: dict[str, GpuSpec]  # GPU name as the rows give it -> spec
    gpu_source: str  # where the ceilings came from, in words
    measurements: pd.DataFrame  # gpu, config columns, stage, impl, time_ms
    host_launch_us: dict = field(default_factory=dict)  # impl -> the run's `launch` table host_launch_us (median)
    stored: dict = field(default_factory=dict)  # (impl, config_id, predictor) -> Predicted, stored with today's hash
    predictions: str = "computed now"  # where this source's predictions come from, in words
    ncu: dict = field(default_factory=dict)  # (impl, config_id) -> {ncu unit: utilization %}, see ncu_units


MEASUREMENT_COLUMNS = ["gpu", *CONFIG_COLUMNS, "stage", "impl", "time_ms", "tuned_config", "timing_method",
                       "host_bound"]


def _stage_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of a timings frame that are a stage timed ok at a real config, with the stage index."""
    t = frame[frame["impl"].isin(list(STAGE_INDEX)) & (frame["status"] == "ok")].copy()
    if "config_id" in t.columns:
        t = t[t["config_id"] != PROBE_CONFIG_ID]
    t["time_ms"] = pd.to_numeric(t["time_ms"], errors="coerce")
    t = t[np.isfinite(t["time_ms"]) & (t["time_ms"] > 0)]
    t["stage"] = t["impl"].map(STAGE_INDEX).astype(int)
    try:
        configs = [AttentionConfig(B=int(r.B), H=int(r.H), S=int(r.S), D=int(r.D), causal=_bool(r.causal),
                                   dtype=str(r.dtype)) for r in t.itertuples()]
    except (TypeError, ValueError) as e:
        raise UserError(f"{where} has a stage row that is not a real attention problem: "
                        f"{str(e).rstrip('.')}.") from None
    t["config_id"] = [c.id for c in configs]
    t["causal"] = [c.causal for c in configs]
    method = t["timing_method"] if "timing_method" in t.columns else pd.Series(None, index=t.index, dtype=object)
    t["timing_method"] = method.where(method.notna(), V1_TIMING_METHOD)  # tables before the column: host loop
    if "host_bound" not in t.columns:
        t["host_bound"] = None
    return t.reindex(columns=MEASUREMENT_COLUMNS).reset_index(drop=True)


def text_or_none(v) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def bool_or_none(v) -> bool | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return _bool(v)


def _bool(v) -> bool:
    if isinstance(v, str):
        if v.strip().lower() in ("true", "1"):
            return True
        if v.strip().lower() in ("false", "0"):
            return False
        raise ConfigError(f"causal must be true or false, got {v!r}")
    return bool(v)


def run_source(run) -> Source:
    """The stage measurements of a run (perfmodel.runs.load_run), predicted with the run's GPU and ceilings."""
    from perfmodel.runs import gpu_name

    spec, how = run_gpu(run)
    name = gpu_name(run) or spec.key
    t = run.table("timings").copy()
    t["gpu"] = name
    stored, predictions = stored_predictions(run)
    rows = _stage_rows(t, f"run {run.run_id}")
    launch = _host_launch_us(run)
    # a run from before timings carried host_bound: its launch table's host cost against the (host loop) time
    unknown = rows["host_bound"].isna()
    rows.loc[unknown, "host_bound"] = [
        (launch[i] * 1e-3 >= ms) if i in launch else None
        for i, ms in zip(rows.loc[unknown, "impl"], rows.loc[unknown, "time_ms"])]
    return Source(run.run_id, "run", {name: spec}, how, rows, launch, stored, predictions, ncu_units(run))


def _table_or_none(run, name: str) -> pd.DataFrame | None:
    try:
        return run.table(name) if name in run.tables() else None
    except Exception:  # an unreadable table counts as absent: the scorer computes instead
        return None


def stored_version(row: dict) -> int | None:
    """The model version a stored prediction row was made by: its `model_version`, else (a run from before the
    version existed) what its `model_hash` was (perfmodel.model.predictive.LEGACY_MODEL_HASHES), else None."""
    version = row.get("model_version")
    if version is not None and not (isinstance(version, float) and math.isnan(version)):
        return int(version)
    return predictive.LEGACY_MODEL_HASHES.get(str(row.get("model_hash")))


def _versions_text(versions) -> str:
    known = sorted({v for v in versions if v is not None})
    unknown = any(v is None for v in versions)
    return " and ".join([*(f"model v{v}" for v in known), *(["an unknown model"] if unknown else [])])


def stored_predictions(run) -> tuple[dict, str]:
    """The run's `predictions` rows made by today's model version (perfmodel.model.predictive.MODEL_VERSION), as
    (impl, config_id, predictor) -> Predicted, and a sentence: "stored, out of sample (model vN)", or "computed
    now" and why."""
    t = _table_or_none(run, "predictions")
    if t is None or not len(t) or not {"predictor", "gpu", "time_ms", "status"} <= set(t.columns) or not (
            {"model_version", "model_hash"} & set(t.columns)):
        return {}, "computed now (the run stores no predictions)"
    records = t.to_dict("records")
    versions = [stored_version(r) for r in records]
    today = predictive.MODEL_VERSION
    match = [r for r, v in zip(records, versions) if v == today]
    if not match:
        return {}, f"computed now (stored by {_versions_text(versions)}; today's is v{today})"
    stored = {}
    for r in match:
        ok = r["status"] == "ok" and r["time_ms"] is not None and np.isfinite(r["time_ms"])
        binding = text_or_none(r.get("binding")) if ok else None
        gpu_ms = pd.to_numeric(r.get("gpu_time_ms"), errors="coerce")  # absent before runs timed by CUDA graph
        stored[(str(r["impl"]), str(r["config_id"]), str(r["predictor"]))] = Predicted(
            float(r["time_ms"]) if ok else math.nan, binding, text_or_none(r.get("inputs_hash")),
            float(gpu_ms) if ok and pd.notna(gpu_ms) else None)
    return stored, f"stored, out of sample (model v{today})"


def ncu_units(run) -> dict:
    """(impl, config_id) -> {unit: utilization %} of NCU_UNITS for every case of the run's `ncu_metrics`, read
    from its longest kernel (duration_ns; the attention kernel, not a helper a case also launches)."""
    t = _table_or_none(run, "ncu_metrics")
    if t is None or not len(t) or not {"impl", "config_id", "kernel_index", "metric", "value"} <= set(t.columns):
        return {}
    t = t[t["metric"].isin([*NCU_UNITS.values(), "duration_ns"]) & (t["config_id"] != PROBE_CONFIG_ID)]
    wide = t.pivot_table(index=["impl", "config_id", "kernel_index"], columns="metric", values="value",
                         aggfunc="first").reset_index()
    if "duration_ns" not in wide.columns:
        wide["duration_ns"] = 0.0
    out = {}
    for (impl, config_id), g in wide.groupby(["impl", "config_id"]):
        k = g.sort_values("duration_ns", ascending=False, kind="stable").iloc[0]
        units = {u: float(k[m]) for u, m in NCU_UNITS.items() if m in k.index and pd.notna(k[m])}
        if units:
            out[(str(impl), str(config_id))] = units
    return out


def _host_launch_us(run) -> dict:
    """impl -> median host_launch_us of the run's `launch` table rows measured ok (a host cost, not a kernel time)."""
    launch = _table_or_none(run, "launch")  # none in older runs: no measured host cost
    if launch is None or not {"impl", "status", "host_launch_us"} <= set(launch.columns):
        return {}
    ok = launch[launch["status"] == "ok"]
    values = pd.to_numeric(ok["host_launch_us"], errors="coerce")
    return {str(k): float(v) for k, v in values.groupby(ok["impl"]).median().items() if np.isfinite(v)}


def bench_source(path: str | Path) -> Source:
    """The stage measurements of a `perfmodel bench --csv` table, predicted with each row's GPU's datasheet (and
    the bundled reference micro-benchmarks)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"bench table {str(p)!r} does not exist or is not a file.")
    try:
        frame = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"bench table {str(p)!r} is not a CSV file ({str(e).strip().rstrip('.')}).") from None
    missing = [c for c in BENCH_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"bench table {str(p)!r} lacks the column(s) {', '.join(missing)} that "
                        "`perfmodel bench --csv` writes.")
    rows = _stage_rows(frame, f"bench table {str(p)!r}")
    gpus = {}
    for name in sorted(set(rows["gpu"].astype(str))):
        try:
            gpus[name] = with_micro(get_gpu(name), {}, "")
        except HardwareError:
            raise UserError(f"bench table {str(p)!r} was measured on {name!r}, which the hardware table "
                            "(kernels/hardware.py) does not have.") from None
    how = ", ".join(f"{s.key} datasheet" + (f"; {s.micro_source}" if s.micro_source else "")
                    for s in gpus.values()) or "no stage rows"
    return Source(str(path), "bench", gpus, how, rows)
