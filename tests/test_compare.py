"""`perfmodel compare BASE NEW` and perfmodel.reports.compare on synthetic runs: exit statuses for a CI check, the
bootstrap CIs when both runs kept samples, the p20–p80 fallback (labelled) when one did not, and bad input."""

from __future__ import annotations

import json
import math
from io import StringIO

import numpy as np
import pandas as pd
import pytest

from collectors.timing.measure import Timing
from perfmodel.cli import main
from perfmodel.reports import compare
from perfmodel.reports.analysis import batching_table, config_of
from perfmodel.runs import load_run
from runstore.writer import RunWriter
from synthetic_run import make_run

# Per-repetition noise of the sampled runs (relative sd) and their repetitions: the median's 95% CI is about
# +-0.03% wide, the p20–p80 spread about +-0.17%; the synthetic runs' own p20–p80 is +-0.5%.
NOISE, N_REPS = 0.002, 400


def with_samples(run_dir, seed: int = 0):
    """Re-time every ok case of a synthetic run (and its batching configs) from drawn samples, the way the
    collector does: Timing.from_samples -> the timings row (with the CI columns) and the timing_samples rows."""
    run = load_run(run_dir)
    cases = [r for r in run.table("timings").to_dict("records") if r["status"] == "ok"]
    cases += [{**r, "status": "ok"} for r in run.table("batching").to_dict("records")]
    writer = RunWriter(run_dir, resume=True)
    timings, samples = [], []
    for i, r in enumerate(cases):
        cfg = config_of(r)
        draws = 1 + NOISE * np.random.default_rng(seed * 1000 + i).standard_normal(N_REPS)
        draws *= r["time_ms"] / np.median(draws)  # the run's median stays the synthetic one (batching uses it)
        t = Timing.from_samples(draws.tolist())
        key = {"impl": r["impl"], "config_id": cfg.id, **cfg.as_dict()}
        timings.append({**key, "status": "ok", **t.as_dict(), "tflops": cfg.tflops_at(t.median_ms)})
        samples += t.sample_rows(key)
    writer.append("timings", timings)
    writer.append("timing_samples", samples)
    writer.finish("complete")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return {
        "base_old": make_run(root, "base-old"),  # no samples: p20–p80 only
        "base": with_samples(make_run(root, "base"), seed=1),
        "same": with_samples(make_run(root, "same"), seed=2),  # the same times, drawn again
        "slower10": with_samples(make_run(root, "slower10", scale=1.10), seed=3),
        "slower_half_pct": with_samples(make_run(root, "slower-half-pct", scale=1.005), seed=4),
        "faster": with_samples(make_run(root, "faster", scale=0.9), seed=5),
    }


def _compare(capsys, *args):
    code = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_same_times_pass(runs, capsys):
    code, out, err = _compare(capsys, runs["base"], runs["same"])
    assert code == 0
    cmp = compare.compare_runs(load_run(runs["same"]), load_run(runs["base"]))
    assert set(cmp["verdict"]) <= {"within noise", "below threshold"} and "regression" not in err
    assert set(cmp["interval"].dropna()) == {compare.CI_LABEL}  # both runs kept samples


def test_a_ten_percent_slowdown_fails(runs, capsys):
    code, out, err = _compare(capsys, runs["base"], runs["slower10"])
    assert code == 1
    assert "regression: stage0_baseline at B16-H16-S2048-D64-causal-fp16 +10.0%" in err
    assert "95% CI" in out and "regression" in out


def test_a_speed_up_passes(runs, capsys):
    code, _, err = _compare(capsys, runs["base"], runs["faster"])
    assert code == 0 and "22 improvement" in err  # 16 cases of the synthetic run + 6 of its batching configs


def test_threshold_decides_small_but_real_changes(runs, capsys):
    # +0.5% everywhere: far outside both runs' CIs (~0.03%), but under the 2% default threshold
    cmp = compare.compare_runs(load_run(runs["slower_half_pct"]), load_run(runs["base"]))
    assert set(cmp["verdict"]) == {"below threshold"}
    assert (cmp["change_low_pct"] > 0).all() and (cmp["time_change_pct"] < 2).all()
    assert _compare(capsys, runs["base"], runs["slower_half_pct"])[0] == 0
    assert _compare(capsys, runs["base"], runs["slower_half_pct"], "--threshold-pct", "0.25")[0] == 1


def test_old_run_falls_back_to_p20_p80_and_says_so(runs, capsys):
    # the baseline kept no samples: both runs are read on p20–p80, never on a CI made up for the old run; the
    # +0.5% change that the CIs resolve (above) is inside the old run's +-0.5% p20–p80 range
    code, out, err = _compare(capsys, runs["base_old"], runs["slower_half_pct"], "--threshold-pct", "0.25")
    assert code == 0
    cmp = compare.compare_runs(load_run(runs["slower_half_pct"]), load_run(runs["base_old"]), threshold_pct=0.25)
    # the label says why (the runs did not both keep samples), never "no samples" alone, which read as "nothing
    # measured" (issue 21 item 7), nor "this run kept none" of a new run that did
    assert set(cmp["interval"].dropna()) == {compare.PAIR_PCT_LABEL}
    assert compare.PAIR_PCT_LABEL == ("p20–p80 of the repetitions (the two runs did not both keep samples for a 95% "
                                      "interval)")
    # (the old run has no timings for the batching configs: those 6 are not comparable)
    assert cmp["verdict"].value_counts().to_dict() == {"within noise": 16, "not comparable": 6}
    assert "p20–p80 of the repetitions" in out and "no samples" not in out and "compared on p20–p80" in err
    assert _compare(capsys, runs["base_old"], runs["slower10"])[0] == 1  # a 10% slowdown shows anyway


