"""The tuner's fidelity step (kernels/tuner.py): its fastest candidates re-timed on rotated inputs before the choice,
with a fake timer and a fake kernel on the CPU, and the figures reaching the timings table."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from kernels.hardware import DEFAULT_GPU, GPUS
from kernels.tuner import RETIME_TOP, Tuner
from kernels.workload import AttentionConfig, rotation_sets


@dataclass(frozen=True)
class Cfg:
    name: str

    def __str__(self) -> str:
        return f"cfg={self.name}"


# (time on one input set, time rotated over input sets) of each candidate, ms: A is the fastest by the tuning timings
# (its inputs stay warm in L2), B once the inputs rotate; D is too slow to be re-timed
TIMES = {"A": (1.00, 1.50), "B": (1.10, 1.20), "C": (1.20, 1.30), "D": (2.00, 1.00)}


class FakeKernel:
    """The launch, the reference and the timer of a Tuner, recording which inputs each call got."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []  # (candidate, q's address)
        self.timed: list[tuple[str, int]] = []  # (candidate, input sets the timer rotated over)

    def candidates(self, S, D, causal):
        return [Cfg(n) for n in TIMES]

    def launch(self, cfg, q, k, v, o, sm_scale, causal):
        self.calls.append((cfg.name, q.data_ptr()))
        o.copy_(q)  # the "kernel": the reference's answer

    def reference(self, q, k, v, causal, sm_scale):
        return q.clone()

    def timer(self, fn, n_inputs):
        start = len(self.calls)
        for i in range(2 * n_inputs):
            fn(i)
        ran = self.calls[start:]
        name = ran[0][0]
        addresses = {ptr for _, ptr in ran}
        # the timer really rotated: n_inputs distinct q tensors, or one when it timed one input set
        assert len(addresses) == n_inputs
        self.timed.append((name, n_inputs))
        warm, rotated = TIMES[name]
        return warm if n_inputs == 1 else rotated


def _tuner(fake: FakeKernel, **kw) -> Tuner:
    return Tuner("fake", fake.candidates, fake.launch, lambda text: None, fake.reference, timer=fake.timer, **kw)


def _inputs():
    q = torch.randn(1, 2, 64, 64)
    return q, q.clone(), q.clone(), torch.empty_like(q)


def test_the_fastest_are_retimed_rotated_and_the_rotated_fastest_is_chosen():
    fake = FakeKernel()
    tuner = _tuner(fake)
    q, k, v, o = _inputs()
    cfg = tuner.choose(q, k, v, o, 0.125, True)
    assert cfg == Cfg("B")  # A was the L2-warm artefact
    sets = rotation_sets(4 * q.numel() * q.element_size(), GPUS[DEFAULT_GPU].l2_bytes)
    assert fake.timed == [(n, 1) for n in TIMES] + [(n, sets) for n in "ABC"]  # D, fourth, is not re-timed
    report = tuner.report()
    assert report["chosen"] == "cfg=B" and report["warm_pick"] == "cfg=A" and report["rotated_sets"] == sets
    assert report["retimed_ms"] == [("cfg=A", 1.00, 1.50), ("cfg=B", 1.10, 1.20), ("cfg=C", 1.20, 1.30)]
    assert tuner.fidelity() == {"tuner_warm_ms": 1.10, "tuner_rotated_ms": 1.20, "tuner_retimed": RETIME_TOP,
                                "tuner_warm_pick": "cfg=A", "tuner_warm_pick_rotated_ms": 1.50}
    assert tuner.last_tuned_config().endswith(f"cfg=B (tuned; fastest 3 re-timed on {sets} rotated input sets)")


def test_the_rotated_inputs_are_copies_of_the_given_ones():
    fake = FakeKernel()
    tuner = _tuner(fake)
    q, k, v, o = _inputs()
    seen = {}

    def launch(cfg, q2, k2, v2, o2, sm_scale, causal):
        seen.setdefault(q2.data_ptr(), q2)
        FakeKernel.launch(fake, cfg, q2, k2, v2, o2, sm_scale, causal)

    tuner.launch = launch
    tuner.choose(q, k, v, o, 0.125, False)
    assert q.data_ptr() in seen and len(seen) > 1
    assert all(torch.equal(t, q) for t in seen.values())


def test_off_the_tuning_timings_alone_choose():
    fake = FakeKernel()
    tuner = _tuner(fake, retime_top=0)
    q, k, v, o = _inputs()
    assert tuner.choose(q, k, v, o, 0.125, True) == Cfg("A")
    assert [n for _, n in fake.timed] == [1, 1, 1, 1]
    assert tuner.fidelity() == {} and tuner.report()["retimed_ms"] == []
    assert tuner.last_tuned_config().endswith("cfg=A (tuned)")


def test_the_same_choice_keeps_the_warm_pick_empty():
    fake = FakeKernel()
    tuner = _tuner(fake, retime_top=1)  # only the warm pick re-timed: its rotated figure recorded, the pick kept
    q, k, v, o = _inputs()
    assert tuner.choose(q, k, v, o, 0.125, True) == Cfg("A")
    fidelity = tuner.fidelity()
    assert fidelity["tuner_warm_pick"] == "" and fidelity["tuner_rotated_ms"] == 1.50
    assert fidelity["tuner_warm_pick_rotated_ms"] == fidelity["tuner_rotated_ms"]


def test_a_pinned_call_has_no_fidelity_figures():
    fake = FakeKernel()
    tuner = _tuner(fake)
    q, k, v, o = _inputs()
    tuner.choose(q, k, v, o, 0.125, True)
    tuner.choose(q, k, v, o, 0.125, True, pinned=Cfg("C"))
    assert tuner.fidelity() == {}


def test_the_stage5_tuner_has_it_on_by_default():
    from kernels import stage5_full

    assert stage5_full.TUNER.retime_top == RETIME_TOP > 1


def test_the_figures_reach_the_timings_row_and_the_bench_table():
    from collectors.timing.bench import BENCH_COLUMNS, CaseResult, bench_table
    from runstore.schema import columns

    fidelity = {"tuner_warm_ms": 1.1, "tuner_rotated_ms": 1.2, "tuner_retimed": 3, "tuner_warm_pick": "cfg=A",
                "tuner_warm_pick_rotated_ms": 1.5}
    result = CaseResult("stage5_full", AttentionConfig(1, 1, 64, 64), "ok", tuner=fidelity)
    row = result.timing_row("run")
    assert {k: row[k] for k in fidelity} == fidelity
    assert set(fidelity) <= set(columns("timings")) and set(fidelity) <= set(BENCH_COLUMNS)
    untuned = CaseResult("sdpa_cudnn", AttentionConfig(1, 1, 64, 64), "ok").timing_row("run")
    assert all(untuned[k] is None or (isinstance(untuned[k], float) and math.isnan(untuned[k])) for k in fidelity)
    frame = bench_table([result], {})
    assert frame.iloc[0]["tuner_warm_pick"] == "cfg=A"


@pytest.mark.gpu
def test_gpu_rotated_timing_measures_back_to_back_calls():
    from kernels.tuner import rotated_gpu_ms

    x = [torch.randn(4096, 4096, device="cuda") for _ in range(3)]
    ms = rotated_gpu_ms(lambda i: x[i] @ x[i], 3)
    assert 0 < ms < 100
