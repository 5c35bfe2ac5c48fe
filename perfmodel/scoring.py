"""How well a predictor of a stage's time does against measured times: what `perfmodel model score` prints.

A predictor is a function `(config, stage, gpu) -> time_ms`, registered once with `register_predictor`. The
scorer hands it the config, the stage index and the GPU's ceilings (the hardware table, kernels/hardware.py, with
the ceilings the run measured where it measured them) and never a timing: a predictor cannot see what it is
scored against. A predictor registered with `launch_facts` also gets how the measured stage was launched: the host
cost of a launch (the run's `launch` table) and the kernel config a tuning stage reported (`tuned_config`). Two are
registered: the bound (perfmodel/bound.py) and the predictive model (perfmodel/predictive.py); another one adds its
columns to every table here by registering itself, without a change to the scorer.

Measurements come from run folders (table `timings`) and from the CSV tables `perfmodel bench --csv` writes
(benchmarks/, benchmarks/h200/): every stage row timed `ok`. A bench table has no measured ceilings, so its cases
are predicted from the datasheet figures of the GPU named on each row, with the micro-benchmarks of the bundled
run of the same SM (perfmodel/run_gpu.py); a run without micro-benchmarks of its own borrows them the same way.

Conventions:
- The error of a prediction is predicted / measured - 1 on the time (-0.30: predicted 30% faster than measured);
  the summaries give the median and the geometric mean of |error| (the figure Hong & Kim, ISCA'09, report) and
  the share of cases predicted faster than measured. The geometric mean is 0 when any error is exactly 0.
- A stage-to-stage gain is t[k-1] / t[k] - 1 for stages k-1 and k at one config of one source. Its sign is right
  when the predicted gain has the sign of the measured one; a predicted gain within GAIN_TIE of 0 has sign 0, so
  a predictor that expects no change is wrong wherever the stages measured differently.
- Out of sample: `perfmodel collect` stores every registered predictor's time and binding term per stage x config
  in the run (table `predictions`, collectors/predictions_phase.py) before it times anything, with the datasheet
  ceilings and the bundled reference micro-benchmarks (none of the run's are measured yet), the launch cost
  `launch_us` and the census' kernel config, the model's version (perfmodel/predictive.py `MODEL_VERSION`) and a
  hash of what each prediction read (`inputs_hash`). A run's case is scored with its stored prediction when it was
  made by today's version ("stored, out of sample"; runs from before the version carry a hash of the model's
  sources instead, mapped to their version once in `LEGACY_MODEL_HASHES`), else with one computed now from the run's measured ceilings and micro-benchmarks, launch cost and tuned config
  ("computed now"); each case's `P_from` says which.
- Binding term against ncu: for a case whose run profiled it (table `ncu_metrics`; the case's longest kernel),
  ncu's busiest unit is the largest of the utilizations in NCU_UNITS. A unit is busy at BUSY_PCT or more, the
  threshold of Nsight Compute's own SpeedOfLight rule ("Achieved compute throughput and/or memory bandwidth below
  60.0% of peak typically indicate latency issues", in the committed export tests/data/h100/details.csv); with no
  unit busy ncu's verdict is "latency". A predictor's binding term agrees when TERM_UNITS maps it to that verdict:
  a pipe term to its busy unit, the dependency chain (and an exposed launch, where the GPU idles) to "latency".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from collectors.case_rows import one_line
from collectors.schema import CONFIG_COLUMNS, PROBE_CONFIG_ID, TIMING_GRAPH, V1_TIMING_METHOD
from kernels.hardware import GpuSpec, HardwareError, get_gpu
from kernels.workload import AttentionConfig, ConfigError
from perfmodel import bound, predictive
from perfmodel.errors import UserError
from perfmodel.run_gpu import run_gpu, with_micro

GAIN_TIE = 1e-9
BREAKDOWNS = ("stage", "S", "D", "causal", "dtype", "B", "gpu")  # the columns errors are summarized by
BENCH_COLUMNS = ("gpu", "impl", "B", "H", "S", "D", "causal", "dtype", "status", "time_ms")

Predictor = Callable[..., "float | Predicted"]


@dataclass(frozen=True)
class Predicted:
    """What a predictor may return instead of a bare time: the time and the name of the term that sets it."""

    time_ms: float
    binding: str | None = None
    inputs_hash: str | None = None  # what the prediction read (perfmodel.predictive.inputs_hash), when it says
    # the GPU's own time, without the host launch a back-to-back host loop exposes (what a CUDA-graph time
    # measures); None: the predictor gives one time for both
    gpu_time_ms: float | None = None


def _as_predicted(value) -> Predicted:
    return value if isinstance(value, Predicted) else Predicted(float(value))


# ncu unit -> the short metric (collectors/metrics.py) of its utilization, % of peak
NCU_UNITS = {"tensor": "tensor_pipe_pct", "mufu": "xu_pipe_pct", "issue": "issue_active_pct",
             "fma": "fma_pipe_pct", "alu": "alu_pipe_pct", "smem": "l1_throughput_pct", "dram": "dram_throughput_pct"}
BUSY_PCT = 60.0  # Nsight Compute's SpeedOfLight rule: below 60% of peak "typically indicate[s] latency issues"
# a predictor's binding term -> the ncu verdicts it agrees with: the issue slots also when the FMA or ALU pipe is the
# busiest (the model charges every non-wgmma instruction an issue slot); "l1_throughput_pct" is the L1/shared unit
TERM_UNITS = {"tensor": {"tensor"}, "mufu": {"mufu"}, "issue": {"issue", "fma", "alu"}, "smem": {"smem"},
              "hbm": {"dram"}, "chain": {"latency"}, "launch": {"latency"}}


@dataclass(frozen=True)
class RegisteredPredictor:
    name: str
    predict_ms: Predictor
    description: str
    launch_facts: bool = False  # also receives how the stage was launched: `host_launch_us=`, `tuned_config=`


PREDICTORS: dict[str, RegisteredPredictor] = {}


def register_predictor(name: str, predict_ms: Predictor, description: str, launch_facts: bool = False) -> None:
    """Add a predictor: every summary then carries its columns, named after `name`. With `launch_facts`, it is also
    called with how the measured stage was launched, never with a kernel timing: `host_launch_us=` the host cost of
    one launch of the stage that the run's `launch` table measured (None for a bench table or a run without one),
    and `tuned_config=` the kernel config a tuning stage reported it ran (the row's `tuned_config`, or None). A
    predictor may
    return NaN for a case it cannot predict; the summaries then leave that case out of its figures."""
    if not name.isidentifier() or name in PREDICTORS:
        raise ValueError(f"predictor name {name!r} must be a new identifier.")
    PREDICTORS[name] = RegisteredPredictor(name, predict_ms, description, launch_facts)


def _bound_ms(config: AttentionConfig, stage: int, gpu: GpuSpec) -> Predicted:
    p = bound.predict_stage(config, stage, gpu)
    terms = {"tensor": p.tensor_ms, "mufu": p.exp_ms, "hbm": p.hbm_ms}
    return Predicted(p.time_ms, "launch" if p.launch_ms > 0 else max(terms, key=terms.get),
                     predictive.inputs_hash(config, stage, gpu), p.time_ms - p.launch_ms)


def _model_ms(config: AttentionConfig, stage: int, gpu: GpuSpec, host_launch_us: float | None = None,
              tuned_config: str | None = None) -> Predicted:
    from collectors.instruction_mix import MixError

    try:
        p = predictive.predict_stage(config, stage, gpu, host_launch_us, tuned_config)
    except MixError:
        return Predicted(math.nan)
    return Predicted(p.time_ms, p.binding, p.inputs_hash, p.time_ms - p.launch_ms)


register_predictor("bound", _bound_ms, "each stage's speed-of-light bound (perfmodel/bound.py)")
register_predictor("model", _model_ms, f"the predictive model v{predictive.MODEL_VERSION} from each stage's compiled "
                   "sm_90 code (perfmodel/predictive.py)", launch_facts=True)


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


STAGE_INDEX = {impl: i for i, impl in enumerate(bound.STAGE_IMPLS)}
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


def _text_or_none(v) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def _bool_or_none(v) -> bool | None:
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
    version existed) what its `model_hash` was (perfmodel.predictive.LEGACY_MODEL_HASHES), else None."""
    version = row.get("model_version")
    if version is not None and not (isinstance(version, float) and math.isnan(version)):
        return int(version)
    return predictive.LEGACY_MODEL_HASHES.get(str(row.get("model_hash")))


def _versions_text(versions) -> str:
    known = sorted({v for v in versions if v is not None})
    unknown = any(v is None for v in versions)
    return " and ".join([*(f"model v{v}" for v in known), *(["an unknown model"] if unknown else [])])


def stored_predictions(run) -> tuple[dict, str]:
    """The run's `predictions` rows made by today's model version (perfmodel.predictive.MODEL_VERSION), as
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
        binding = _text_or_none(r.get("binding")) if ok else None
        gpu_ms = pd.to_numeric(r.get("gpu_time_ms"), errors="coerce")  # absent before runs timed by CUDA graph
        stored[(str(r["impl"]), str(r["config_id"]), str(r["predictor"]))] = Predicted(
            float(r["time_ms"]) if ok else math.nan, binding, _text_or_none(r.get("inputs_hash")),
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


# ---- scoring ------------------------------------------------------------------------------------------------
def score_cases(sources: list[Source], predictors: dict[str, RegisteredPredictor] | None = None) -> pd.DataFrame:
    """One row per measured stage time: source, GPU, config, stage, measured_ms, and per predictor P the columns
    P_ms (its prediction), P_err (P_ms / measured_ms - 1), P_binding (its binding term, or None) and P_from
    ("stored": the run's prediction made before it was measured; "computed": made now)."""
    predictors = PREDICTORS if predictors is None else predictors
    rows = []
    for src in sources:
        for m in src.measurements.to_dict("records"):
            spec = src.gpus[str(m["gpu"])]
            cfg = AttentionConfig(B=int(m["B"]), H=int(m["H"]), S=int(m["S"]), D=int(m["D"]),
                                  causal=bool(m["causal"]), dtype=str(m["dtype"]))
            by_graph = m.get("timing_method") == TIMING_GRAPH
            row = {"source": src.name, "gpu": spec.key, **{c: m[c] for c in CONFIG_COLUMNS}, "stage": int(m["stage"]),
                   "impl": m["impl"], "measured_ms": float(m["time_ms"]), "timing_method": m.get("timing_method"),
                   "host_bound": _bool_or_none(m.get("host_bound"))}
            for p in predictors.values():
                predicted = src.stored.get((str(m["impl"]), cfg.id, p.name))
                row[f"{p.name}_from"] = "stored" if predicted is not None else "computed"
                if predicted is None:
                    extra = {"host_launch_us": src.host_launch_us.get(str(m["impl"])),
                             "tuned_config": _text_or_none(m.get("tuned_config"))} if p.launch_facts else {}
                    predicted = _as_predicted(p.predict_ms(cfg, int(m["stage"]), spec, **extra))
                # a GPU time (CUDA graph) is scored against the predicted GPU time; a host loop's against the time
                # with the host launch it exposes
                gpu_ms = predicted.gpu_time_ms
                row[f"{p.name}_ms"] = float(gpu_ms if by_graph and gpu_ms is not None else predicted.time_ms)
                row[f"{p.name}_err"] = row[f"{p.name}_ms"] / row["measured_ms"] - 1.0
                row[f"{p.name}_binding"] = predicted.binding
            units = src.ncu.get((str(m["impl"]), cfg.id))
            row.update(ncu_verdict(units))
            rows.append(row)
    cols = ["source", "gpu", *CONFIG_COLUMNS, "stage", "impl", "measured_ms", "timing_method", "host_bound",
            *[f"{p}_{k}" for p in predictors for k in ("ms", "err", "binding", "from")],
            "ncu_busiest", "ncu_busiest_pct", "ncu_bound"]
    return pd.DataFrame(rows, columns=cols)


def ncu_verdict(units: dict | None) -> dict:
    """ncu_busiest (the unit of NCU_UNITS at the highest utilization), ncu_busiest_pct, and ncu_bound: that unit
    when it is at BUSY_PCT or more, else "latency"; all None for a case ncu did not profile."""
    if not units:
        return {"ncu_busiest": None, "ncu_busiest_pct": math.nan, "ncu_bound": None}
    busiest = max(units, key=units.get)
    return {"ncu_busiest": busiest, "ncu_busiest_pct": units[busiest],
            "ncu_bound": busiest if units[busiest] >= BUSY_PCT else "latency"}


def agrees(binding: str | None, ncu_bound: str | None) -> float:
    """1.0 when a binding term names ncu's verdict (TERM_UNITS), 0.0 when not, NaN when either is missing."""
    if not binding or not ncu_bound or (isinstance(ncu_bound, float) and math.isnan(ncu_bound)):
        return math.nan
    return float(ncu_bound in TERM_UNITS.get(binding, set()))


def binding_summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Over the cases ncu profiled, overall ("all") and per stage: n, the count of each ncu verdict
    (`ncu_bound`, e.g. "latency:40 tensor:3"), and per predictor P with binding terms P_agree, the share whose
    binding term agrees with ncu's verdict, and P_terms, the count of each binding term it named."""
    names = [p for p in _predictor_names(cases) if f"{p}_binding" in cases.columns
             and cases[f"{p}_binding"].notna().any()]
    profiled = cases[cases["ncu_bound"].notna()] if "ncu_bound" in cases.columns else cases.iloc[:0]

    def counts(col) -> str:
        return " ".join(f"{k}:{v}" for k, v in col.dropna().value_counts().sort_index().items())

    rows = []
    for key, g in [("all", profiled), *((f"stage={k}", v) for k, v in profiled.groupby("stage", sort=True))]:
        row = {"group": key, "n": len(g), "ncu_bound": counts(g["ncu_bound"])}
        for p in names:
            a = pd.Series([agrees(b, v) for b, v in zip(g[f"{p}_binding"], g["ncu_bound"])], dtype=float)
            row[f"{p}_agree"] = float(a.mean()) if a.notna().any() else math.nan
            row[f"{p}_terms"] = counts(g[f"{p}_binding"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["group", "n", "ncu_bound", *[f"{p}_{k}" for p in names
                                                                    for k in ("agree", "terms")]])


def median_abs(errors) -> float:
    a = np.abs(np.asarray(errors, dtype=float))
    a = a[np.isfinite(a)]  # a case the predictor could not predict (NaN) is left out
    return float(np.median(a)) if a.size else math.nan


def geomean_abs(errors) -> float:
    a = np.abs(np.asarray(errors, dtype=float))
    a = a[np.isfinite(a)]
    if not a.size:
        return math.nan
    if (a == 0).any():
        return 0.0
    return float(np.exp(np.mean(np.log(a))))


def _predictor_names(cases: pd.DataFrame) -> list[str]:
    return [c[: -len("_err")] for c in cases.columns if c.endswith("_err")]


def error_summary(cases: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """n and, per predictor P, P_median_abs, P_geomean_abs and P_fast (share predicted faster than measured),
    overall (by=None: one row, group "all") or per value of the column `by`."""
    names = _predictor_names(cases)
    groups = [("all", cases)] if by is None else list(cases.groupby(by, sort=True))
    rows = []
    for key, g in groups:
        row = {"group": key, "n": len(g)}
        for p in names:
            e = g[f"{p}_err"]
            row[f"{p}_median_abs"] = median_abs(e)
            row[f"{p}_geomean_abs"] = geomean_abs(e)
            e = e[np.isfinite(e)]
            row[f"{p}_fast"] = float((e < 0).mean()) if len(e) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["group", "n", *[f"{p}_{k}" for p in names
                                                       for k in ("median_abs", "geomean_abs", "fast")]])


def _sign(x: float) -> int:
    return 0 if abs(x) < GAIN_TIE else (1 if x > 0 else -1)


def gain_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per stage pair k-1 -> k measured at one config of one source: the measured gain and, per
    predictor P, P_gain and P_sign_right."""
    names = _predictor_names(cases)
    rows = []
    for (source, config_id), g in cases.groupby(["source", "config_id"], sort=False):
        by_stage = {int(r["stage"]): r for r in g.to_dict("records")}
        for k in sorted(by_stage):
            if k - 1 not in by_stage:
                continue
            a, b = by_stage[k - 1], by_stage[k]
            measured = a["measured_ms"] / b["measured_ms"] - 1.0
            row = {"source": source, "config_id": config_id, "transition": f"{k - 1}->{k}", "measured_gain": measured}
            for p in names:
                predicted = a[f"{p}_ms"] / b[f"{p}_ms"] - 1.0
                row[f"{p}_gain"] = predicted
                row[f"{p}_sign_right"] = (float(_sign(predicted) == _sign(measured)) if math.isfinite(predicted)
                                          else math.nan)
            rows.append(row)
    return pd.DataFrame(rows, columns=["source", "config_id", "transition", "measured_gain",
                                       *[f"{p}_{k}" for p in names for k in ("gain", "sign_right")]])


def gain_summary(gains: pd.DataFrame) -> pd.DataFrame:
    """Per transition and overall ("all"): n, the median measured gain, per predictor its median gain and the
    share of pairs whose predicted gain has the measured sign."""
    names = [c[: -len("_sign_right")] for c in gains.columns if c.endswith("_sign_right")]
    rows = []
    for key, g in [*gains.groupby("transition", sort=True), ("all", gains)]:
        row = {"transition": key, "n": len(g),
               "measured_median_gain": float(g["measured_gain"].median()) if len(g) else math.nan}
        for p in names:
            row[f"{p}_median_gain"] = float(g[f"{p}_gain"].median()) if len(g) else math.nan
            row[f"{p}_sign_right"] = float(pd.to_numeric(g[f"{p}_sign_right"]).mean()) if len(g) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["transition", "n", "measured_median_gain",
                                       *[f"{p}_{k}" for p in names for k in ("median_gain", "sign_right")]])


@dataclass(frozen=True)
class Score:
    sources: list[Source]
    cases: pd.DataFrame
    errors: dict[str, pd.DataFrame]  # "all" and each of BREAKDOWNS -> error_summary
    gains: pd.DataFrame  # gain_cases
    gain_summary: pd.DataFrame
    binding: pd.DataFrame  # binding_summary: the binding terms against ncu's busiest unit
    host_bound: pd.DataFrame  # the cases left out of every summary: their time is the host's launch path

def score(sources: list[Source], predictors: dict[str, RegisteredPredictor] | None = None) -> Score:
    """Every summary `perfmodel model score` prints, for the stage measurements of `sources`. A case whose host
    launch path is at least its GPU time (`host_bound`: the timings table's, or a run's launch table against its
    time) measures the host, not the kernel: it is left out of every summary and listed apart (Score.host_bound);
    a case whose host launch was not measured (bench tables before the column) stays in."""
    all_cases = score_cases(sources, predictors)
    apart = all_cases["host_bound"].map(lambda v: v is True)
    cases = all_cases[~apart].reset_index(drop=True)
    errors = {"all": error_summary(cases), **{b: error_summary(cases, b) for b in BREAKDOWNS}}
    gains = gain_cases(cases)
    return Score(sources, cases, errors, gains, gain_summary(gains), binding_summary(cases),
                 all_cases[apart].reset_index(drop=True))


def prediction_rows(impls: list[str], configs: list[AttentionConfig], gpu: GpuSpec) -> list[dict]:
    """The `predictions` rows (collectors/schema.py) for every stage of `impls` at every config, by every
    registered predictor, on `gpu` as given (at collect start: its datasheet; without micro-benchmarks it takes the
    bundled reference run's of the same SM, perfmodel.run_gpu.reference_micro) with no launch facts (none is
    measured yet). A predictor that fails gives a row with status "failed" and the reason, never an exception."""
    import time

    if not gpu.micro:
        gpu = with_micro(gpu, {}, "")
    rows = []
    for cfg in configs:
        for impl in impls:
            if impl not in STAGE_INDEX:
                continue
            for p in PREDICTORS.values():
                t0 = time.monotonic()
                row = {"impl": impl, "config_id": cfg.id, **cfg.as_dict(), "predictor": p.name, "gpu": gpu.key,
                       "model_version": predictive.MODEL_VERSION, "inputs_hash": None, "time_ms": math.nan,
                       "gpu_time_ms": None, "binding": None, "status": "ok", "error": None}
                try:
                    predicted = _as_predicted(p.predict_ms(cfg, STAGE_INDEX[impl], gpu))
                    row.update(time_ms=float(predicted.time_ms), binding=predicted.binding,
                               inputs_hash=predicted.inputs_hash, gpu_time_ms=predicted.gpu_time_ms)
                    if not math.isfinite(row["time_ms"]):
                        row.update(status="failed", error="the predictor could not predict this case "
                                                          "(e.g. the stage does not compile for sm_90 here)")
                except Exception as exc:  # a failing prediction never fails the run: the row says why
                    row.update(status="failed", error=one_line(exc))
                row["predict_s"] = round(time.monotonic() - t0, 3)
                row["predicted_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                rows.append(row)
    return rows
