"""`perfmodel gates`' exit status on complete, partial, interpret-only, all-failed, table-less and multi-run
evidence; --allow-missing, --strict, --model thresholds; runs of different GPUs refused; the `plan` suite.

The runs here are SYNTHETIC (made up so that every gate's answer is known) and written with the store's own
writer; the partial cases also use a copy of the bundled H100 run with tables deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kernels.suites import SEED, SUITE_DETERMINISM_RUNS, get_suite, suite_determinism_runs
from perfmodel.cli import main
from perfmodel.plan.einstein import DETERMINISM_METRIC
from perfmodel.plan.einstein_file import default_model_path, load_model
from perfmodel.plan.gate_reading import scope
from perfmodel.plan.gates import evaluate_gates, evaluate_gates_over
from perfmodel.runs import load_run, resolve_run_dirs
from runstore.writer import RunWriter
from synthetic_run import timing_row

H100, H200 = "NVIDIA H100 80GB HBM3", "NVIDIA H200"
H100_RUN = "20261124-173318-custom-nvidia-h100-80gb-hbm3"  # bundled, named by its id
# TFLOP/s per impl at every config: each stage meets its target, stage 5 is 1.2x the FA3-class peer (cuDNN).
TFLOPS = {"stage0_baseline": 200.0, "stage1_warpspec": 200.0, "stage2_reduced_sync": 250.0,
          "stage3_persistent": 260.0, "stage4_overlap": 270.0, "stage5_full": 300.0, "sdpa_cudnn": 250.0}
PER_SEQ_MS = {1: 0.100, 8: 0.030, 32: 0.018}  # stage 3's per-sequence latency: 5.6x from B=1 to B=32
SHIPPED = default_model_path().read_text(encoding="utf-8")


def _key(impl, c):
    return {"impl": impl, "config_id": c.id, **c.as_dict()}


def write_run(root: Path, name: str, suites=("plan",), *, gpu: str | None = H100, tflops: dict | None = None,
              determinism_runs: int = 1000, mode: str = "gpu", created: str | None = None,
              status: str = "ok") -> Path:
    """A run over `suites`' configs in which every gate passes, unless told otherwise: `tflops` replaces some
    impls' TFLOP/s, `status="failed"` makes every case fail, `created` sets run.json's start time."""
    configs = list({c.id: c for s in suites for c in get_suite(s)}.values())
    speed = {**TFLOPS, **(tflops or {})}
    run_dir = Path(root) / name
    w = RunWriter(run_dir, {"environment": {"gpu_name": gpu} if gpu else {}, "suite": "+".join(suites),
                            "mode": mode, "note": "SYNTHETIC test data (tests/test_gates_exit.py)"})
    timings, correctness, batching, determinism, stalls, census = [], [], [], [], [], []
    for c in configs:
        for impl, tf in speed.items():
            if status != "ok":
                timings.append({**_key(impl, c), "status": status, "error": "PassManager::run failed"})
                correctness.append({**_key(impl, c), "status": status, "error": "PassManager::run failed"})
                continue
            if mode == "interpret":
                timings.append({**_key(impl, c), "status": "not_measured", "error": "--interpret"})
            else:
                timings.append(timing_row(impl, c, c.flops / (tf * 1e12) * 1e3))
            correctness.append({**_key(impl, c), "status": "ok", "max_abs_err": 1e-3, "doc_allclose": True,
                                "doc_max_err_ok": True, "within_budget": True})
        if c.B in PER_SEQ_MS and c == SEED.with_(B=c.B) and mode != "interpret" and status == "ok":
            batching.append({**_key("stage3_persistent", c), "status": "ok", "time_ms": PER_SEQ_MS[c.B] * c.B,
                             "per_seq_ms": PER_SEQ_MS[c.B], "speedup_vs_b1": PER_SEQ_MS[1] / PER_SEQ_MS[c.B]})
        if c == SEED and mode != "interpret" and status == "ok":
            determinism.append({**_key("stage5_full", c), "status": "ok", "n_runs": determinism_runs,
                                "n_identical": determinism_runs, "bitwise_identical": True})
            for reason, cpi in (("long_scoreboard", 2.0), ("math_pipe_throttle", 8.0)):
                stalls.append({**_key("stage4_overlap", c), "kernel": "_attn_fwd", "kernel_index": 0,
                               "reason": reason, "cycles_per_issue": cpi, "fraction": cpi / 10.0})
            census.append({**_key("stage2_reduced_sync", c), "status": "ok", "bar_sync": 2})
    for table, rows in (("timings", timings), ("correctness", correctness), ("batching", batching),
                        ("determinism", determinism), ("stalls", stalls), ("census", census)):
        w.append(table, rows)
    w.finish("complete")
    if created:
        meta = json.loads((run_dir / "run.json").read_text())
        meta["created"] = created
        (run_dir / "run.json").write_text(json.dumps(meta))
    return run_dir


def gates(*args, capsys=None):
    code = main(["gates", *map(str, args)])
    out = capsys.readouterr() if capsys else None
    return code, out


@pytest.fixture
def bundled_copy(tmp_path):
    src = resolve_run_dirs([H100_RUN])[0]
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# ---- one run -----------------------------------------------------------------------------------------------
def test_complete_evidence_passes(tmp_path, capsys):
    run = write_run(tmp_path, "plan")
    g = evaluate_gates(load_run(run)).set_index("gate")
    checked = g[g.status != "report"]
    assert (checked.status == "pass").all(), checked[checked.status != "pass"][["status", "detail"]]
    assert set(g[g.status == "report"].index) == {"stage2_minimal_barriers", "stretch_fp8", "mvp_reproducibility",
                                                  "stretch_multi_gpu"}  # judged by a person: never blocks
    assert (g.run[g.status == "pass"] == "plan").all()  # every figure names its run
    assert gates(run, capsys=capsys)[0] == 0
    assert gates(run, "--strict", capsys=capsys)[0] == 0  # stage 5 is 1.2x cuDNN: the 1.15x stretch passes too


def test_partial_evidence_is_not_a_pass_and_says_what_measures_it(tmp_path, capsys):
    run = write_run(tmp_path, "seed-only", suites=("seed",), determinism_runs=100)
    code, out = gates(run, capsys=capsys)
    assert code == 3
    for command in ("perfmodel collect --suite batching", "perfmodel collect --suite fa3-grid",
                    "perfmodel collect --suite seed --determinism 1000",
                    "one run measures them all: perfmodel collect --suite plan"):
        assert command in out.err, command
    assert gates(run, "--allow-missing", capsys=capsys)[0] == 0  # nothing measured fails


def test_bundled_run_with_tables_deleted(bundled_copy, capsys):
    assert gates(bundled_copy, capsys=capsys)[0] == 1  # stage 1 refuses causal; 3.1x batching is not 5x
    for table in ("timings", "correctness", "batching"):
        shutil.rmtree(bundled_copy / "tables" / table)
    code, out = gates(bundled_copy, capsys=capsys)
    assert code == 3 and "stage5_tflops" in out.err  # what was deleted is not measured, never a pass
    # the memory-stall gate still passes, but the run lacks tables its run.json implies: named, and no exit 0
    code, out = gates(bundled_copy, "--allow-missing", capsys=capsys)
    assert code == 3 and "lacks the tables batching, correctness and timings" in out.err
    shutil.rmtree(bundled_copy / "tables")
    code, out = gates(bundled_copy, "--allow-missing", capsys=capsys)
    assert code == 3 and "holds no tables" in out.err  # no evidence never exits 0


def test_a_run_that_measures_no_blocking_gate_cannot_pass(tmp_path, capsys):
    w = RunWriter(tmp_path / "ceilings-only", {"environment": {"gpu_name": H100}})
    w.append("ceilings", [{"name": "fp16_mma_tflops", "value": 656.0, "unit": "TFLOP/s", "how": "synthetic"}])
    w.finish("failed")
    code, out = gates(tmp_path / "ceilings-only", "--allow-missing", capsys=capsys)
    assert code == 3 and "measure none of the gates" in out.err


def test_interpret_run_never_exits_0(tmp_path, capsys):
    run = write_run(tmp_path, "cpu", suites=("seed",), gpu=None, mode="interpret")
    g = evaluate_gates(load_run(run)).set_index("gate")
    assert g.loc["stage1_no_crashes", "status"] == "not_measured"  # not_measured timings are not "no crash"
    assert g.loc["stage1_allclose", "status"] == "pass"  # the CPU's correctness is real...
    code, out = gates(run, "--allow-missing", capsys=capsys)
    assert code == 3 and "--interpret" in out.err  # ...but no GPU evidence: never a pass


def test_every_stage_failed_fails(tmp_path, capsys):
    run = write_run(tmp_path, "crashed", suites=("seed",), status="failed")
    g = evaluate_gates(load_run(run)).set_index("gate")
    assert g.loc["stage1_no_crashes", "status"] == "fail" and g.loc["stage5_correctness_20_configs",
                                                                    "status"] == "not_measured"
    assert gates(run, "--allow-missing", capsys=capsys)[0] == 1


def test_strict_counts_stretch_gates(tmp_path, capsys):
    run = write_run(tmp_path, "plan", tflops={"stage5_full": 275.0})  # 1.10x cuDNN: 1.05 met, 1.15 missed
    assert gates(run, capsys=capsys)[0] == 0
    code, out = gates(run, "--strict", capsys=capsys)
    assert code == 1 and "failing: stretch_median_vs_fa3" in out.err


def test_thresholds_come_from_the_model_file(bundled_copy, tmp_path, capsys):
    """A plan with stage 5 at 400-450 TFLOP/s fails the seed run's stage 5 gate (303) that the shipped one passes."""
    mine = tmp_path / "mine.toml"
    text = SHIPPED.replace("target_low_tflops = 210.0\ntarget_high_tflops = 260.0",
                           "target_low_tflops = 400.0\ntarget_high_tflops = 450.0")
    assert text != SHIPPED
    mine.write_text(text, encoding="utf-8")
    shipped = evaluate_gates(load_run(bundled_copy)).set_index("gate").loc["stage5_tflops"]
    user = evaluate_gates(load_run(bundled_copy), load_model(mine)).set_index("gate").loc["stage5_tflops"]
    assert shipped.status == "pass" and user.status == "fail" and user.measured == pytest.approx(shipped.measured)
    assert user.threshold.startswith("400.0–450.0")
    run = write_run(tmp_path, "plan")
    assert gates(run, capsys=capsys)[0] == 0
    code, out = gates(run, "--model", mine, capsys=capsys)
    assert code == 1 and "stage5_tflops" in out.err
    # a gate's own threshold wins over its stage's target
    own = tmp_path / "own.toml"
    own.write_text(SHIPPED.replace('metric = "timings.tflops"\ncomparison = "between"\n',
                                   'metric = "timings.tflops"\ncomparison = "between"\nthreshold = 500.0\n'
                                   'threshold_high = 600.0\n'), encoding="utf-8")
    assert load_model(own).gates[[g.id for g in load_model(own).gates].index("stage5_tflops")].threshold == 500.0
    assert gates(run, "--model", own, capsys=capsys)[0] == 1


