"""The predictive model's per-iteration times against a run's Proton timelines: `perfmodel model score --phases`.

What is compared, per (run, config, stage) with an ok timeline (timeline_cases; a refused one is listed with its
reason and not compared) and per partition of the timeline (timeline_figures):

- `key block`: the timeline's cycles per key-block iteration of the partition (iteration_cycles: median, p20-p80
  over its work items) against the model's time of one iteration (perfmodel.model.predictive.ModelPrediction:
  the largest of its per-iteration terms, `iteration_us`, per SM for the resident programs, whose name is the
  binding term) in SM cycles at the model's clock (the GPU's boost clock, kernels/hardware.py, the clock the
  model prices latencies at). The model's iteration is the math groups' (the consumers'); the producer's row has
  no model figure: the model has no producer term (issue 25 lists it);
- each per-iteration phase of the timeline (qk, softmax, pv, rescale, kv_wait, turn_wait, ...): against the
  model's time for that phase when the prediction carries per-phase times (`phase_us`: {phase: us per key block},
  the per-phase figures issue 25 asks of model v4); model v3 prices pipes per SM (tensor, MUFU, issue slots,
  shared memory, the dependency chain), not phases, so its rows say "no model figure" rather than split a term
  into phases.

error = model / timeline median - 1. Nothing here is fitted: the model is the scorer's (the run's GPU with the
ceilings and micro-benchmarks it measured, the kernel config the timeline captured), the timeline is the run's.
"""

from __future__ import annotations

import math

import pandas as pd

NO_MODEL_FIGURE = "no model figure"
NO_TIMELINE_RUNS = ("no run given has a Proton timeline to compare the model with: `perfmodel collect --timeline` "
                    "records one (on an H100 or H200).")
NONE_COMPARED = ("no timeline of the runs given is the bare kernel's (each was refused or not measured: the notes above "
                 "say why), so nothing was compared.")
PHASE_COLUMNS = ["run_id", "config_id", "impl", "partition", "phase", "timeline_cycles", "timeline_p20",
                 "timeline_p80", "model_cycles", "model_err", "model_binding", "note"]


def _config(row):
    from kernels.workload import AttentionConfig

    return AttentionConfig(B=int(row["B"]), H=int(row["H"]), S=int(row["S"]), D=int(row["D"]),
                           causal=bool(row["causal"]), dtype=str(row["dtype"]))


def _prediction(row, gpu, predict):
    """(ModelPrediction, None) or (None, why there is none)."""
    from perfmodel.model.instruction_mix import MixError
    from perfmodel.model.predictors import STAGE_INDEX

    stage = STAGE_INDEX.get(str(row["impl"]))
    if stage is None:
        return None, f"{NO_MODEL_FIGURE}: the model predicts this toolkit's stages only"
    try:
        tuned = row.get("tuned_config") or None
        return predict(_config(row), stage, gpu, tuned_config=tuned if isinstance(tuned, str) else None), None
    except ImportError as e:
        return None, f"{NO_MODEL_FIGURE}: {e.name or 'triton'} is not installed; the model compiles each stage"
    except MixError as e:
        return None, f"{NO_MODEL_FIGURE}: {e}"


def phase_rows(run, predict=None) -> pd.DataFrame:
    """PHASE_COLUMNS rows for every timeline of `run` (module docstring); empty when it has none. `predict` is
    perfmodel.model.predictive.predict_stage (a test hands in a stand-in)."""
    from perfmodel.model import predictive
    from perfmodel.model.run_gpu import run_gpu
    from perfmodel.reports.timeline_view import timeline_data

    tl = timeline_data(run)
    if tl is None:
        return pd.DataFrame(columns=PHASE_COLUMNS)
    predict = predict or predictive.predict_stage
    gpu, _ = run_gpu(run)
    out = []
    for case in tl.cases.to_dict("records"):
        base = {"run_id": run.run_id, "config_id": case["config_id"], "impl": case["impl"]}
        if case["status"] != "ok":
            out.append({**base, "partition": "", "phase": "", "note": f"timeline {case['status']}: {case['reason']}"})
            continue
        pred, why = _prediction(case, gpu, predict)
        figs = tl.figures[(tl.figures["impl"] == case["impl"]) & (tl.figures["config_id"] == case["config_id"])]
        out += _case_rows(base, figs, pred, why, gpu.boost_clock_mhz)
    return pd.DataFrame(out, columns=PHASE_COLUMNS)


def _case_rows(base: dict, figs: pd.DataFrame, pred, why: str | None, clock_mhz: float) -> list[dict]:
    from perfmodel.model.predictive import ITERATION_TERMS
    from collectors.timeline.read import PER_ITEM_PHASES

    rows = []
    phase_us = dict(getattr(pred, "phase_us", None) or {}) if pred is not None else {}
    binding = ""
    iteration_cycles = math.nan
    if pred is not None:
        terms = {t: v for t, v in pred.iteration_us.items() if t in ITERATION_TERMS and math.isfinite(v)}
        if terms:
            binding = max(terms, key=terms.get)
            iteration_cycles = terms[binding] * clock_mhz
    per_iter = figs[(figs["figure"] == "iteration_cycles") |
                    ((figs["figure"] == "phase_cycles") & ~figs["phase"].isin(PER_ITEM_PHASES))]
    for r in per_iter.sort_values(["partition_label", "figure", "phase"], kind="stable").to_dict("records"):
        whole = r["figure"] == "iteration_cycles"
        row = {**base, "partition": r["partition_label"], "phase": "key block" if whole else r["phase"],
               "timeline_cycles": r["median"], "timeline_p20": r["p20"], "timeline_p80": r["p80"],
               "model_binding": binding}
        if why is not None:
            model, note = math.nan, why
        elif not str(r["partition_label"]).startswith("consumer"):
            model, note = math.nan, f"{NO_MODEL_FIGURE}: the model has no producer term"
        elif whole:
            model, note = iteration_cycles, f"the model's iteration: its {binding} term"
        elif r["phase"] in phase_us:
            model, note = phase_us[r["phase"]] * clock_mhz, "the model's time for the phase"
        else:
            model, note = math.nan, f"{NO_MODEL_FIGURE}: model v{_version()} prices pipes per SM, not phases"
        err = model / r["median"] - 1 if math.isfinite(model) and r["median"] and r["median"] > 0 else math.nan
        rows.append({**row, "model_cycles": model, "model_err": err, "note": note})
    if not rows:
        rows.append({**base, "partition": "", "phase": "", "note": "the timeline has no per-iteration figure"})
    return rows


def _version() -> int:
    from perfmodel.model.predictive import MODEL_VERSION

    return MODEL_VERSION