def test_change_range_excludes_zero_exactly_when_the_intervals_separate(runs):
    for name in ("same", "slower10", "slower_half_pct", "faster"):
        cmp = compare.compare_runs(load_run(runs[name]), load_run(runs["base"]))
        separate = (cmp["time_ms_low_new"] > cmp["time_ms_high_base"]) | (cmp["time_ms_high_new"] <
                                                                          cmp["time_ms_low_base"])
        excludes_zero = (cmp["change_low_pct"] > 0) | (cmp["change_high_pct"] < 0)
        assert (separate == excludes_zero).all()
        assert ((cmp["change_low_pct"] <= cmp["time_change_pct"]) &
                (cmp["time_change_pct"] <= cmp["change_high_pct"])).all()


def test_formats(runs, capsys):
    code, out, _ = _compare(capsys, runs["base"], runs["slower10"], "--format", "json")
    rows = json.loads(out)
    assert code == 1 and {r["verdict"] for r in rows} == {"regression"} and len(rows) == 22
    assert {"time_ms_low_base", "time_ms_high_new", "change_low_pct", "threshold_pct"} <= set(rows[0])
    code, out, _ = _compare(capsys, runs["base"], runs["slower10"], "--format", "csv")
    assert list(pd.read_csv(StringIO(out)).columns) == compare.COMPARE_COLUMNS
    code, out, _ = _compare(capsys, runs["base"], runs["slower10"], "--format", "md")
    assert out.startswith("| config | impl | baseline ms | baseline interval |") and "| regression |" in out


def test_a_case_missing_from_one_run_is_not_comparable_and_does_not_fail(runs, tmp_path, capsys):
    partial = make_run(tmp_path, "partial")
    run = load_run(partial)
    t = run.table("timings")
    w = RunWriter(partial, resume=True)
    w.append("timings", t[t["impl"] == "stage5_full"].assign(status="wrong", time_ms=math.nan).drop(columns="run_id"))
    w.finish("complete")
    code, _, err = _compare(capsys, runs["base_old"], partial)
    assert code == 0 and "not comparable" in err
    assert "stage5_full at B16-H16-S2048-D64-causal-fp16 was timed in the baseline but is wrong" in err


def test_bad_input_exits_2(runs, tmp_path, capsys):
    code, _, err = _compare(capsys, runs["base"], tmp_path / "missing")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    code, _, err = _compare(capsys, broken, runs["base"])
    assert code == 2 and "corrupt" in err
    torn = make_run(tmp_path, "torn")
    next((torn / "tables" / "timings").glob("part-*.parquet")).write_bytes(b"not parquet")
    code, _, err = _compare(capsys, runs["base"], torn)
    assert code == 2 and "corrupt" in err and "Traceback" not in err
    code, _, err = _compare(capsys, runs["base"], runs["same"], "--threshold-pct", "-1")
    assert code == 2 and "--threshold-pct" in err


def test_help_names_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    assert "perfmodel compare runs/main runs/pr-123" in text and "exit status:" in text


def test_speedup_intervals_from_samples_and_without_timings(runs):
    run = load_run(runs["base"])
    sampled = compare.with_speedup_intervals(batching_table(run), run)
    # B=1 is 1x by definition: no interval (a bar there read as noise in a figure that is not measured)
    ones = sampled[sampled["B"] == 1]
    assert len(ones) and (ones["speedup_vs_b1"] == 1).all() and ones["speedup_low"].isna().all()
    assert ones["speedup_interval"].isna().all()
    b = sampled[sampled["B"] > 1]
    assert (b["speedup_interval"] == compare.CI_LABEL).all()
    assert ((b["speedup_low"] < b["speedup_vs_b1"] * 1.001) & (b["speedup_vs_b1"] * 0.999 < b["speedup_high"])).all()
    old_run = load_run(runs["base_old"])
    old = compare.with_speedup_intervals(batching_table(old_run), old_run)
    # the old synthetic run has no timings rows for its batching configs: no interval rather than an invented one
    assert old["speedup_low"].isna().all() and old["speedup_interval"].isna().all()