def test_help_explains_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        main(["gates", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for words in ("exit status", "--allow-missing", "runs/SEED runs/BATCHING runs/GRID", "  3  ", "  2  "):
        assert words in text, words


# ---- several runs -----------------------------------------------------------------------------------------
def test_three_runs_of_one_gpu_join(tmp_path, capsys):
    seed = write_run(tmp_path, "seed", suites=("seed",), created="2026-12-01T10:00:00+0000")
    batching = write_run(tmp_path, "batching", suites=("batching",), created="2026-12-01T11:00:00+0000")
    grid = write_run(tmp_path, "grid", suites=("fa3-grid",), created="2026-12-01T12:00:00+0000")
    for one in (seed, batching, grid):
        assert gates(one, capsys=capsys)[0] == 3
    code, out = gates(grid, seed, batching, "--format", "table", capsys=capsys)
    assert code == 0 and "3 runs" in out.out and "run" in out.out.splitlines()[1]
    g = evaluate_gates_over([load_run(p) for p in (seed, batching, grid)]).set_index("gate")
    assert g.loc["stage3_batching", "run"] == "batching" and g.loc["stage5_median_vs_fa3", "run"] == "grid"
    assert g.loc["stage5_bitwise_1000", "run"] == "seed"
    assert g.loc["stage3_tflops_b32", "run"] == "batching"  # B=32 is a batching config, not a seed one


def test_the_newest_run_wins_where_two_measure_the_same_case(tmp_path, capsys):
    old = write_run(tmp_path, "old", suites=("seed",), created="2026-12-01T10:00:00+0000")
    new = write_run(tmp_path, "new", suites=("seed",), tflops={"stage5_full": 150.0},
                    created="2026-12-02T10:00:00+0000")
    for order in ((old, new), (new, old)):  # the order given does not matter, `created` does
        g = evaluate_gates_over([load_run(p) for p in order]).set_index("gate")
        row = g.loc["stage5_tflops"]
        assert row.status == "fail" and row.measured == pytest.approx(150.0) and row.run == "new"
        assert "replaces old" in row.detail
    code, out = gates(old, new, capsys=capsys)
    assert code == 1 and "newest run's are used" in out.err


def test_a_newer_run_that_measured_nothing_does_not_hide_an_older_measurement(tmp_path):
    old = write_run(tmp_path, "gpu", suites=("seed",), created="2026-12-01T10:00:00+0000")
    cpu = write_run(tmp_path, "cpu", suites=("seed",), mode="interpret", created="2026-12-02T10:00:00+0000")
    # (an --interpret run made on the GPU machine: same GPU name, timings not_measured)
    g = evaluate_gates_over([load_run(old), load_run(cpu)]).set_index("gate")
    assert g.loc["stage5_tflops", "status"] == "pass" and g.loc["stage5_tflops", "run"] == "gpu"
    assert g.loc["stage1_allclose", "run"] == "cpu"  # correctness the newer run did measure is its own


def test_runs_of_different_gpus_are_refused(tmp_path, capsys):
    a = write_run(tmp_path, "h100", suites=("seed",))
    b = write_run(tmp_path, "h200", suites=("batching",), gpu=H200)
    code, out = gates(a, b, capsys=capsys)
    assert code == 2 and "different GPU models" in out.err and H200 in out.err
    assert out.err.count("\n") == 1  # one sentence
    assert gates(a, a, capsys=capsys)[0] == 2  # the same run twice


# ---- the plan suite -------------------------------------------------------------------------------------------
def test_plan_suite_holds_every_config_the_gates_read_once():
    plan = [c.id for c in get_suite("plan")]
    assert len(plan) == len(set(plan))
    assert set(plan) == {c.id for s in ("seed", "batching", "fa3-grid") for c in get_suite(s)}
    for g in load_model().gates:
        if not g.judged_by_person:
            assert {c.id for c in scope(g)} <= set(plan), g.id
        if g.metric == DETERMINISM_METRIC:
            assert suite_determinism_runs("plan") >= g.repetitions
    assert SUITE_DETERMINISM_RUNS == {"plan": 1000} and suite_determinism_runs("seed") is None
