"""The predictors of a stage's time, registered once: a predictor is a function `(config, stage, gpu) -> time_ms`
(or a `Predicted`: the time, its binding term, what it read and the GPU's own time), given the config, the stage
index and the GPU's ceilings and never a timing, so it cannot see what it is scored against. Registered with
`launch_facts`, it also gets how the measured stage was launched (the host cost of a launch, the kernel config a
tuning stage reported). Two are registered here: the bound (perfmodel/model/bound.py) and the predictive model
(perfmodel/model/predictive.py); another one adds its columns to every table of the scorer by registering itself.

`prediction_rows` is what `perfmodel collect` stores before it times anything (the `predictions` table): every
registered predictor's time per stage x config, out of sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


from collectors.timing.failures import one_line
from kernels.hardware import GpuSpec
from kernels.workload import AttentionConfig
from perfmodel.model import bound, predictive
from perfmodel.model.run_gpu import with_micro


Predictor = Callable[..., "float | Predicted"]


@dataclass(frozen=True)
class Predicted:
    """What a predictor may return instead of a bare time: the time and the name of the term that sets it."""

    time_ms: float
    binding: str | None = None
    inputs_hash: str | None = None  # what the prediction read (perfmodel.model.predictive.inputs_hash), when it says
    # the GPU's own time, without the host launch a back-to-back host loop exposes (what a CUDA-graph time
    # measures); None: the predictor gives one time for both
    gpu_time_ms: float | None = None


def as_predicted(value) -> Predicted:
    return value if isinstance(value, Predicted) else Predicted(float(value))


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
              tuned_config: str | None = None, loops: str = "ptx") -> Predicted:
    from perfmodel.model.instruction_mix import MixError

    try:
        p = predictive.predict_stage(config, stage, gpu, host_launch_us, tuned_config, loops)
    except MixError:
        return Predicted(math.nan)
    return Predicted(p.time_ms, p.binding, p.inputs_hash, p.time_ms - p.launch_ms)


register_predictor("bound", _bound_ms, "each stage's speed-of-light bound (perfmodel/model/bound.py)")
register_predictor("model", _model_ms, f"the predictive model v{predictive.MODEL_VERSION} from each stage's compiled "
                   "sm_90 code (perfmodel/model/predictive.py)", launch_facts=True)


STAGE_INDEX = {impl: i for i, impl in enumerate(bound.STAGE_IMPLS)}


def prediction_rows(impls: list[str], configs: list[AttentionConfig], gpu: GpuSpec) -> list[dict]:
    """The `predictions` rows (runstore/schema.py) for every stage of `impls` at every config, by every
    registered predictor, on `gpu` as given (at collect start: its datasheet; without micro-benchmarks it takes the
    bundled reference run's of the same SM, perfmodel.model.run_gpu.reference_micro) with no launch facts (none is
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
                    predicted = as_predicted(p.predict_ms(cfg, STAGE_INDEX[impl], gpu))
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


def sass_variant() -> dict[str, RegisteredPredictor]:
    """The predictors with the model's math loops read from the SASS instead of the PTX (issue 25's first term, an
    experiment: `perfmodel model score --loops sass`), named model_sass so that no stored prediction of the model
    stands in for it."""
    import functools

    model = PREDICTORS["model"]
    out = {k: v for k, v in PREDICTORS.items() if k != "model"}
    out["model_sass"] = RegisteredPredictor(
        "model_sass", functools.partial(_model_ms, loops="sass"),
        "the predictive model's terms on each stage's SASS math loops (perfmodel/model/sass_mix.py)",
        launch_facts=model.launch_facts)
    return out
