"""How well a predictor of a stage's time does against measured times: what `perfmodel model score` prints.

A predictor is a function `(config, stage, gpu) -> time_ms`, registered once with `register_predictor`
(perfmodel/model/predictors.py). The scorer hands it the config, the stage index and the GPU's ceilings (the hardware
table, kernels/hardware.py, with the ceilings the run measured where it measured them) and never a timing: a predictor
cannot see what it is scored against. A predictor registered with `launch_facts` also gets how the measured stage
was launched: the host cost of a launch (the run's `launch` table) and the kernel config a tuning stage reported
(`tuned_config`). Two are registered: the bound (perfmodel/model/bound.py) and the predictive model
(perfmodel/model/predictive.py); another one adds its columns to every table here by registering itself, without a
change to the scorer.

Measurements come from run folders (table `timings`) and from the CSV tables `perfmodel bench --csv` writes
(benchmarks/, benchmarks/h200/): every stage row timed `ok`. A bench table has no measured ceilings, so its cases
are predicted from the datasheet figures of the GPU named on each row, with the micro-benchmarks of the bundled
run of the same SM (perfmodel/model/run_gpu.py); a run without micro-benchmarks of its own borrows them the same way.

Conventions:
- The error of a prediction is predicted / measured - 1 on the time (-0.30: predicted 30% faster than measured);
  the summaries give the median and the geometric mean of |error| (the figure Hong & Kim, ISCA'09, report) and
  the share of cases predicted faster than measured. The geometric mean is 0 when any error is exactly 0.
- A stage-to-stage gain is t[k-1] / t[k] - 1 for stages k-1 and k at one config of one source. Its sign is right
  when the predicted gain has the sign of the measured one; a predicted gain within GAIN_TIE of 0 has sign 0, so
  a predictor that expects no change is wrong wherever the stages measured differently.
- Out of sample: `perfmodel collect` stores every registered predictor's time and binding term per stage x config
  in the run (table `predictions`, collectors/sweep/predictions_phase.py) before it times anything, with the datasheet
  ceilings and the bundled reference micro-benchmarks (none of the run's are measured yet), the launch cost
  `launch_us` and the census' kernel config, the model's version (perfmodel/model/predictive.py `MODEL_VERSION`) and a
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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kernels.workload import AttentionConfig
from perfmodel.model import predictors as _predictors
from perfmodel.model.predictors import RegisteredPredictor, as_predicted
from perfmodel.model.score_sources import Source, bool_or_none, text_or_none
from runstore.schema import CONFIG_COLUMNS, TIMING_GRAPH

GAIN_TIE = 1e-9
BREAKDOWNS = ("stage", "S", "D", "causal", "dtype", "B", "gpu")  # the columns errors are summarized by


BUSY_PCT = 60.0  # Nsight Compute's SpeedOfLight rule: below 60% of peak "typically indicate[s] latency issues"
# a predictor's binding term -> the ncu verdicts it agrees with: the issue slots also when the FMA or ALU pipe is the
# busiest (the model charges every non-wgmma instruction an issue slot); "l1_throughput_pct" is the L1/shared unit
# (the producer's TMA from L2, "tma", has no unit among NCU_UNITS: with no listed unit busy ncu's verdict is latency)
TERM_UNITS = {"tensor": {"tensor"}, "mufu": {"mufu"}, "issue": {"issue", "fma", "alu"}, "smem": {"smem"},
              "hbm": {"dram"}, "chain": {"latency"}, "launch": {"latency"}, "tma": {"latency"}}


# ---- scoring ------------------------------------------------------------------------------------------------
def score_cases(sources: list[Source], predictors: dict[str, RegisteredPredictor] | None = None) -> pd.DataFrame:
    """One row per measured stage time: source, GPU, config, stage, measured_ms, and per predictor P the columns
    P_ms (its prediction), P_err (P_ms / measured_ms - 1), P_binding (its binding term, or None) and P_from
    ("stored": the run's prediction made before it was measured; "computed": made now)."""
    predictors = _predictors.PREDICTORS if predictors is None else predictors  # read now: the registry as it is
    rows = []
    for src in sources:
        for m in src.measurements.to_dict("records"):
            spec = src.gpus[str(m["gpu"])]
            cfg = AttentionConfig(B=int(m["B"]), H=int(m["H"]), S=int(m["S"]), D=int(m["D"]),
                                  causal=bool(m["causal"]), dtype=str(m["dtype"]))
            by_graph = m.get("timing_method") == TIMING_GRAPH
            row = {"source": src.name, "gpu": spec.key, **{c: m[c] for c in CONFIG_COLUMNS}, "stage": int(m["stage"]),
                   "impl": m["impl"], "measured_ms": float(m["time_ms"]), "timing_method": m.get("timing_method"),
                   "host_bound": bool_or_none(m.get("host_bound"))}
            for p in predictors.values():
                predicted = src.stored.get((str(m["impl"]), cfg.id, p.name))
                row[f"{p.name}_from"] = "stored" if predicted is not None else "computed"
                if predicted is None:
                    extra = {"host_launch_us": src.host_launch_us.get(str(m["impl"])),
                             "tuned_config": text_or_none(m.get("tuned_config"))} if p.launch_facts else {}
                    predicted = as_predicted(p.predict_ms(cfg, int(m["stage"]), spec, **extra))
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
