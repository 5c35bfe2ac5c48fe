"""`perfmodel predict`, `perfmodel model check|show` through main(argv): output, formats, and bad inputs."""

import io
import json

import pandas as pd
import pytest

from perfmodel.cli import main
from perfmodel.einstein import default_model_path
from perfmodel.predictions import COLUMNS


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
