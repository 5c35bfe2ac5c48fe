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
are predicted from the datasheet figures of the GPU named on each row.

Conventions:
- The error of a prediction is predicted / measured - 1 on the time (-0.30: predicted 30% faster than measured);
  the summaries give the median and the geometric mean of |error| (the figure Hong & Kim, ISCA'09, report) and
  the share of cases predicted faster than measured. The geometric mean is 0 when any error is exactly 0.
- A stage-to-stage gain is t[k-1] / t[k] - 1 for stages k-1 and k at one config of one source. Its sign is right
  when the predicted gain has the sign of the measured one; a predicted gain within GAIN_TIE of 0 has sign 0, so
  a predictor that expects no change is wrong wherever the stages measured differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from collectors.schema import CONFIG_COLUMNS, PROBE_CONFIG_ID
from kernels.hardware import GpuSpec, HardwareError, get_gpu
from kernels.workload import AttentionConfig, ConfigError
from perfmodel import bound, predictive
from perfmodel.errors import UserError

GAIN_TIE = 1e-9
BREAKDOWNS = ("stage", "S", "D", "causal", "dtype", "B", "gpu")  # the columns errors are summarized by
BENCH_COLUMNS = ("gpu", "impl", "B", "H", "S", "D", "causal", "dtype", "status", "time_ms")

Predictor = Callable[[AttentionConfig, int, GpuSpec], float]


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


def _bound_ms(config: AttentionConfig, stage: int, gpu: GpuSpec) -> float:
    return bound.predict_stage(config, stage, gpu).time_ms


register_predictor("bound", _bound_ms, "each stage's speed-of-light bound (perfmodel/bound.py)")
register_predictor("model", predictive.predict_ms, "the predictive model v1 from each stage's compiled sm_90 code "
                   "(perfmodel/predictive.py)", launch_facts=True)


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


STAGE_INDEX = {impl: i for i, impl in enumerate(bound.STAGE_IMPLS)}
MEASUREMENT_COLUMNS = ["gpu", *CONFIG_COLUMNS, "stage", "impl", "time_ms", "tuned_config"]


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
    return t.reindex(columns=MEASUREMENT_COLUMNS).reset_index(drop=True)


def _text_or_none(v) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


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
    from perfmodel.analysis import run_gpu
    from perfmodel.runs import gpu_name

    spec, how = run_gpu(run)
    name = gpu_name(run) or spec.key
    t = run.table("timings").copy()
    t["gpu"] = name
    return Source(run.run_id, "run", {name: spec}, how, _stage_rows(t, f"run {run.run_id}"), _host_launch_us(run))


def _host_launch_us(run) -> dict:
    """impl -> median host_launch_us of the run's `launch` table rows measured ok (a host cost, not a kernel time)."""
    try:
        launch = run.table("launch")
    except Exception:  # a run without the table (older runs): no measured host cost
        return {}
    if not {"impl", "status", "host_launch_us"} <= set(launch.columns):
        return {}
    ok = launch[launch["status"] == "ok"]
    values = pd.to_numeric(ok["host_launch_us"], errors="coerce")
    return {str(k): float(v) for k, v in values.groupby(ok["impl"]).median().items() if np.isfinite(v)}


def bench_source(path: str | Path) -> Source:
    """The stage measurements of a `perfmodel bench --csv` table, predicted with each row's GPU's datasheet."""
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
            gpus[name] = get_gpu(name)
        except HardwareError:
            raise UserError(f"bench table {str(p)!r} was measured on {name!r}, which the hardware table "
                            "(kernels/hardware.py) does not have.") from None
    how = ", ".join(f"{s.key} datasheet" for s in gpus.values()) or "no stage rows"
    return Source(str(path), "bench", gpus, how, rows)


# ---- scoring ------------------------------------------------------------------------------------------------
def score_cases(sources: list[Source], predictors: dict[str, RegisteredPredictor] | None = None) -> pd.DataFrame:
    """One row per measured stage time: source, GPU, config, stage, measured_ms, and per predictor P the columns
    P_ms (its prediction) and P_err (P_ms / measured_ms - 1)."""
    predictors = PREDICTORS if predictors is None else predictors
    rows = []
    for src in sources:
        for m in src.measurements.to_dict("records"):
            spec = src.gpus[str(m["gpu"])]
            cfg = AttentionConfig(B=int(m["B"]), H=int(m["H"]), S=int(m["S"]), D=int(m["D"]),
                                  causal=bool(m["causal"]), dtype=str(m["dtype"]))
            row = {"source": src.name, "gpu": spec.key, **{c: m[c] for c in CONFIG_COLUMNS}, "stage": int(m["stage"]),
                   "impl": m["impl"], "measured_ms": float(m["time_ms"])}
            for p in predictors.values():
                extra = {"host_launch_us": src.host_launch_us.get(str(m["impl"])),
                         "tuned_config": _text_or_none(m.get("tuned_config"))} if p.launch_facts else {}
                predicted = float(p.predict_ms(cfg, int(m["stage"]), spec, **extra))
                row[f"{p.name}_ms"] = predicted
                row[f"{p.name}_err"] = predicted / row["measured_ms"] - 1.0
            rows.append(row)
    cols = ["source", "gpu", *CONFIG_COLUMNS, "stage", "impl", "measured_ms",
            *[f"{p}_{k}" for p in predictors for k in ("ms", "err")]]
    return pd.DataFrame(rows, columns=cols)


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


def score(sources: list[Source], predictors: dict[str, RegisteredPredictor] | None = None) -> Score:
    """Every summary `perfmodel model score` prints, for the stage measurements of `sources`."""
    cases = score_cases(sources, predictors)
    errors = {"all": error_summary(cases), **{b: error_summary(cases, b) for b in BREAKDOWNS}}
    gains = gain_cases(cases)
    return Score(sources, cases, errors, gains, gain_summary(gains))
