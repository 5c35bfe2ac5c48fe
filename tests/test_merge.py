"""`perfmodel merge` on the CPU: two interpreted shards of the tiny suite merged equal one unsharded collection case
by case (every table but the wall times, configs, order), only the provenance differs; every refusal is one
sentence and exit 2; a missing shard needs --allow-partial; a shard given twice keeps the newest measurement."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from runstore.reader import load_run
from interpreted_runs import ARGS, comparable, only_run
from perfmodel.cli import main

pytestmark = pytest.mark.interpreter


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    shards = []
    for i in (1, 2):
        assert main([*ARGS, "--shard", f"{i}/2", "--out", str(root / f"s{i}")]) == 0
        shards.append(only_run(root / f"s{i}"))
    assert main([*ARGS, "--out", str(root / "full")]) == 0
    assert main(["merge", *map(str, shards), "--out", str(root / "merged")]) == 0
    return {"root": root, "shards": shards, "full": only_run(root / "full"), "merged": root / "merged"}


def test_two_shards_merged_equal_one_unsharded_run(collected):
    merged, full = load_run(collected["merged"]), load_run(collected["full"])
    assert merged.status == "complete" and set(merged.tables()) == set(full.tables())
    for table in full.tables():  # correctness, census, cases, timings, predictions, ceilings, ...
        pd.testing.assert_frame_equal(comparable(merged, table), comparable(full, table), check_dtype=False,
                                      obj=table)
    assert merged.meta["configs"] == full.meta["configs"] and merged.meta["suite"] == full.meta["suite"] == "tiny"
    assert [i["name"] for i in merged.meta["impls"]] == [i["name"] for i in full.meta["impls"]]
    assert merged.meta["mode"] == full.meta["mode"] and merged.meta["options"]["stages"] == "stage0_baseline"
    # the provenance is what differs
    assert "merged_from" not in full.meta and "shard" not in full.meta and "shard" not in merged.meta
    assert [m["shard"] for m in merged.meta["merged_from"]] == ["1/2", "2/2"]
    assert merged.meta["merge"]["complete"] and merged.meta["merge"]["missing"] == []
    assert sorted(c for m in merged.meta["merged_from"] for c in m["configs"]) == \
        sorted(c["config_id"] for c in full.meta["configs"])
    assert all((collected["merged"] / "shards" / s.name / "shard.json").is_file() for s in collected["shards"])


def test_each_shard_records_its_part_and_how_it_was_balanced(collected):
    a, b = (load_run(p).meta["shard"] for p in collected["shards"])
    assert (a["index"], b["index"], a["count"]) == (1, 2, 2) and a["plan_id"] == b["plan_id"]
    assert not set(a["configs"]) & set(b["configs"]) and a["suite_configs"] == b["suite_configs"]
    assert set(a["configs"]) | set(b["configs"]) == set(a["suite_configs"])
    assert {case.split()[0] for case in a["balanced_by"]["flops"]} == {"sdpa_cudnn"}  # peers: by FLOPs
    assert {case.split()[0] for case in a["balanced_by"]["model"]} == {"stage0_baseline"}
    assert load_run(collected["shards"][0]).meta["configs"] == \
        [c for c in load_run(collected["full"]).meta["configs"] if c["config_id"] in a["configs"]]


def test_report_and_gates_read_the_merged_run(collected, capsys):
    from perfmodel.reports.reporting import build_report

    assert "stage0_baseline" in build_report(load_run(collected["merged"]), fmt="md")
    assert main(["gates", str(collected["merged"])]) in (1, 3)  # an --interpret run never passes the gates
    assert main(["compare", str(collected["full"]), str(collected["merged"]), "--agreement"]) == 0


def edited_copy(collected, name, edit, which=1):
    """A copy of shard `which` with its run.json changed by `edit(meta)`."""
    dest = collected["root"] / name
    if not dest.exists():
        shutil.copytree(collected["shards"][which], dest)
        meta = json.loads((dest / "run.json").read_text())
        edit(meta)
        (dest / "run.json").write_text(json.dumps(meta))
    return dest


def refuse(capsys, *args):
    code = main(["merge", *map(str, args)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("perfmodel: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("name, edit, says", [
    ("gpu", lambda m: m["environment"].update(gpu_name="NVIDIA H100 80GB HBM3"), "different GPU models"),
    ("suite", lambda m: m.update(suite="seed"), "different suites"),
    ("options", lambda m: m["options"].update(ablation=False), "different options"),
    ("commit", lambda m: m["environment"].update(git_commit="0123abc"), "different code"),
    ("package", lambda m: m["shard"].update(package_version="9.9"), "different code"),
    ("count", lambda m: m["shard"].update(count=3), "different splits"),
    ("plan", lambda m: m["shard"].update(plan_id="elsewhere"), "different splits"),
])
def test_mixed_shards_are_refused_naming_the_difference(collected, capsys, name, edit, says):
    err = refuse(capsys, collected["shards"][0], edited_copy(collected, name, edit))
    assert says in err and str(collected["shards"][0]) in err


def test_what_is_not_a_shard_is_refused(collected, capsys, tmp_path):
    assert "not a run folder" in refuse(capsys, tmp_path)
    assert "collected without --shard" in refuse(capsys, collected["full"], collected["shards"][0])
    assert "already a merged run" in refuse(capsys, collected["merged"])
    assert "does not exist" in refuse(capsys, tmp_path / "nothing")
    corrupt = edited_copy(collected, "corrupt", lambda m: None)
    (corrupt / "run.json").write_text("{not json")
    assert "is corrupt" in refuse(capsys, corrupt)
    stopped = edited_copy(collected, "stopped", lambda m: m.update(status="interrupted"))
    assert "stopped before it finished" in refuse(capsys, collected["shards"][0], stopped)
    assert "is given twice" in refuse(capsys, collected["shards"][0], collected["shards"][0])
    out = collected["root"] / "merged"
    assert "not empty" in refuse(capsys, *collected["shards"], "--out", out)


def test_a_missing_shard_needs_allow_partial(collected, capsys):
    err = refuse(capsys, collected["shards"][0])
    assert "shard 2 of 2 is missing" in err and "--allow-partial" in err
    out = collected["root"] / "partial"
    assert main(["merge", str(collected["shards"][0]), "--out", str(out), "--allow-partial"]) == 1
    assert "missing" in capsys.readouterr().err
    run = load_run(out)
    assert run.status == "partial" and run.meta["merge"]["missing"] == [2] and not run.meta["merge"]["complete"]
    assert set(run.table("cases")["config_id"]) == set(load_run(collected["shards"][0]).meta["shard"]["configs"])


def test_a_shard_given_twice_keeps_the_newest_measurement(collected, capsys):
    again = edited_copy(collected, "again", lambda m: m.update(run_id="again", created="2099-01-01T00:00:00"), 0)
    cases = load_run(again).table("cases")
    # the re-run measured its first case later, and got another error budget for it
    part = next((again / "tables" / "correctness").glob("part-*.parquet"))
    df = pd.read_parquet(part)
    df.loc[0, "budget_abs_err"] = 123.0
    df.to_parquet(part)
    part = next((again / "tables" / "cases").glob("part-*.parquet"))
    c = pd.read_parquet(part)
    c.loc[0, "finished"] = "2099-01-01T00:00:00+0000"
    c.to_parquet(part)
    out = collected["root"] / "twice"
    assert main(["merge", *map(str, collected["shards"]), str(again), "--out", str(out)]) == 0
    assert "is given 2 times" in capsys.readouterr().err
    corr = load_run(out).table("correctness")
    key = (corr["impl"] == cases.loc[0, "impl"]) & (corr["config_id"] == cases.loc[0, "config_id"])
    assert corr.loc[key, "budget_abs_err"].tolist() == [123.0]  # the newest, once
    assert len(corr) == len(load_run(collected["full"]).table("correctness"))


def test_ceilings_are_kept_per_gpu_and_read_as_their_median(tmp_path):
    """Two shards on two GPUs: both GPUs' ceilings are kept; one value per name is the median over them."""
    from collectors.sweep.merge import ceiling_values, merged_tables
    from runstore.writer import RunWriter

    runs = []
    for k, (uuid, tflops) in enumerate((("GPU-a", 600.0), ("GPU-b", 700.0))):
        w = RunWriter(tmp_path / uuid, {})
        w.append("ceilings", [{"name": "fp16_mma_tflops", "value": tflops, "unit": "TFLOP/s", "how": "matmul",
                               "status": "ok", "device_index": k, "gpu_uuid": uuid}])
        w.finish("complete")
        runs.append(load_run(w.path))
    c = merged_tables(runs + runs[1:], [], [])["ceilings"]  # GPU-b's shard given twice: its set once
    assert sorted(c["gpu_uuid"]) == ["GPU-a", "GPU-b"]
    assert ceiling_values(c) == {"fp16_mma_tflops": 650.0}
