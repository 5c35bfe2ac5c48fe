"""The README's "Measure your own kernel" path as a new user walks it with a kernel file from outside the project
(Triton's fused-attention tutorial behind the README's adapter; here the small stand-ins of tests/user_kernels/):
the adapter imports its neighbour, a failing kernel says why and fails the command, the causes the tutorial meets
on a CPU are named in one sentence each with their fix, an autograd Function's `apply` is refused with the adapter,
a failed census keeps the line that says what failed, and Ctrl-C names the command that resumes the run."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

import perfmodel
from kernels import importable, lookup, registry, user_kernels
from perfmodel.cli import main
from runstore.reader import load_run

# collect --interpret runs the kernels in its own interpreter child process and compiles the census for sm_90 in
# this one with the GPU copy of triton, so these tests are not marked `interpreter` (as tests/test_registry.py)

KERNELS = Path(__file__).resolve().parent / "user_kernels"
CONFIG = "B=1,H=2,S=40,D=64,causal"  # H != S, so a [B, S, H, D] output is told apart from [B, H, S, D]
CASE = "B1-H2-S40-D64-causal-fp16"
BAD = ["raises", "returns_none", "returns_tuple", "returns_fp32", "returns_bshd", "wrong_values"]


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


needs_no_gpu = pytest.mark.skipif("not _no_gpu()", reason="these causes are what a machine without a GPU meets")


@pytest.fixture
def fresh(monkeypatch):
    """No user implementation registered before the test, nothing it adds to sys.path or the environment left
    after it."""
    monkeypatch.setenv(user_kernels.ENV_VAR, "")
    monkeypatch.setenv(importable.PATH_VAR, "")
    monkeypatch.setattr(user_kernels, "_IN_PROCESS", {})
    monkeypatch.setattr(user_kernels, "_REGISTERED_HERE", set())
    monkeypatch.setattr(sys, "path", list(sys.path))


def _collect(tmp_path, capsys, *impls):
    out = tmp_path / "runs"
    args = ["collect", "--interpret", "--stages", "none", "--refs", "none", "--config", CONFIG, "--no-ncu",
            "--determinism", "1", "--out", str(out)]
    for spec in impls:
        args += ["--impl", spec]
    code = main(args)
    err = capsys.readouterr().err
    runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    return code, err, (load_run(runs[0]) if runs else None)


# ---- 3: the adapter imports the file beside it, here and in the interpreter's process ------------------------------
def test_a_file_spec_imports_its_neighbours_here_and_in_the_interpreter_process(fresh, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)  # started elsewhere, with nothing on PYTHONPATH: only the SPEC names the folder
    monkeypatch.delenv("PYTHONPATH", raising=False)
    code, err, run = _collect(tmp_path, capsys, f"mine={KERNELS / 'attn_adapter.py'}:attention",
                              f"broken={KERNELS / 'bad_outputs.py'}:raises")
    assert run is not None, err
    c = run.table("correctness").set_index("impl")
    assert c.loc["mine", "status"] == "ok", c.loc["mine", "error"]  # the interpreter's process imported attn_core
    assert str(KERNELS) in os.environ[importable.PATH_VAR].split(os.pathsep)  # what the processes started inherit
    census = run.table("census").set_index("impl")
    assert census.loc["mine", "status"] == "ok" and census.loc["mine", "kernel_name"] == "_copy"
    # one kernel of yours is correct: the failing one gets its line, and the exit status stays 0
    assert code == 0, err
    assert f"perfmodel: warning: broken {CASE} failed: ValueError: my kernel does not support causal yet" in err


# ---- 4, 5 (outputs), 18: every way a first kernel fails, each on its own line, and a non-zero exit ------------------
@pytest.fixture
def bad_run(fresh, tmp_path, capsys):
    return _collect(tmp_path, capsys, *(f"{name}={KERNELS / 'bad_outputs.py'}:{name}" for name in BAD))


def test_every_failed_or_wrong_case_is_a_line_with_its_reason_and_the_command_fails(bad_run):
    code, err, run = bad_run
    assert run.status == "complete"  # the run itself is whole: the kernels are what failed
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("perfmodel: ")]
    expected = {
        "raises": "failed: ValueError: my kernel does not support causal yet",
        "returns_none": "failed: returns_none returned None, not a tensor",
        "returns_tuple": "failed: returns_tuple returned a tuple of 2, not a tensor",
        "returns_fp32": "failed: returns_fp32 returned float32 for float16 inputs, where the output is float16",
        "returns_bshd": "failed: returns_bshd returned shape (1, 40, 2, 64), not q's [B, H, S, D] (1, 2, 40, 64); "
                        "it is [B, S, H, D]: transpose(1, 2) it back",
        "wrong_values": "is wrong: max abs error",
    }
    for name, words in expected.items():
        assert any(line.startswith(f"perfmodel: warning: {name} {CASE} {words}") for line in lines), (name, lines)
    assert lines[-1].startswith("perfmodel: error: no kernel of yours gave a correct output (raises, returns_none")
    assert str(run.path) in lines[-1] and "Traceback" not in err


def test_an_fp32_output_for_fp16_inputs_is_failed_and_user_kernels_are_labelled_user(bad_run):
    from perfmodel.reports.correctness import correctness_table

    _, _, run = bad_run
    c = run.table("correctness").set_index("impl")
    assert c.loc["returns_fp32", "status"] == "failed"  # its values are within the budget: only the dtype is wrong
    t = correctness_table(run)
    assert set(t["kind"]) == {"user"}


def test_the_python_api_warns_what_the_command_line_prints(fresh, tmp_path):
    from perfmodel.errors import CollectWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = perfmodel.collect(impls={"fp32": f"{KERNELS / 'bad_outputs.py'}:returns_fp32"}, configs=[CONFIG],
                                stages="none", refs="none", out=tmp_path / "api", interpret=True, determinism=1)
    said = [str(w.message) for w in caught if issubclass(w.category, CollectWarning)]
    assert run.status == "complete"  # the run is returned: the failures are findings in its tables
    assert any(s.startswith(f"fp32 {CASE} failed: fp32 returned float32 for float16 inputs") for s in said), said
    assert said[-1].startswith("no kernel of yours gave a correct output (fp32")


# ---- 5: the causes Triton's tutorial meets on a CPU, one sentence each -------------------------------------------
@needs_no_gpu
def test_a_gpu_driver_query_at_import_is_named_with_its_line_and_fix(fresh):
    with pytest.raises(registry.ImplError) as e:
        user_kernels.register("mine", f"{KERNELS / 'driver_at_import.py'}:attention")
    text = str(e.value)
    assert text.startswith("mine: driver_at_import.py queries the GPU driver when it is imported (line 5: "
                           "`DEVICE = triton.runtime.driver.active.get_active_torch_device()`; RuntimeError: 0 "
                           "active drivers")
    assert text.endswith("move that query into the function.") and "\n" not in text


@needs_no_gpu
def test_torch_cuda_at_import_is_named_with_its_line_and_fix(fresh):
    with pytest.raises(registry.ImplError) as e:
        user_kernels.register("mine", f"{KERNELS / 'cuda_at_import.py'}:attention")
    text = str(e.value)
    assert text.startswith("mine: cuda_at_import.py calls torch.cuda when it is imported (line 5: ")
    assert "move that call into the function, behind `torch.cuda.is_available()`" in text


@needs_no_gpu
@pytest.mark.parametrize("name,words", [
    ("asks_torch_cuda", "asks_torch_cuda: gpu_habits.py:12 (`major, _ = torch.cuda.get_device_capability()`) calls "
                        "torch.cuda ("),
    ("autotuned", "autotuned: @triton.autotune of _tuned_copy has 2 configs and benchmarks them on a GPU, and there "
                  "is none here (RuntimeError: 0 active drivers"),
])
def test_gpu_habits_at_a_call_are_named_in_one_sentence(fresh, name, words):
    from collectors.sweep.worker import check_case
    from kernels.workload import parse_config

    user_kernels.register(name, f"{KERNELS / 'gpu_habits.py'}:{name}")
    row, failed = check_case({"impl": name, "config": parse_config(CONFIG).as_dict()}, seed=0)
    assert failed and row["status"] == "failed" and row["error"].startswith(words), row["error"]


# ---- 6: an autograd Function's apply is refused with the adapter ---------------------------------------------------
def test_an_autograd_function_apply_is_refused_with_the_adapter(fresh):
    with pytest.raises(registry.ImplError) as e:
        user_kernels.register("mine", f"{KERNELS / 'autograd_attention.py'}:attention")
    text = str(e.value)
    assert "is _Attention.apply, a torch.autograd.Function" in text
    assert "forward(ctx, q, k, v, causal, sm_scale)" in text
    assert ("`def attention(q, k, v, causal=False, sm_scale=None): return _Attention.apply(q, k, v, causal, "
            "q.shape[-1] ** -0.5 if sm_scale is None else sm_scale)`") in text


# ---- 7: a failed compile keeps what failed and where ---------------------------------------------------------------
# What Triton 3.6 printed for the sm_90 census of the tutorial's _attn_fwd (a failed TritonGPUPipeline pass): with
# TRITON_REPRODUCER_PATH unset (after the whole IR, and the reproducer on stderr), and set, as the collector sets it.
PIPELINE_LOG_UNSET = (
    "/x/fused_attention_06.py:171:0: error: Failures have been detected while processing an MLIR pass pipeline\n"
    "/x/fused_attention_06.py:171:0: note: Pipeline failed while executing [`TritonGPUPipeline` on 'builtin.module' "
    "operation]: reproducer generated at `std::errs, please share the reproducer above with Triton project.`\n")
PIPELINE_LOG_SET = (
    "/x/fused_attention_06.py:171:0: error: Failures have been detected while processing an MLIR pass pipeline\n"
    "/x/fused_attention_06.py:171:0: note: Pipeline failed while executing `TritonGPUPipeline` on 'builtin.module' "
    "operation: reproducer generated at `/run/logs/census-mine.mlir.make_ttgir.repro.mlir`\n")


@pytest.mark.parametrize("log", [PIPELINE_LOG_UNSET, PIPELINE_LOG_SET], ids=["reproducer-path-unset", "set"])
def test_the_compiler_diagnosis_names_the_failed_pass_and_its_line(log):
    from collectors.census.sm90 import compiler_diagnosis as _compiler_diagnosis

    assert _compiler_diagnosis(log) == "Triton pass TritonGPUPipeline failed at /x/fused_attention_06.py:171"


def test_a_census_compile_error_keeps_its_own_line_and_the_kernel_name(fresh):
    from collectors.census.census import census
    from kernels.workload import parse_config

    user_kernels.register("refused", f"{KERNELS / 'gpu_habits.py'}:does_not_compile")
    r = census("refused", parse_config(CONFIG))
    assert r.status == "failed" and r.kernel_name == "_refused"
    assert r.error == "CompileTimeAssertionFailure: BLOCK must be 3 in this kernel (at line 2:4 of the kernel)"
    assert r.row()["kernel_name"] == "_refused"


def test_the_compile_note_says_which_files_are_reproducers(tmp_path):
    from collectors.sweep import preflight
    from collectors.sweep.case_rows import note_compile_log
    from runstore.writer import RunWriter

    writer = RunWriter(tmp_path / "run", {})
    with preflight.compile_log(tmp_path / "run" / "logs", "census-mine") as log:
        for stage in ("make_ttir", "make_ttgir"):  # Triton writes one per compiler stage it runs
            Path(os.environ["TRITON_REPRODUCER_PATH"] + f".{stage}.repro.mlir").write_text("module {}")
    problems: list[str] = []
    note_compile_log(problems, writer, "census mine B1", "failed", "RuntimeError: PassManager::run failed", log)
    (line,) = problems
    assert "the compiler's output" not in line  # nothing was printed: the two files are reproducers, said so
    assert "Triton's MLIR reproducers" in line and "triton-opt --run-reproducer" in line
    assert "census-mine.mlir.make_ttgir.repro.mlir" in line and "census-mine.mlir.make_ttir.repro.mlir" in line
    writer.finish("complete")


# ---- 21: Ctrl-C names the run and the command that resumes it -------------------------------------------------------
def test_ctrl_c_names_the_run_folder_and_the_resume_command(fresh, tmp_path, capsys, monkeypatch):
    import collectors.sweep.local as collect_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(collect_module, "interpret_cases", interrupted)
    code, err, run = _collect(tmp_path, capsys, f"mine={KERNELS / 'bad_outputs.py'}:wrong_values")
    assert code == 130 and run.meta["status"] == "interrupted"
    assert (f"perfmodel: interrupted; what was measured so far is kept in {run.path}: continue with "
            f"`perfmodel collect --resume {run.path}`.") in err


# ---- 22: the nits -------------------------------------------------------------------------------------------------
def test_a_space_separated_config_says_to_separate_items_with_commas():
    from kernels.workload import ConfigError, parse_config

    with pytest.raises(ConfigError, match="separate items with commas, e.g. B=1,H=2,S=128,D=64,causal"):
        parse_config("B=1 H=2 S=128 D=64 causal")
    with pytest.raises(ConfigError, match="S must be a whole number, got '1 28'"):  # not items run together
        parse_config("B=1,H=2,S=1 28,D=64")


def test_a_misspelt_stage_or_peer_gets_a_did_you_mean():
    from collectors.timing.bench import resolve

    with pytest.raises(ValueError, match=r"unknown stage stage0_basline \(did you mean stage0_baseline\?\)"):
        resolve("stage0_basline", "none")
    with pytest.raises(ValueError, match=r"unknown peer sdpa_cudn \(did you mean sdpa_cudnn\?\)"):
        resolve("none", "sdpa_cudn")
    with pytest.raises(registry.ImplError, match=r"did you mean stage5_full\?"):
        lookup.get("stage5_ful")
