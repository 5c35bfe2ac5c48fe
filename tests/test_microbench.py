"""The micro-benchmarks of the ceilings phase (collectors/ceilings/microbench.py): each compiles for sm_90 without a GPU
and its timed loop issues what its row says it measures, and nothing that would put another latency in the way;
on a GPU every row is measured."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("triton")

from collectors.ceilings import microbench  # noqa: E402
from collectors.census import sm90

SMS = 132


def _loops(ptx: str) -> list[list[str]]:
    """The instructions (opcode first, guard dropped) of every PTX block that branches back to its own label."""
    lines = ptx.splitlines()
    labels = [i for i, line in enumerate(lines) if re.match(r"^\$L__BB\d+_\d+:", line.strip())]
    out = []
    for n, start in enumerate(labels):
        label = lines[start].strip().split(":")[0]
        end = labels[n + 1] if n + 1 < len(labels) else len(lines)
        body = [line.split("//")[0].strip() for line in lines[start + 1:end]]
        ops = [re.sub(r"^@!?%\w+\s+", "", line) for line in body if line and not line.startswith((".", "{", "}"))]
        if any(op.startswith("bra") and op.rstrip(";").endswith(label) for op in ops):
            out.append(ops)
    return out


@pytest.fixture(scope="module")
def compiled() -> dict:
    out = {}
    for bench in microbench.benches(SMS, "cpu"):
        kernel, _ = sm90.compile_launch(sm90.Launch(bench.kernel, bench.grid, bench.args(1024),
                                                          dict(bench.kwargs)))
        out[bench.name] = kernel.asm["ptx"]
    return out


def test_every_row_has_a_benchmark_and_names_are_unique(compiled):
    names = [n for n, _, _ in microbench.names()]
    assert len(names) == len(set(names))
    assert sorted(compiled) == sorted(names)


@pytest.mark.parametrize("kind,n,k", microbench.wgmma_shapes())
def test_wgmma_loop_is_the_stages_group_and_nothing_else(compiled, kind, n, k):
    for what in ("latency_ns", "tflops"):
        (loop,) = _loops(compiled[microbench.wgmma_name(kind, n, k, what)])
        mma = [op for op in loop if op.startswith("wgmma.mma_async")]
        assert len(mma) == k // 16
        assert all(f".m64n{n}k16.f32.f16.f16" in op for op in mma)
        # A in registers (rs): the operand list after the accumulator starts with a register vector
        assert all((op.split("}", 1)[1].lstrip(" ,").startswith("{")) == (kind == "rs") for op in mma)
        assert sum(op.startswith("wgmma.wait_group") for op in loop) == 1
        assert not [op for op in loop if op.split()[0].split(".")[0] in ("add", "fma", "mul") and ".f32" in op]


@pytest.mark.parametrize("name,opcode,count", [
    ("exp2_latency_ns", "ex2.approx", microbench.UNROLL), ("fma_latency_ns", "fma.rn.f32", microbench.UNROLL),
    ("shfl_latency_ns", "shfl.sync.bfly", microbench.UNROLL),
    ("mbarrier_wait_ready_ns", "mbarrier.try_wait", microbench.UNROLL),
    ("fp32_fma_tflops", "fma.rn.f32", 64), ("smem_tbps", "ld.shared.v4", 16), ("bar_sync_ns", "bar.sync", 1),
])
def test_simple_loops_issue_what_they_measure(compiled, name, opcode, count):
    (loop,) = _loops(compiled[name])
    assert sum(op.startswith(opcode) for op in loop) == count
    assert not any(op.startswith(("ld.global", "st.global")) for op in loop)


def test_mbarrier_round_trip_is_two_partitions_waiting_on_each_other(compiled):
    loops = _loops(compiled["mbarrier_roundtrip_ns"])
    waiting = [lp for lp in loops if any(op.startswith("mbarrier.try_wait") for op in lp)]
    assert len(waiting) == 2  # the 4-warp and the 1-warp partition
    assert all(sum(op.startswith("mbarrier.arrive") for op in lp) == 1 for lp in waiting)
    assert "setmaxnreg" in compiled["mbarrier_roundtrip_ns"]


def test_tma_loop_copies_one_block_per_iteration(compiled):
    for name in ("tma_latency_ns", "tma_l2_tbps"):
        text = "\n".join("\n".join(lp) for lp in _loops(compiled[name]))
        assert text.count("cp.async.bulk.tensor") == 1 and "mbarrier.try_wait" in text


def test_value_is_work_over_time_or_latency_in_ns():
    latency = microbench.Bench("x_latency_ns", None, (1, ), lambda n: (), {})
    assert latency.value(250e-9) == pytest.approx(250.0)
    unrolled = microbench.Bench("x_latency_ns", None, (1, ), lambda n: (), {}, steps=8)
    assert unrolled.value(80e-9) == pytest.approx(10.0)
    rate = microbench.Bench("x_tflops", None, (1, ), lambda n: (), {}, per_iteration=2e6)
    assert rate.value(1e-6) == pytest.approx(2.0)  # 2e6 FLOP per microsecond = 2 TFLOP/s


def test_a_loop_that_does_not_grow_with_its_length_fails_with_a_reason():
    bench = microbench.Bench("flat_ns", None, (1, ), lambda n: (), {})
    bench.launch = lambda loops: None
    rows = []
    with pytest.raises(RuntimeError, match="took no longer"):
        microbench._seconds_per_iteration(bench, lambda fn: 1.0)
    assert rows == []


@pytest.mark.gpu
def test_every_micro_benchmark_measures_on_the_gpu():
    from collectors.ceilings.ceilings import _median_ms, _row

    rows = microbench.measure(_row, lambda fn: _median_ms(fn, warmup_ms=5, rep_ms=30))
    bad = [(r["name"], r["error"]) for r in rows if r["status"] != "ok"]
    assert not bad
    by = {r["name"]: r["value"] for r in rows}
    assert 1 < by["fma_latency_ns"] < 100 and 1 < by["exp2_latency_ns"] < 200 and 1 < by["shfl_latency_ns"] < 200
    assert all(0 < v for v in by.values())
