"""The plan's success gates (the Einstein model file's `[[gates]]`) evaluated on the evidence of one or more runs.

Each gate ends in one of:
- `pass` / `fail`: the runs measured what the gate needs, and the figure meets / misses the threshold;
- `not_measured`: the runs cannot decide it (a covered config not measured, fewer configs than `min_configs`,
  fewer determinism repetitions than `repetitions`, no counters); the reason and the `perfmodel collect` command
  that would measure it are given, never a pass;
- `report`: judged by a person (comparison "report", or `measurable = false`): the figure, where there is one, is
  shown; such a gate never blocks.

A failure seen on part of what a gate covers is a failure even when the rest was not measured (one wrong config
already breaks "correct on all configs"); a pass needs all of it.

Every number a gate is judged by comes from the model file (perfmodel/data/einstein.toml documents the fields):
the threshold (a stage TFLOP/s gate's from its stage's target), the configs (`suite`, `B`), how many of them
must be measured (`min_configs`), the determinism repetitions (`repetitions`), the FA3-class peers (`peers`).
How comparisons read (the model file's notes): `approx` passes within -rel_tol of the target and also above it
(a "~110 TFLOPS" target is met by 130); `between` is read as a floor at its low end ("above 260 also meets the
intent"); `==` with threshold 1 means "true for every case covered".

`evaluate_gates(run)` judges one run, `evaluate_gates_over(runs)` several runs of one GPU model joined
(perfmodel/plan/gates_evidence.py: the newest run's figure where two measured the same case); the `run` column names
the run(s) each figure came from. `exit_status` turns the result into `perfmodel gates`' exit status.
"""

from __future__ import annotations


import pandas as pd

from perfmodel.plan.gate_judge import GateJudge
from perfmodel.plan.gates_evidence import Evidence
from perfmodel.reports.analysis import _model
from perfmodel.runs import Run

GATE_COLUMNS = ["gate", "stage", "impl", "kind", "status", "measured", "threshold", "detail", "quote", "configs",
                "run", "command"]
EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_NOT_MEASURED = 0, 1, 2, 3


# ---- all gates ----------------------------------------------------------------------------------------------
def evaluate_evidence(ev: Evidence, model=None) -> pd.DataFrame:
    """One row per gate of the model over the joined evidence (columns GATE_COLUMNS)."""
    model = _model(model)
    impls = {int(s.index): s.impl for s in model.stages}
    rows = [GateJudge(ev, model, g, impls.get(int(g.stage))).evaluate() for g in model.gates]
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def evaluate_gates(run: Run, model=None) -> pd.DataFrame:
    """One row per gate of the model on one run: status (pass | fail | not_measured | report), the measured
    figure, the threshold, a one-line detail, the run it came from and, where not measured, the command that
    would measure it."""
    return evaluate_evidence(Evidence([run]), model)


def evaluate_gates_over(runs: list[Run], model=None) -> pd.DataFrame:
    """`evaluate_gates` over several runs of one GPU model joined (UserError for mixed GPUs)."""
    return evaluate_evidence(Evidence(runs), model)


def blocking(gates: pd.DataFrame, strict: bool = False) -> pd.DataFrame:
    """The gates that decide the exit status: required ones (stretch too when `strict`), none judged by a person."""
    kinds = ("required", "stretch") if strict else ("required",)
    return gates[gates["kind"].isin(kinds) & (gates["status"] != "report")]


def failed(gates: pd.DataFrame, include_stretch: bool = False) -> pd.DataFrame:
    """The gates that fail (required ones only unless `include_stretch`)."""
    b = blocking(gates, strict=include_stretch)
    return b[b["status"] == "fail"]


def not_measured(gates: pd.DataFrame, strict: bool = False) -> pd.DataFrame:
    b = blocking(gates, strict)
    return b[b["status"] == "not_measured"]


def exit_status(gates: pd.DataFrame, strict: bool = False, allow_missing: bool = False,
                problems: list[str] = ()) -> int:
    """0 every blocking gate passes; 1 one fails; 3 none fails but one is not measured (0 with `allow_missing`),
    or the evidence can never pass (`problems`, or no blocking gate measured at all), whatever `allow_missing`."""
    b = blocking(gates, strict)
    if (b["status"] == "fail").any():
        return EXIT_FAIL
    if problems or not b["status"].isin(("pass", "fail")).any():
        return EXIT_NOT_MEASURED
    if (b["status"] == "not_measured").any() and not allow_missing:
        return EXIT_NOT_MEASURED
    return EXIT_PASS
