"""`perfmodel collect`'s per-case step (`_Collector._gpu_case`) on the CPU: the GPU calls are replaced by fakes, so
what is checked is what it writes: every timed sample in `timing_samples`, the timings row with the median's
interval, all before the case's row in the `cases` log (what --resume skips)."""

from __future__ import annotations

import numpy as np
import torch

from collectors.timing import bench, measure as timing
from collectors.timing.measure import Timing
from kernels.registry import Impl
from kernels.workload import AttentionConfig
from runstore.reader import load_run
from runstore.writer import RunWriter

CFG = AttentionConfig(B=1, H=2, S=128, D=64, causal=False, dtype="fp16")


class _Clocks:
    def case_state(self, t0, t1):
        return {"sm_clock_mhz": 1980.0, "mem_clock_mhz": 2619.0}


def _part_seq(run_dir, table: str) -> int:
    (part,) = (run_dir / "tables" / table).glob("part-*.parquet")
    return int(part.stem.split("-")[1])


def fake_timed_case(monkeypatch, samples: list[float], during=lambda: None) -> Impl:
    """An implementation whose case `bench_case` passes and times with `samples` (calling `during()` while it
    runs), with the bare do_bench and the launch cost faked too."""
    out0 = torch.zeros(4)

    def fake_bench_case(impl, config, **_):
        during()
        res = bench.CaseResult(impl.name, config, "ok", timing=Timing.from_samples(samples), n_inputs=2,
                               correctness=bench.Correctness(1e-3, 1e-3, 1e-4, 2e-3, True, True))
        res.extra.update(sets=[(out0, out0, out0)] * 2, out=out0)
        return res

    monkeypatch.setattr(bench, "bench_case", fake_bench_case)
    monkeypatch.setattr(timing, "bare_do_bench", lambda call, *args: 0.49)
    monkeypatch.setattr(timing, "host_launch_us", lambda call: 20.0)
    return Impl("stage0_baseline", "stage", lambda q, k, v, causal: out0.clone(), "fake")


def test_gpu_case_writes_every_sample_before_the_case_log(tmp_path, monkeypatch):
    from collectors.sweep import local, options

    samples = (0.5 * (1 + 0.01 * np.random.default_rng(0).standard_normal(120))).tolist()
    impl = fake_timed_case(monkeypatch, samples)
    collector = local._Collector(options.CollectOptions(determinism_runs=3, out_dir=tmp_path))
    writer = RunWriter(tmp_path / "run", {"suite": "seed"})
    collector._gpu_case(writer, impl, CFG, _Clocks())

    run = load_run(writer.path)
    s = run.table("timing_samples")
    assert s["time_ms"].tolist() == samples and s["sample_index"].tolist() == list(range(len(samples)))
    assert set(s["impl"]) == {"stage0_baseline"} and set(s["config_id"]) == {CFG.id}
    t = run.table("timings").iloc[0]
    expected = Timing.from_samples(samples)
    assert t["time_ms"] == expected.median_ms
    assert (t["time_ms_ci_low"], t["time_ms_ci_high"]) == (expected.ci_low_ms, expected.ci_high_ms)
    assert t["ci_width_pct"] == expected.ci_width_pct and not t["wide_ci"]
    assert _part_seq(writer.path, "timing_samples") < _part_seq(writer.path, "cases")


def test_a_case_not_timed_writes_no_samples(tmp_path, monkeypatch):
    from collectors.sweep import local, options

    monkeypatch.setattr(bench, "bench_case", lambda impl, config, **_: bench.CaseResult(
        impl.name, config, "wrong", "max abs error too large; not timed",
        correctness=bench.Correctness(1.0, 1.0, 1.0, 2e-3, True, False)))
    impl = Impl("stage0_baseline", "stage", lambda *a, **k: None, "fake")
    collector = local._Collector(options.CollectOptions(determinism_runs=3, out_dir=tmp_path))
    writer = RunWriter(tmp_path / "run", {"suite": "seed"})
    collector._gpu_case(writer, impl, CFG, _Clocks())
    run = load_run(writer.path)
    assert "timing_samples" not in run.tables() and run.table("timings")["status"].tolist() == ["wrong"]
