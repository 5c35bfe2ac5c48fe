"""The in-order replay of a loop's PTX (perfmodel/model/critical_path.py) on hand-made instruction lists whose time is
worked out by hand, and the predictive model's use of it: latencies come only from micro-benchmark rows."""

from __future__ import annotations

import dataclasses

import pytest

from kernels.hardware import get_gpu
from perfmodel.model import critical_path as cp

NS = 1e-9


def _lat(**kw) -> cp.Latencies:
    # 1 GHz: one clock = 1 ns; round latencies so every replay below is worked out by hand
    base = dict(clock_hz=1e9, alu_s=4 * NS, ex2_s=20 * NS, xbar_s=30 * NS, bar_sync_s=15 * NS,
                mbarrier_wait_s=10 * NS, mufu_clocks=8, smem_bytes_per_clock=32,
                wgmma_group_s=lambda kind, n, k, flops: (200 * NS, 100 * NS))
    base.update(kw)
    return cp.Latencies(**base)


def _t(body: list[str], **kw) -> float:
    return cp.iteration_seconds(cp.nodes(body), _lat(), **kw)


def test_a_dependent_chain_costs_its_latencies_and_independent_work_its_issue():
    chain = ["fma.rn.f32 %r1, %r1, %r2, %r3;", "fma.rn.f32 %r1, %r1, %r2, %r3;", "fma.rn.f32 %r1, %r1, %r2, %r3;"]
    assert _t(chain) == pytest.approx(12 * NS)  # 3 x 4 ns, carried into the next iteration
    independent = [f"fma.rn.f32 %r{i}, %r100, %r101, %r102;" for i in range(1, 9)]
    assert _t(independent) == pytest.approx(8 * NS)  # one a clock


def test_the_mufu_takes_one_warp_instruction_every_mufu_clocks():
    body = [f"ex2.approx.ftz.f32 %r{i}, %r100;" for i in range(1, 5)]
    assert _t(body) == pytest.approx(4 * 8 * NS)


def test_a_wgmma_group_holds_the_warp_at_its_wait_for_its_latency():
    body = ["wgmma.fence.sync.aligned;",
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%r1, %r2}, %rd1, %rd2, %p1, 1, 1, 0, 1;",
            "wgmma.commit_group.sync.aligned;", "wgmma.wait_group.sync.aligned 0;"]
    # fence 1, mma 1, commit at t=2 -> done at 202, the wait issues then (+1): 203 ns an iteration
    assert _t(body) == pytest.approx(203 * NS)
    # three warp groups share the partition's tensor pipe, 100 ns a group: in steady state the pipe binds, 300 ns
    assert _t(body, warpgroups_in_lockstep=3.0) == pytest.approx(300 * NS)


def test_an_async_wait_leaves_the_newest_group_in_flight_across_the_softmax():
    mma = "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%r1, %r2}, {%r7, %r8}, %rd2, %p1, 1, 1, 1;"
    body = [mma, "wgmma.commit_group.sync.aligned;", "wgmma.wait_group.sync.aligned 1;"] + \
        [f"fma.rn.f32 %r{i}, %r900, %r901, %r902;" for i in range(10, 110)]
    # each iteration: the previous iteration's group retires at the wait (it has had ~100 ns of softmax under it),
    # so an iteration costs max(its own 103 issues, the pipe's 100 ns behind the last group): no 200 ns latency each
    assert _t(body) < 200 * NS
    synchronous = body[:2] + ["wgmma.wait_group.sync.aligned 0;"] + body[3:]
    assert _t(synchronous) == pytest.approx((1 + 200 + 1 + 100) * NS)  # mma, commit + 200, wait, 100 fmas


def test_barriers_and_ready_mbarrier_waits_cost_what_was_measured():
    body = ["bar.sync 1, 256;", "mbarrier.try_wait.parity.shared::cta.b64 complete, [%r5], %r6;",
            "@!complete bra.uni waitLoop;"]
    assert _t(body) == pytest.approx((15 + 10 + 1) * NS)


def test_warps_of_a_partition_share_its_issue_port_and_mufu():
    alu = [f"fma.rn.f32 %r{i}, %r900, %r901, %r902;" for i in range(1, 101)]
    two = cp.partition_seconds([(cp.nodes(alu), "a"), (cp.nodes(alu), "b")], _lat())
    assert two == pytest.approx(200 * NS)  # 200 instructions through one issue port
    ex2 = [f"ex2.approx.ftz.f32 %r{i}, %r900;" for i in range(1, 11)]
    assert cp.partition_seconds([(cp.nodes(ex2), "a"), (cp.nodes(ex2), "b")], _lat()) == pytest.approx(160 * NS)


