"""`check_model` names the document's inconsistencies (ANCHORS.md, "The seed's numbers against that evidence")."""

import pytest

from kernels.hardware import get_gpu
from kernels.suites import SEED
from perfmodel.plan.einstein_file import load_model
from perfmodel.plan.modelcheck import check_model, findings_frame


@pytest.fixture(scope="module")
def findings():
    return check_model(load_model(), get_gpu("h100-sxm"), SEED)


def _find(findings, subject):
    hits = [f for f in findings if f.subject == subject]
    assert hits, subject
    return hits


def test_internal_inconsistencies(findings):
    (f,) = _find(findings, "stage 0->2")
    assert f.severity == "error" and f.kind == "internal" and "1.83-2.75x" in f.message
    (f,) = _find(findings, "stage 0->5")
    assert f.severity == "error" and "1.671-2.062x" in f.message
    (f,) = _find(findings, "stage 3->4")
    assert f.severity == "info"  # 140 -> 180 is 1.29x, within #4's claimed 1.2-1.3x
    (f,) = _find(findings, "stage 5 vs FA3")
    assert f.severity == "warning" and "1.11-1.37x" in f.message
    (f,) = _find(findings, "constraint #2 vs FA3 reference")
    assert f.severity == "error" and "344 TFLOP/s" in f.message


def test_physics(findings):
    (f,) = _find(findings, "gate stage3_batching")
    assert f.severity == "error" and f.kind == "physics" and "256 tiles" in f.message
    (f,) = _find(findings, "constraint #4 memory-bound")
    assert f.severity == "error" and "512 FLOP/B" in f.message
    assert all(f.severity == "info" for f in findings if f.subject.endswith("vs roofline"))


def test_evidence(findings):
    ref = _find(findings, "FA3 reference")
    assert any("371" in f.message and f.severity == "error" for f in ref)
    assert any(f.subject == "constraint #2 launch" and f.severity == "error" for f in findings)


def test_targets_above_bound_are_errors():
    # on a GPU ten times slower every target above the bound must be flagged
    slow = get_gpu("h100-sxm").with_measured({"fp16_mma_tflops": 100.0})
    found = check_model(load_model(), slow, SEED)
    above = [f for f in found if f.subject.endswith("vs roofline") and f.severity == "error"]
    assert {f.subject for f in above} == {"stage 2 vs roofline", "stage 3 vs roofline", "stage 4 vs roofline", "stage 5 vs roofline"}


def test_order_and_frame(findings):
    order = [f.severity for f in findings]
    assert order == sorted(order, key=["error", "warning", "info"].index)
    frame = findings_frame(findings)
    assert list(frame.columns) == ["severity", "kind", "subject", "message"] and len(frame) == len(findings)
    assert set(frame["kind"]) == {"internal", "physics", "evidence"}
