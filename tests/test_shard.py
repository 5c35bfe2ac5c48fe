"""`perfmodel collect --shard I/N` (collectors/sweep/shard.py): the split is deterministic, disjoint and covers the
suite, whole configs per shard, balanced by predicted time; bad --shard values are one sentence and exit 2."""

from __future__ import annotations

import pytest

from collectors.sweep.options import CollectError, CollectOptions, Shard, parse_shard
from collectors.sweep.shard import case_cost_s, make_plan, predicted_ms
from kernels.hardware import get_gpu
from kernels.suites import get_suite
from perfmodel.cli import main

OPTS = CollectOptions(interpret=True, determinism_runs=100)
IMPLS = ["stage0_baseline", "stage5_full", "sdpa_cudnn"]


def fake_predict(impls, configs, gpu):
    """The bound's and the model's rows as perfmodel.model.predictors.prediction_rows gives them (stages only)."""
    rows = []
    for c in configs:
        for impl in impls:
            if impl.startswith("stage"):
                rows.append({"impl": impl, "config_id": c.id, "predictor": "model", "status": "ok",
                             "time_ms": c.flops / 3e11})
                rows.append({"impl": impl, "config_id": c.id, "predictor": "bound", "status": "ok",
                             "time_ms": c.flops / 9e11})
    return rows


@pytest.mark.parametrize("count", [1, 2, 3, 5, 24])
def test_shards_are_deterministic_disjoint_and_cover_the_suite(count):
    configs = get_suite("fa3-grid")
    plans = [make_plan(count, IMPLS, configs, OPTS, "NVIDIA H200", fake_predict) for _ in range(2)]
    assert plans[0].assignment == plans[1].assignment and plans[0].plan_id == plans[1].plan_id
    shards = [plans[0].configs_of(i) for i in range(1, count + 1)]
    flat = [c for s in shards for c in s]
    assert sorted(flat) == sorted(c.id for c in configs) and len(flat) == len(set(flat))  # disjoint, covering
    assert all(shards)  # no empty shard
    # each shard keeps the suite's order, and the greedy split leaves no shard more than one config above another
    order = [c.id for c in configs]
    assert all(s == sorted(s, key=order.index) for s in shards)
    load = [sum(plans[0].cost_s[c] for c in s) for s in shards]
    assert max(load) - min(load) <= max(plans[0].cost_s.values()) + 1e-9


def test_balancing_says_what_costed_each_case_and_prefers_the_model():
    configs = get_suite("batching")
    plan = make_plan(2, IMPLS, configs, OPTS, "NVIDIA H200", fake_predict)
    assert set(plan.balanced_by) == {"model", "flops"}  # the peer has no prediction: FLOPs at the datasheet rate
    assert all(case.startswith("sdpa_cudnn ") for case in plan.balanced_by["flops"])
    times = predicted_ms(fake_predict(IMPLS, configs, None), IMPLS, configs, get_gpu("h200-sxm"))
    big = max(configs, key=lambda c: c.flops)
    assert times[("stage0_baseline", big.id)] == (big.flops / 3e11, "model")
    assert times[("sdpa_cudnn", big.id)][1] == "flops"
    # the largest config costs the most and is placed first, in shard 1
    assert plan.assignment[big.id] == 1 and plan.cost_s[big.id] == max(plan.cost_s.values())
    assert case_cost_s(1.0, OPTS) == pytest.approx(1.0 + 0.25 + 0.1)


def test_a_failing_predictor_costs_by_flops_and_is_recorded():
    def broken(*_):
        raise RuntimeError("no sm_90 compiler")

    plan = make_plan(2, IMPLS, get_suite("batching"), OPTS, None, broken)
    assert set(plan.balanced_by) == {"flops"} and "no sm_90 compiler" in plan.prediction_error
    assert plan.assignment == make_plan(2, IMPLS, get_suite("batching"), OPTS, None, None).assignment


@pytest.mark.parametrize("text, index, count", [("1/2", 1, 2), (" 2 / 2 ", 2, 2), ("1/1", 1, 1)])
def test_parse_shard(text, index, count):
    assert parse_shard(text) == Shard(index, count) and str(parse_shard(text)) == f"{index}/{count}"


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "1", "1/0", "-1/2", "1/2/3", ""])
def test_bad_shard_is_one_sentence(text, capsys):
    code = main(["collect", "--interpret", f"--shard={text}", "--out", "/nonexistent/never-created"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("perfmodel: error: --shard") and err.count("\n") == 1, err


def test_more_shards_than_configs_is_refused(tmp_path, capsys):
    code = main(["collect", "--interpret", "--stages", "stage0_baseline", "--refs", "none", "--shard", "1/4",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "a shard is a whole config, so use at most 3 shard(s)" in err
    assert not any(tmp_path.iterdir())


def test_shard_and_devices_do_not_combine(capsys):
    code = main(["collect", "--interpret", "--shard", "1/2", "--devices", "all"])
    assert code == 2 and "--shard and --devices do not combine" in capsys.readouterr().err
    with pytest.raises(CollectError):
        CollectOptions(shard="1/2", devices="0")


def test_resume_takes_no_shard(tmp_path, capsys):
    code = main(["collect", "--resume", str(tmp_path), "--shard", "1/2"])
    assert code == 2 and "drop --shard / --devices" in capsys.readouterr().err
