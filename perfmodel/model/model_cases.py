"""The predictive model beside each measured stage of a run (the report's and the dashboard's Stages page): its time,
its error against the measured time, its binding term and its additive terms, per config and stage, the same
figures `perfmodel model score` prints for the case (perfmodel/model/scoring.py and predictors.py do the predicting).
"""

from __future__ import annotations

import math

import pandas as pd

from kernels.hardware import HardwareError
from perfmodel.reports.analysis import NAN, as_float as _f, config_of, stage_table
from perfmodel.runs import Run, gpu_name

# The additive terms of perfmodel.model.predictive.ModelPrediction.terms() (they sum to model_ms), in stacking order.
MODEL_TERMS = ("steady_ms", "tail_ms", "prologue_epilogue_ms", "hbm_excess_ms", "launch_ms")
MODEL_COLUMNS = ["run_id", "config_id", "stage", "impl", "model_status", "measured_ms", "model_ms", "model_err",
                 "model_tflops", "model_binding", *(f"model_{t}" for t in MODEL_TERMS), "model_reason"]
NO_MODEL_FOR_PEERS = ("no model for the peers: the predictive model reads the compiled code of this toolkit's "
                      "stages (perfmodel/model/predictive.py), not of SDPA, cuDNN, FlexAttention or a user's kernel.")


def _model_gpu_reason(run: Run) -> str | None:
    """Why the model cannot predict this run's cases at all (None when it can): it predicts with the run's own
    GPU from the hardware table, never with a stand-in."""
    from kernels.hardware import get_gpu

    name = gpu_name(run)
    if not name:
        return "the run had no GPU"
    try:
        get_gpu(name)
    except HardwareError:
        return f"run GPU {name!r} is not in the hardware table (kernels/hardware.py)"
    return None


def model_table(run: Run, stages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per config and stage of `stages` (this run's `stage_table`, computed when not given): the predictive
    model's time, its error against the measured time (model_ms / measured_ms - 1), its binding term and its
    additive terms (model_steady_ms ... model_launch_ms, summing to model_ms).

    The cases are the scorer's (perfmodel.model.scoring.score_cases on score_sources.run_source: the run's GPU and
    measured ceilings, each stage's host launch cost and tuned config), predicted by the scorer's registered "model"
    predictor's function, perfmodel.model.predictive.predict_stage, so every figure here is the one `perfmodel model
    score` prints for the case. model_status is "ok"; "not_measured" for a stage the run did not time ok (nothing
    to score against, so nothing is predicted); or "no_model" where no prediction can be made: the stage does not
    compile for sm_90 there, Triton is not installed, or the run's GPU is not in the hardware table.
    model_reason says why in the last two. Compiling is the slow part (seconds per kernel the first time, cached
    per kernel hash for the process: perfmodel/model/instruction_mix.py)."""
    from perfmodel.model import predictive, predictors, score_sources, scoring

    stages = stage_table(run) if stages is None else stages
    base = pd.DataFrame({"run_id": run.run_id, "config_id": stages["config_id"], "stage": stages["stage"],
                         "impl": stages["impl"]}).reset_index(drop=True)
    rows = [dict(r) for r in base.to_dict("records")]
    no_gpu = _model_gpu_reason(run)
    for r, status in zip(rows, stages["status"]):
        r["model_status"], r["model_reason"] = ("no_model", no_gpu) if no_gpu else \
            ("not_measured", f"the stage was not timed ok (status {status})")
    if no_gpu is None and rows:
        from perfmodel.model.instruction_mix import MixError

        found: dict[tuple[str, int], object] = {}

        def capture(config, stage, gpu, **launch_facts):
            try:
                found[(config.id, stage)] = p = predictive.predict_stage(config, stage, gpu, **launch_facts)
            except ImportError as e:  # the laptop install: no Triton to compile with
                found[(config.id, stage)] = (f"{e.name or 'triton'} is not installed; the model compiles each "
                                             "stage (pip install -e '.[gpu]')")
                return NAN
            except MixError as e:  # the stage refuses the config or does not compile for sm_90
                found[(config.id, stage)] = str(e)
                return NAN
            return p.time_ms

        registered = predictors.PREDICTORS["model"]
        cases = scoring.score_cases([score_sources.run_source(run)], {"model": predictors.RegisteredPredictor(
            "model", capture, registered.description, launch_facts=registered.launch_facts)})
        index = {(r["config_id"], r["stage"]): r for r in rows}
        for case in cases.to_dict("records"):
            r = index.get((case["config_id"], int(case["stage"])))
            got = found.get((case["config_id"], int(case["stage"])))
            if r is None:
                continue
            r["measured_ms"] = case["measured_ms"]
            predicted = math.isfinite(_f(case["model_ms"]))
            if isinstance(got, str) or not predicted:
                r["model_status"] = "no_model"
                r["model_reason"] = got if isinstance(got, str) else "the model returned no prediction"
                continue
            # got is None where the scorer used a prediction the run stored before it was measured (same model
            # hash): its time and binding term are the scorer's, its terms were not stored
            terms = got.terms() if got is not None else {"binding": case.get("model_binding")}
            r.update(model_status="ok", model_reason="", model_ms=case["model_ms"], model_err=case["model_err"],
                     model_tflops=config_of(case).tflops_at(case["model_ms"]), model_binding=terms["binding"],
                     **{f"model_{t}": terms.get(t, NAN) for t in MODEL_TERMS})
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def with_model(stages: pd.DataFrame, model: pd.DataFrame | None) -> pd.DataFrame:
    """`stages` with the model's columns of `model_table` beside each case (unchanged when `model` is None)."""
    if model is None:
        return stages
    cols = [c for c in MODEL_COLUMNS if c.startswith("model_")]
    return stages.merge(model[["config_id", "impl", *cols]], on=["config_id", "impl"], how="left")
