"""The Einstein plan as a model: frozen dataclasses of its constraints, stages, gates and reference, and the
predictions they make.

The shipped file, `perfmodel/data/einstein.toml`, encodes ../shared/seed/einstein-triton-integration.md and
documents its schema at the top; perfmodel/plan/einstein_file.py reads it (or a user's `--model FILE`) into an
`EinsteinModel`, every problem one sentence (`ModelError`, a `UserError`) naming the entry and the key.

Gates (`[[gates]]`) are judged by perfmodel/plan/gates.py with nothing but what the file says: the threshold, the
suite of configs a gate covers (`suite`, `B`), how many of them must be measured (`min_configs`), the determinism
repetitions (`repetitions`) and the FA3-class peers (`peers`). A `timings.tflops` gate that gives no threshold
takes it from its stage's target (`target_low_tflops`, and `target_high_tflops` for "between"), so the stage
table holds each TFLOP/s figure once; the resolved figure is in `Gate.threshold` and `Gate.threshold_from` says
where it came from.

Two predictions per stage:
- absolute: the document's TFLOP/s target for the stage, as written (None where it gives none, e.g. "Any");
- relative: a measured baseline TFLOP/s multiplied, for every constraint removed at stages 1..k, by
  (1 + the constraint's claimed gain), as a low..high band. A constraint counts once, at the first stage whose
  `removes` lists it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfmodel.errors import UserError

COMPARISONS = (">=", "<=", ">", "<", "==", "approx", "between", "report")
GATE_KINDS = ("required", "stretch")
EVIDENCE_SOURCES = ("ncu", "run")
# Metrics the gate schema treats specially: a stage's TFLOP/s (threshold from the stage's target when the gate
# gives none), the median ratio to an FA3-class peer (needs `peers`) and the bitwise determinism check
# (`repetitions`). Other metric names are free text the evaluator reads (perfmodel/plan/gates.py).
TFLOPS_METRIC = "timings.tflops"
PEER_RATIO_PREFIX = "timings.tflops /"
DETERMINISM_METRIC = "determinism.bitwise_identical"
GATE_KEYS = ("id", "stage", "kind", "quote", "metric", "comparison", "threshold", "threshold_high", "rel_tol",
             "suite", "B", "min_configs", "repetitions", "peers", "configs", "measurable", "note")


class ModelError(UserError):
    """A model file that cannot be used; the message is one sentence naming the entry and key."""


@dataclass(frozen=True)
class Evidence:
    signal: str
    source: str  # "ncu" | "run"
    metric: str
    supports_claim_if: str


@dataclass(frozen=True)
class Claim:
    name: str
    value: float
    unit: str
    quote: str


@dataclass(frozen=True)
class Constraint:
    id: int
    key: str
    name: str
    fa3_claim: str
    removal: str
    gain_low: float
    gain_high: float
    gain_quote: str
    status: str
    removed_by_stage: int
    removed_by_note: str
    evidence: tuple[Evidence, ...]
    claims: tuple[Claim, ...]

    def claim(self, name: str) -> float | None:
        for c in self.claims:
            if c.name == name:
                return c.value
        return None


@dataclass(frozen=True)
class Stage:
    index: int
    impl: str
    label: str
    target_low_tflops: float | None
    target_high_tflops: float | None
    target_quote: str
    vs_fa3_low: float | None
    vs_fa3_high: float | None
    vs_fa3_quote: str
    removes: tuple[int, ...]
    removes_quote: str
    expected_gain: str
    success_criteria: tuple[str, ...]

    @property
    def removes_text(self) -> str:
        return ",".join(str(i) for i in self.removes)


@dataclass(frozen=True)
class Gate:
    id: str
    stage: int
    kind: str
    quote: str
    metric: str
    comparison: str
    threshold: float | None
    threshold_high: float | None
    rel_tol: float | None
    configs: str  # the configs in words, as the file gives them ("" for the measurable gates: see `suite`)
    measurable: bool
    note: str
    suite: str | None = None  # kernels.suites name of the configs the gate covers
    B: int | None = None  # only the suite's configs of this batch size
    min_configs: int | None = None  # covered configs that must be measured for a pass (None: all of them)
    repetitions: int | None = None  # determinism: bitwise-identical repetitions asked for (None: any)
    peers: tuple[str, ...] = ()  # FA3-class peers in order of preference (peer-ratio gates)
    threshold_from: str = "gate"  # "gate" | "stage target": where `threshold` was read

    @property
    def judged_by_person(self) -> bool:
        """No number to check (comparison "report") or nothing the toolkit can measure: never blocks."""
        return self.comparison == "report" or not self.measurable


@dataclass(frozen=True)
class Reference:
    name: str
    tflops: float
    quote: str
    config: str
    gpu: str
    config_note: str


@dataclass(frozen=True)
class EinsteinModel:
    title: str
    date: str
    source: str
    path: str
    reference: Reference
    constraints: tuple[Constraint, ...]
    stages: tuple[Stage, ...]
    gates: tuple[Gate, ...]

    def constraint(self, cid: int) -> Constraint:
        for c in self.constraints:
            if c.id == cid:
                return c
        raise ModelError(f"the model has no constraint #{cid}.")

    def stage(self, index: int) -> Stage:
        if not 0 <= index < len(self.stages):
            raise ModelError(f"the model has no stage {index}; its stages are 0..{len(self.stages) - 1}.")
        return self.stages[index]

    def removed_through(self, index: int) -> tuple[int, ...]:
        """Constraint ids removed at stages 1..index, each once, in the order they are first removed."""
        seen: list[int] = []
        for stage in self.stages[1 : index + 1]:
            for cid in stage.removes:
                if cid not in seen:
                    seen.append(cid)
        return tuple(seen)


# ---- predictions -----------------------------------------------------------------------------------------------


def absolute_band(model: EinsteinModel, stage_index: int) -> tuple[float | None, float | None]:
    """The document's TFLOP/s target for the stage, as written; (None, None) where it gives none."""
    stage = model.stage(stage_index)
    return stage.target_low_tflops, stage.target_high_tflops


def gain_factors(model: EinsteinModel, stage_index: int) -> tuple[float, float]:
    """Product of (1 + gain) over the constraints removed at stages 1..stage_index, low and high."""
    low = high = 1.0
    for cid in model.removed_through(stage_index):
        c = model.constraint(cid)
        low *= 1.0 + c.gain_low
        high *= 1.0 + c.gain_high
    return low, high


def relative_band(model: EinsteinModel, stage_index: int, baseline_tflops: float) -> tuple[float, float]:
    """A measured baseline TFLOP/s carried through the claimed gains of the constraints removed so far."""
    if isinstance(baseline_tflops, bool) or not isinstance(baseline_tflops, (int, float)) \
            or not math.isfinite(baseline_tflops) or baseline_tflops <= 0:
        raise UserError(f"the baseline TFLOP/s must be a positive number, got {baseline_tflops!r}.")
    low, high = gain_factors(model, stage_index)
    return baseline_tflops * low, baseline_tflops * high