def test_two_free_warps_share_the_tensor_pipe_and_the_issue_port():
    mma = ["wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%r1, %r2}, %rd1, %rd2, %p1, 1, 1, 0, 1;",
           "wgmma.commit_group.sync.aligned;", "wgmma.wait_group.sync.aligned 0;"]
    softmax = [f"fma.rn.f32 %r{i}, %r900, %r901, %r902;" for i in range(10, 110)]
    alone = _t(mma + softmax)  # 1 + 200 + 1 + 100
    together = cp.partition_seconds([(cp.nodes(mma + softmax), "a"), (cp.nodes(mma + softmax), "b")], _lat())
    # two independent warps (two ping-pong groups) started together stay in phase (nothing in the PTX orders
    # them): the second group's wgmma queues 100 ns behind the first's on the pipe, and their 200 softmax
    # instructions share the issue port: 202 + 200 + 2
    assert alone == pytest.approx(302 * NS) and together == pytest.approx(404 * NS)


def test_a_barrier_joins_the_warps_of_its_group_only():
    slow = ["fma.rn.f32 %r1, %r1, %r901, %r902;" for _ in range(10)] + ["bar.sync 1, 256;"]
    fast = ["fma.rn.f32 %r1, %r1, %r901, %r902;", "bar.sync 1, 256;"]
    joined = cp.partition_seconds([(cp.nodes(slow), "g"), (cp.nodes(fast), "g")], _lat())
    free = cp.partition_seconds([(cp.nodes(slow), "g"), (cp.nodes(fast), "h")], _lat())
    assert joined == pytest.approx(free, rel=0.05)  # the slow warp sets the period either way
    fast_alone = cp.partition_seconds([(cp.nodes(fast), "h")], _lat())
    assert fast_alone < joined  # ... and a joined fast warp waits for it at every barrier


def test_operands_name_what_is_written_and_read():
    assert cp._operands("fma.rn.f32 %r1, %r2, %r3, %r4;") == (["%r1"], ["%r2", "%r3", "%r4"])
    assert cp._operands("st.shared.v4.b32 [%r9], {%r1, %r2, %r3, %r4};") == ([], ["%r9", "%r1", "%r2", "%r3", "%r4"])
    assert cp._operands("ld.shared.v2.b32 {%r1, %r2}, [%r3];") == (["%r1", "%r2"], ["%r3"])


def test_the_predictive_model_prices_latencies_only_from_micro_benchmarks():
    from kernels.workload import AttentionConfig
    from perfmodel.model import predictive

    seed = AttentionConfig(B=16, H=16, S=2048, D=64, causal=True)
    h200 = get_gpu("h200-sxm")
    assert predictive.latencies(h200) is None  # the datasheet has no latency: v1's chain, said so
    assert predictive.predict_stage(seed, 4, h200).unpriced
    micro = {"fma_latency_ns": 2.0, "exp2_latency_ns": 10.0, "shfl_latency_ns": 12.0, "bar_sync_ns": 15.0,
             "mbarrier_wait_ready_ns": 30.0, "smem_tbps": 30.0}
    for kind, n, k in (("ss", 128, 64), ("rs", 64, 128)):
        micro[f"wgmma_{kind}_n{n}_k{k}_latency_ns"] = 190.0
        micro[f"wgmma_{kind}_n{n}_k{k}_tflops"] = 700.0
    measured = h200.with_micro(micro, "a test")
    p = predictive.predict_stage(seed, 4, measured)
    assert not p.unpriced and p.latency_source == "a test"
    # every latency doubled and every rate halved (the clock too): each iteration term doubles
    slow = dataclasses.replace(measured, boost_clock_mhz=h200.boost_clock_mhz / 2, exp_tops=h200.exp_tops / 2,
                               fp16_tflops=h200.fp16_tflops / 2).with_micro(
        {k: (v * 2 if k.endswith("_ns") else v / 2) for k, v in micro.items()}, "a test")
    q = predictive.predict_stage(seed, 4, slow)
    for term in predictive.ITERATION_TERMS:
        assert q.iteration_us[term] == pytest.approx(2 * p.iteration_us[term], rel=1e-6), term
