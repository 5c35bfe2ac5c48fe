"""`perfmodel bench` on a machine without a GPU: argument validation, the no-GPU sentence, and the pieces of
collectors.timing.bench that need no GPU (the chunked reference check, the table, progress)."""

from __future__ import annotations

import io
import math

import pytest
import torch

from collectors.timing import bench
from collectors.timing.measure import Timing
from kernels.reference import attention_reference, compare, make_inputs
from kernels.registry import Impl
from kernels.workload import AttentionConfig
from perfmodel.cli import main

HAS_CUDA = torch.cuda.is_available()
cpu_only = pytest.mark.skipif(HAS_CUDA, reason="checks the no-GPU path")


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["bench", *argv])
    return code, capsys.readouterr().err


# ---- the command line -------------------------------------------------------------------------------------
@cpu_only
def test_no_gpu_is_one_clear_sentence(capsys):
    code, err = run_cli(capsys)
    assert code == 2
    assert "needs an NVIDIA GPU" in err and "perfmodel collect --interpret" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--stages", "stage9_magic"], "unknown stage"),
    (["--refs", "fa4"], "unknown peer"),
    (["--stages", "none", "--refs", "none"], "nothing to benchmark"),
    (["--stages", ""], "names no stage"),  # an empty list given is refused, never read as "all"
    (["--refs", " , "], "names no peer"),
    (["--config", ""], "empty config"),
    (["--config", "B=16,H=16,S=2048"], "missing D"),
    (["--config", "B=0,H=1,S=1,D=64"], "at least 1"),
    (["--config", "B=1,H=1,S=64,D=64,dtype=fp32"], "fp16, bf16 and fp8"),
    (["--csv", "/no/such/folder/out.csv"], "does not exist"),
    (["--rep-ms", "0"], "--rep-ms"),
], ids=["stage", "peer", "empty", "stages-blank", "refs-blank", "config-blank", "config-missing", "config-zero",
        "fp32", "csv-folder", "rep-ms"])
def test_bad_arguments_exit_2_with_reason(capsys, argv, message):
    code, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--suite", "nope"], ["--dtype", "fp64"]])
def test_argparse_rejects_choices(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "--suite" in out and "examples:" in out and "perfmodel bench --suite fa3-grid" in out


# ---- implementations --------------------------------------------------------------------------------------
def test_resolve_order_and_filters():
    all_impls = bench.resolve("all", "all")
    names = [i.name for i in all_impls]
    assert names[:len(bench.stage_names())] == bench.stage_names()
    assert names[len(bench.stage_names()):] == bench.peer_names()
    picked = bench.resolve("stage1_warpspec,stage0_baseline", "sdpa_cudnn")
    assert [i.name for i in picked] == ["stage0_baseline", "stage1_warpspec", "sdpa_cudnn"]  # registry order
    assert [i.kind for i in picked] == ["stage", "stage", "peer"]
    assert bench.resolve("none", "none") == []
    with pytest.raises(ValueError, match="unknown stage"):
        bench.resolve("stage0", "none")


def test_unavailable_peer_is_reported_not_skipped():
    impl = Impl("fa3", "peer", lambda *a, **k: None, "test", why_unavailable=lambda: "not installed")
    result = bench.bench_case(impl, AttentionConfig(1, 1, 64, 64, causal=True))
    assert result.status == "unavailable" and result.error == "not installed" and result.timing is None
    assert result.timing_row()["status"] == "unavailable" and math.isnan(result.timing_row()["time_ms"])


# ---- the chunked reference check --------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_chunked_check_equals_whole_tensor_compare(causal):
    # B=2, H=3, S=33: a chunk budget of one head's scores forces one chunk per (b, h); the combined maxima and
    # norms must equal kernels.reference.compare on the whole tensor.
    q, k, v = make_inputs(2, 3, 33, 64, torch.float16, seed=1)
    out = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal).half()
    whole = compare(out, q, k, v, causal)
    chunked = bench.check_output(out, q, k, v, causal, chunk_bytes=33 * 33 * 8)
    assert chunked.max_abs_err == pytest.approx(whole.max_abs_err)
    assert chunked.max_rel_err == pytest.approx(whole.max_rel_err)
    assert chunked.rel_l2_err == pytest.approx(whole.rel_l2_err)
    assert chunked.budget_abs_err == pytest.approx(whole.budget_abs_err)
    assert chunked.within_budget == whole.within_budget
    assert chunked.doc_allclose == whole.passes_doc_allclose(out, attention_reference(q, k, v, causal))


