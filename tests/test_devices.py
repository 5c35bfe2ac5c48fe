"""`perfmodel collect --devices` with stand-in GPUs on the CPU: nvidia-smi's list is replaced (two H200s), the
workers are real child processes run with --interpret (each with its own CUDA_VISIBLE_DEVICES), and the one run
folder they leave must load like an unsharded collection; an interrupted worker is resumed by `--resume`; every
bad --devices is one sentence and exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import collectors.sweep.devices as devices
from runstore.reader import load_run
from interpreted_runs import ARGS, comparable, only_run
from perfmodel.cli import main

pytestmark = pytest.mark.interpreter

TWO_H200 = [devices.Gpu(0, "NVIDIA H200", "GPU-aaaa"), devices.Gpu(1, "NVIDIA H200", "GPU-bbbb")]


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    mp = pytest.MonkeyPatch()
    mp.setattr(devices, "list_gpus", lambda: TWO_H200)
    seen = []
    popen = devices._popen
    mp.setattr(devices, "_popen", lambda argv, env, log: seen.append(env["CUDA_VISIBLE_DEVICES"]) or
               popen(argv, env, log))
    try:
        assert main([*ARGS, "--devices", "all", "--out", str(root / "dev")]) == 0
    finally:
        mp.undo()
    assert main([*ARGS, "--out", str(root / "full")]) == 0
    return {"root": root, "dev": only_run(root / "dev"), "full": only_run(root / "full"), "visible": seen}


def test_one_folder_that_loads_like_an_unsharded_run(collected):
    dev, full = load_run(collected["dev"]), load_run(collected["full"])
    assert dev.status == "complete" and set(dev.tables()) == set(full.tables())
    for table in full.tables():
        pd.testing.assert_frame_equal(comparable(dev, table), comparable(full, table), check_dtype=False, obj=table)
    assert dev.meta["configs"] == full.meta["configs"] and dev.meta["suite"] == full.meta["suite"]
    workers = dev.meta["devices"]["workers"]
    assert [w["device_index"] for w in workers] == [0, 1] and sorted(collected["visible"]) == ["0", "1"]
    assert dev.meta["options"]["devices"] == "all" and len(dev.meta["merged_from"]) == 2
    for w in workers:  # each worker's own shard run, inside the run folder
        shard = load_run(collected["dev"] / w["folder"])
        assert shard.status == "complete" and shard.meta["shard"]["index"] == int(w["shard"][0])
        assert shard.environment["cuda_visible_devices"] == str(w["device_index"])
    assert (collected["dev"] / "shards" / "plan.json").is_file()


def test_resume_finishes_a_worker_that_was_cut_off(collected, tmp_path):
    import shutil

    run = tmp_path / "cut"
    shutil.copytree(collected["dev"], run)
    w = load_run(run).meta["devices"]["workers"][1]
    folder = run / w["folder"]
    # worker 2 stopped before its census: no census part, its run interrupted, the merged run too
    shutil.rmtree(folder / "tables" / "census")
    for path, status in ((folder / "run.json", "interrupted"), (run / "run.json", "interrupted")):
        meta = json.loads(path.read_text())
        meta["status"] = status
        path.write_text(json.dumps(meta))
    assert main(["collect", "--resume", str(run)]) == 0
    again, full = load_run(run), load_run(collected["full"])
    assert again.status == "complete" and load_run(folder).meta["resumes"]
    pd.testing.assert_frame_equal(comparable(again, "census"), comparable(full, "census"), check_dtype=False)
    assert len(list((run / "tables" / "census").glob("part-*.parquet"))) == 1  # the old merge replaced


def bad(capsys, monkeypatch, gpus, text):
    monkeypatch.setattr(devices, "list_gpus", lambda: gpus)
    code = main([*ARGS, f"--devices={text}", "--out", "/nonexistent/never-created"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("perfmodel: error: ") and err.count("\n") == 1, err
    return err


def test_no_gpu_is_one_sentence(capsys, monkeypatch):
    assert "nvidia-smi lists none" in bad(capsys, monkeypatch, [], "all")


@pytest.mark.parametrize("text, says", [("2", "has no GPU 2"), ("0,0", "names a GPU twice"), ("x", "takes all or"),
                                        ("", "takes all or"), ("0,1", "mixes GPU models")])
def test_bad_devices(capsys, monkeypatch, text, says):
    gpus = TWO_H200 if text != "0,1" else [TWO_H200[0], devices.Gpu(1, "NVIDIA A100-SXM4-80GB", "GPU-c")]
    assert says in bad(capsys, monkeypatch, gpus, text)


def test_aggregate_progress_adds_the_workers_up(tmp_path):
    import io

    from collectors.sweep.progress import Aggregate

    files = [tmp_path / "a.json", tmp_path / "b.json"]
    out = io.StringIO()
    bar = Aggregate(files, ["gpu0", "gpu1"], stream=out)
    files[0].write_text(json.dumps({"done": 2, "total": 5, "label": "stage0 x"}))
    files[1].write_text(json.dumps({"done": 1, "total": 3, "label": "census y"}))
    bar.update()
    assert "[3/8] gpu0: stage0 x | gpu1: census y" in out.getvalue() and "ETA" in out.getvalue()