def test_speedup_intervals_from_p20_p80_when_no_samples(tmp_path):
    from synthetic_run import timing_row

    run_dir = make_run(tmp_path, "old-with-batching-timings")
    run = load_run(run_dir)
    w = RunWriter(run_dir, resume=True)
    w.append("timings", [timing_row(r["impl"], config_of(r), r["time_ms"]) for r in
                         run.table("batching").to_dict("records")])
    w.finish("complete")
    run = load_run(run_dir)
    out = compare.with_speedup_intervals(batching_table(run), run)
    b = out[out["B"] == 32].iloc[0]
    # B * p20(B=1) / p80(B) .. B * p80(B=1) / p20(B), each time's p20–p80 being +-0.5%: speedup x 0.995/1.005..
    assert b["speedup_interval"] == compare.PCT_LABEL
    assert b["speedup_low"] == pytest.approx(b["speedup_vs_b1"] * 0.995 / 1.005)
    assert b["speedup_high"] == pytest.approx(b["speedup_vs_b1"] * 1.005 / 0.995)


# ---- what two runs can be judged by: one GPU model, and which kernel code each measured --------------------------
def _relabel(src, dest, gpu=None, kernels_hash=None):
    """A copy of the run folder `src` as measured on `gpu` and/or with kernel code `kernels_hash`."""
    import shutil

    shutil.copytree(src, dest)
    meta = json.loads((dest / "run.json").read_text())
    env = meta.setdefault("environment", {})
    env.update({k: v for k, v in (("gpu_name", gpu), ("kernels_hash", kernels_hash)) if v is not None})
    (dest / "run.json").write_text(json.dumps(meta))
    return dest


def test_runs_of_different_gpus_get_no_verdict_and_exit_3(runs, tmp_path, capsys):
    # a 10% slowdown measured on another GPU model is the hardware's as much as the code's: neither a regression
    # (exit 1) nor a pass (exit 0), and one sentence says why (issue 21 item 7: H100 vs H200 read "-42% improvement")
    other = _relabel(runs["slower10"], tmp_path / "on-h200", gpu="NVIDIA H200")
    cmp = compare.compare_runs(load_run(other), load_run(runs["base"]))
    timed = cmp[cmp["verdict"] != "not comparable"]
    assert len(timed) == 22 and set(timed["verdict"]) == {compare.OTHER_GPU}
    assert compare.regressions(cmp).empty and timed["time_change_pct"].notna().all()  # the change is still shown
    code, out, err = _compare(capsys, runs["base"], other)
    assert code == 3 and "regression:" not in err
    assert "The runs were measured on different GPUs (NVIDIA H100 80GB HBM3 for base, NVIDIA H200 for slower10)" in err
    assert "no case is called a regression or an improvement" in err
    code, _, err = _compare(capsys, runs["base"], other, "--agreement")
    assert code == 3 and "different GPUs" in err
    assert _compare(capsys, runs["base"], runs["slower10"])[0] == 1  # one GPU model: judged as before


def test_the_kernel_code_of_both_runs_is_named(runs, tmp_path, capsys):
    a = _relabel(runs["base"], tmp_path / "a", kernels_hash="aaaaaaaaaaaa")
    b = _relabel(runs["same"], tmp_path / "b", kernels_hash="aaaaaaaaaaaa")
    c = _relabel(runs["slower10"], tmp_path / "c", kernels_hash="cccccccccccc")
    assert _compare(capsys, a, b)[2].count("Both runs measured the same kernel code (kernels/ hash aaaaaaaaaaaa)") == 1
    code, _, err = _compare(capsys, a, c)
    assert code == 1 and "different kernel code (kernels/ hash aaaaaaaaaaaa in base, cccccccccccc in slower10)" in err
    assert "Run base does not record the kernel code it measured" in _compare(capsys, runs["base"], a)[2]


def test_bundled_runs_by_id_h100_against_h200(capsys):
    from perfmodel.runs import bundled_run_dirs

    ids = {d.name for d in bundled_run_dirs()}
    h100, h200 = "20261124-173318-custom-nvidia-h100-80gb-hbm3", "20261202-053909-seed-nvidia-h200"
    assert {h100, h200} <= ids
    code, out, err = _compare(capsys, h100, h200)  # ids name the bundled runs, as in report, gates and dashboard
    assert code == 3 and "improvement" not in out and "different GPU" in out
    assert "different kernel code (kernels/ hash 60cd5aa3508c in " + h100 in err


def test_runs_timed_by_different_methods_say_so(tmp_path):
    # issue 23: a run of schema version 1 timed by the host loop against one timed by CUDA graph
    from perfmodel.reports.compare import premise
    from perfmodel.runs import load_run
    from synthetic_run import make_run

    old = load_run(make_run(tmp_path, name="synthetic-old"))
    new_dir = make_run(tmp_path, name="synthetic-new")
    t = pd.read_parquet(new_dir / "tables" / "timings")
    part = next((new_dir / "tables" / "timings").glob("*.parquet"))
    t.assign(timing_method="cuda_graph").to_parquet(part, index=False)
    why = premise(load_run(new_dir), old)
    assert why.methods_base == ("host_loop",) and why.methods_new == ("cuda_graph",)
    assert "timed their cases differently (the host loop in synthetic-old, the GPU's time by CUDA graph in " \
           "synthetic-new)" in why.methods_line()
    assert premise(old, old).methods_line() == ""
