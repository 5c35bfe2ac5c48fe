"""The predictions phase of `perfmodel collect`: every stage's predicted time, stored before anything is timed.

Issue 13's honesty rule: predictions for a suite are written before the suite is measured and stored in the run
with the model's hash, so that `perfmodel model score` can score them out of sample. At the start of a collect
(before the first case; under --interpret too, where nothing is timed) this phase asks every registered predictor
(perfmodel.model.scoring: the bound and the predictive model) for each selected stage x config and writes the table
`predictions` (runstore/schema.py). What they see: the datasheet of the GPU the run is on (the H100 SXM's under
--interpret, the GPU the census compiles for) with the micro-benchmarks of the bundled reference run of the same SM
(perfmodel.model.run_gpu.reference_micro), no ceilings of this run (its ceilings phase comes later), no launch cost and
no tuned config (the census' default kernel config).

The models are perfmodel's and data flows one way (kernels -> collectors -> run store -> perfmodel), so the
collector does not import them: whoever starts the collect hands it the predictor (`CollectOptions.predict`, set by
`perfmodel collect` and `perfmodel.collect()` to perfmodel.model.predictors.prediction_rows). Without one the run
records that no predictions were made, and why. The model compiles each stage for sm_90 as the census does; Triton's
on-disk cache and the census' per-kernel-hash cache (`census._FACTS`) make the census after the cases reuse those
compiles. A failing prediction never fails the run: its row says why, and so does run.json's `predictions`.
"""

from __future__ import annotations

import time

from collectors.timing.failures import one_line
from kernels.hardware import DEFAULT_GPU
from kernels.workload import AttentionConfig

INTERPRET_GPU = DEFAULT_GPU  # no GPU under --interpret: the datasheet of the GPU the census compiles for


def write_predictions(writer, impls: list[str], configs: list[AttentionConfig], gpu_name: str | None,
                      predict=None) -> float:
    """Append the `predictions` rows of `impls` x `configs` by `predict(impls, configs, gpu)` (the rows of
    runstore/schema.py's `predictions` table) to the run, once (a resumed run keeps the ones its first invocation
    stored), and record them in run.json; returns the seconds it took."""
    from runstore.reader import load_run

    t0 = time.monotonic()
    if "predictions" in load_run(writer.path).tables():
        return 0.0
    if predict is None:
        writer.update_meta(predictions={"status": "not_measured", "error": "no predictor was given to the collector "
                                        "(perfmodel collect and perfmodel.collect() give it theirs)"})
        return 0.0
    meta: dict = {"status": "ok", "gpu": None, "model_version": None}
    try:
        from kernels.hardware import get_gpu

        gpu = get_gpu(gpu_name or INTERPRET_GPU)
        rows = predict(impls, configs, gpu)
        meta.update(gpu=gpu.key, model_version=rows[0]["model_version"] if rows else None,
                    n_rows=len(rows), n_failed=sum(r["status"] != "ok" for r in rows))
        if rows:
            writer.append("predictions", rows)
    except Exception as exc:  # e.g. a GPU the hardware table does not know: no predictions, the run goes on
        meta.update(status="failed", error=one_line(exc))
    meta["seconds"] = round(time.monotonic() - t0, 1)
    writer.update_meta(predictions=meta)
    return meta["seconds"]
