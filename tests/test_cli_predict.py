"""`perfmodel predict`, `perfmodel model check|show` through main(argv): output, formats, and bad inputs."""

import io
import json

import pandas as pd
import pytest

from perfmodel.cli import main
from perfmodel.plan.einstein_file import default_model_path
from perfmodel.plan.predictions import COLUMNS


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_predict_table(capsys):
    rc, out, err = _run(capsys, "predict", "--config", "B=16,H=16,S=2048,D=64,causal", "--gpu", "h100-sxm")
    assert rc == 0 and err == ""
    assert "B16-H16-S2048-D64-causal-fp16" in out and "roofline 989 TFLOP/s" in out
    for impl in ("stage0_baseline", "stage5_full"):
        assert impl in out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "needs --baseline-tflops" in out


def test_predict_relative_with_baseline(capsys):
    rc, out, _ = _run(capsys, "predict", "--baseline-tflops", "100")
    assert rc == 0 and "102-103" in out  # stage 2: 100 x (1.02..1.03)


def test_predict_csv_and_json(capsys):
    rc, out, _ = _run(capsys, "predict", "--suite", "batching", "--format", "csv", "--gpu", "NVIDIA H100 80GB HBM3")
    assert rc == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["config_id", "gpu", *COLUMNS]
    assert len(frame) == 18 and set(frame["gpu"]) == {"h100-sxm"}
    rc, out, _ = _run(capsys, "predict", "--config", "B=2,H=8,S=1024,D=128,dtype=bf16", "--format", "json",
                      "--gpu", "h200-sxm", "--baseline-tflops", "300")
    records = json.loads(out)
    assert rc == 0 and len(records) == 6 and records[0]["einstein_rel_low_tflops"] == 300.0
    assert records[1]["einstein_abs_low_tflops"] is None  # "Any" -> no target


def test_model_check(capsys):
    rc, out, err = _run(capsys, "model", "check")
    assert rc == 0 and err == ""
    assert "ERROR" in out and "stage 0->2" in out and "371" in out
    assert max(len(line) for line in out.splitlines()) <= 120
    rc, out, _ = _run(capsys, "model", "check", "--format", "json", "--config", "B=8,H=16,S=2048,D=128,causal")
    rows = json.loads(out)
    assert rc == 0 and {r["kind"] for r in rows} == {"internal", "physics", "evidence"}


def test_model_show(capsys):
    rc, out, _ = _run(capsys, "model", "show")
    assert rc == 0 and "stage3_batching" in out and "Kernel Launch Overhead" in out
    rc, out, _ = _run(capsys, "model", "show", "--format", "json")
    assert rc == 0 and len(json.loads(out)["stages"]) == 6


def _bad_model(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(default_model_path().read_text(encoding="utf-8").replace("removes = [3]", "removes = [9]"),
                    encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--config", "B=0,H=16,S=2048,D=64"],
        ["predict", "--config", "B=16,H=16,S=2048"],
        ["predict", "--config", ""],  # an empty config is refused, never read as the seed config
        ["predict", "--config", " "],
        ["predict", "--suite", ""],
        ["predict", "--config", "B=1,H=16,S=12000000,D=64"],  # its tensors cannot fit the H100's memory
        ["predict", "--gpu", "tpu-v5"],
        ["predict", "--baseline-tflops", "fast"],
        ["predict", "--baseline-tflops", "-5"],
        ["predict", "--suite", "nope"],
        ["predict", "--model", "/nonexistent/model.toml"],
        ["predict", "--model", "BAD_MODEL"],
        ["model", "check", "--model", "BAD_MODEL"],
        ["model", "check", "--config", "B=1,H=1,S=1,D=9999"],
        ["model", "show", "--model", "/nonexistent/model.toml"],
        ["model"],
    ],
)
def test_bad_inputs_exit_nonzero_with_one_line(capsys, tmp_path, argv):
    argv = [_bad_model(tmp_path) if a == "BAD_MODEL" else a for a in argv]
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfmodel: error: ") and lines[0].endswith(".")
    assert "Traceback" not in err + out


def test_help_teaches(capsys):
    for argv in (["predict", "--help"], ["model", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "perfmodel " in out


# ---- configs a GPU cannot hold -------------------------------------------------------------------------------------
def test_a_config_the_gpu_cannot_hold_is_refused_with_what_it_needs(capsys):
    """Q, K, V and O of B1 H16 S12M D64 fp16 are 98.3e9 bytes: more than the 79.2 GiB the H100 80GB gives programs
    (kernels/hardware.py), less than the H200's 139.8; collect's own check decides (collectors/sweep/preflight.py)."""
    rc, out, err = _run(capsys, "predict", "--config", "B=1,H=16,S=12000000,D=64", "--gpu", "h100-sxm")
    assert rc == 2 and out == ""
    assert err.startswith("perfmodel: error: config B1-H16-S12000000-D64-full-fp16 cannot run on NVIDIA H100 SXM5")
    assert "need 91.6 GiB (98,304,000,000 bytes), more than the GPU's 79.2 GiB of memory" in err
    assert "no time to predict" in err and err.count("\n") == 1
    rc, out, err = _run(capsys, "predict", "--config", "B=1,H=16,S=12000000,D=64", "--gpu", "h200-sxm")
    assert rc == 0 and err == "" and "B1-H16-S12000000-D64-full-fp16 on NVIDIA H200" in out


def test_tensors_that_fit_are_predicted_though_collect_refuses_the_case(capsys):
    """B1 H16 S10M D64's Q, K, V and O (81.9e9 bytes, 76.3 GiB) fit the H100's 79.2 GiB: the kernel can run there,
    so it is predicted; `perfmodel collect` refuses it for what its case adds (a second input set and the float64
    reference), not for the kernel."""
    from collectors.timing.memory import memory_problem
    from kernels.hardware import GPUS
    from perfmodel.strict import parse_config

    config = parse_config("B=1,H=16,S=10000000,D=64")
    assert memory_problem([config], GPUS["h100-sxm"].memory_bytes) is not None
    rc, out, err = _run(capsys, "predict", "--config", "B=1,H=16,S=10000000,D=64", "--gpu", "h100-sxm")
    assert rc == 0 and err == "" and "B1-H16-S10000000-D64-full-fp16 on NVIDIA H100 SXM5 80GB" in out


def _small_h100(monkeypatch, memory_gib):
    import dataclasses

    import kernels.hardware

    small = dataclasses.replace(kernels.hardware.GPUS["h100-sxm"], memory_gib=memory_gib)
    monkeypatch.setattr(kernels.hardware, "get_gpu", lambda name: small)


def test_a_suite_leaves_out_the_configs_the_gpu_cannot_hold_and_says_which(capsys, monkeypatch):
    # batching is B = 1, 8, 32 at H16 S2048 D64: the B32 configs' tensors are 0.5 GiB, the B8 ones 0.125
    _small_h100(monkeypatch, 0.3)
    rc, out, err = _run(capsys, "predict", "--suite", "batching", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert rc == 0 and set(frame["config_id"].str.split("-").str[0]) == {"B1", "B8"}
    kept = set(frame["config_id"])
    assert err.startswith("perfmodel: warning: left out B32-H16-S2048-D64-") and err.count("\n") == 1
    assert "more than the 0.3 GiB of memory" in err and not any(c in err for c in kept)
    _small_h100(monkeypatch, 0.01)  # none fits: refused, as a single config is
    rc, out, err = _run(capsys, "predict", "--suite", "batching")
    assert rc == 2 and out == "" and "nor can the other" in err and err.startswith("perfmodel: error: ")
