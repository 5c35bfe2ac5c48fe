"""The Nsight Compute worker's case loop (collectors.sweep.worker.run_cases) on the CPU: the GPU calls it makes
(synchronize, empty_cache, the NVTX range) are stood in for, the kernels run under Triton's interpreter. Stage 5
starts unpinned: the case's `tuned_config` must be what pins it."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def cpu_worker(monkeypatch):
    from collectors.timing import bench

    ranges = []
    fake_nvtx = types.ModuleType("nvtx")
    fake_nvtx.annotate = lambda message, domain: (ranges.append((domain, message)), contextlib.nullcontext())[1]
    monkeypatch.setitem(sys.modules, "nvtx", fake_nvtx)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda *a: None)
    make = bench.make_input_sets
    monkeypatch.setattr(bench, "make_input_sets", lambda cfg, n, device="cuda", seed=0: make(cfg, n, "cpu", seed))
    from collectors.sweep import worker

    return worker, ranges


@pytest.mark.interpreter
def test_each_case_runs_once_in_its_range_and_stage5_runs_the_timed_config(cpu_worker, unpinned_stage5,
                                                                          monkeypatch):
    from kernels.workload import AttentionConfig

    stage5_full = unpinned_stage5
    worker, ranges = cpu_worker
    cfg = AttentionConfig(B=1, H=1, S=64, D=64, causal=False, dtype="fp16").as_dict()
    timed = stage5_full.Config(BLOCK_M=192, ring=4, overlap=False)
    # Gluon cannot run on the CPU: stand in for stage 5's launch and record the config it was pinned to
    seen = []

    def attention(q, k, v, causal=False, sm_scale=None):
        seen.append(stage5_full.PINNED_CONFIG)
        return q.clone()

    monkeypatch.setattr(stage5_full, "attention", attention)
    cases = [{"impl": "stage0_baseline", "config": cfg, "range": "stage0_baseline:x"},
             {"impl": "stage5_full", "config": cfg, "range": "stage5_full:x", "tuned_config": f"S=64: {timed} (tuned)"},
             {"impl": "fa3", "config": cfg, "range": "fa3:x"}]
    out = io.StringIO()
    assert worker.run_cases({"domain": "perfmodel", "cases": cases}, out) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "unavailable"]
    assert ranges == [("perfmodel", "stage0_baseline:x"), ("perfmodel", "stage5_full:x")]
    assert all(r["warmup_s"] >= 0 and r["profiled_s"] >= 0 for r in records[:2])
    assert records[2]["warmup_s"] is None
    assert seen and all(c == timed for c in seen)  # every launch of the case ran the timed config
    assert stage5_full.PINNED_CONFIG is None  # restored after the case