def test_check_flags_wrong_and_nonfinite():
    q, k, v = make_inputs(1, 2, 17, 64, torch.float16, seed=2)
    wrong = torch.zeros_like(q)
    assert not bench.check_output(wrong, q, k, v, True).within_budget
    nan = torch.full_like(q, float("nan"))
    c = bench.check_output(nan, q, k, v, True)
    assert not c.finite and not c.within_budget and not c.doc_max_err_ok and math.isinf(c.max_abs_err)


# ---- the table and progress -------------------------------------------------------------------------------
def test_bench_table_ratio_and_environment_on_every_row():
    cfg = AttentionConfig(16, 16, 2048, 64, causal=True)
    other = cfg.with_(B=8)
    corr = bench.Correctness(1e-3, 1e-3, 1e-4, 2e-3, True, True)
    results = [
        bench.CaseResult("sdpa_cudnn", cfg, "ok", correctness=corr, timing=Timing.from_samples([0.4, 0.4])),
        bench.CaseResult("stage0_baseline", cfg, "ok", correctness=corr, timing=Timing.from_samples([0.5, 0.5])),
        bench.CaseResult("stage1_warpspec", cfg, "wrong", error="too far", correctness=corr),
        bench.CaseResult("stage0_baseline", other, "ok", correctness=corr, timing=Timing.from_samples([0.3])),
    ]
    env = {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.x", "triton": "3.6.0", "cudnn": "91900", "cuda": "13.0",
           "date": "2026-11-24T00:00:00+00:00"}
    table = bench.bench_table(results, env, kinds={"sdpa_cudnn": "peer"})
    assert list(table.columns) == bench.BENCH_COLUMNS
    assert (table["gpu"] == env["gpu"]).all() and (table["date"] == env["date"]).all()
    by = table.set_index(["impl", "config_id"])
    assert by.loc[("stage0_baseline", cfg.id), "vs_cudnn"] == pytest.approx(0.4 / 0.5)
    assert by.loc[("sdpa_cudnn", cfg.id), "vs_cudnn"] == pytest.approx(1.0)
    assert math.isnan(by.loc[("stage1_warpspec", cfg.id), "time_ms"])
    assert math.isnan(by.loc[("stage0_baseline", other.id), "vs_cudnn"])  # no cuDNN at that config
    assert by.loc[("stage0_baseline", cfg.id), "tflops"] == pytest.approx(cfg.tflops_at(0.5))


def test_progress_prints_eta():
    stream = io.StringIO()
    p = bench.Progress(3, stream=stream)
    p.step("a")
    p.step("b")
    p.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[1/3] a") and "ETA --:--" in lines[0]
    assert lines[1].startswith("[2/3] b") and "ETA 0:0" in lines[1]
    assert lines[-1].startswith("done: 2 cases")


# ---- on a GPU ---------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_bench_writes_csv_on_gpu(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    code = main(["bench", "--config", "B=2,H=4,S=257,D=64,causal", "--stages", "stage0_baseline",
                 "--refs", "sdpa_cudnn,fa3", "--rep-ms", "10", "--warmup-ms", "2", "--csv", str(out)])
    assert code == 0
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.columns) == bench.BENCH_COLUMNS and table["gpu"].notna().all()
    stage = table[table["impl"] == "stage0_baseline"].iloc[0]
    assert stage["status"] == "ok" and stage["tflops"] > 0
    fa3 = table[table["impl"] == "fa3"].iloc[0]
    assert fa3["status"] in ("ok", "unavailable")
