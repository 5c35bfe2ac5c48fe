"""`perfmodel.collect(impls={"mine": attention_fn})`: a kernel given as the function itself. One that another process
can import by name is recorded as its `module:qualname` SPEC and measured like a SPEC's (the interpreter's process
imports it); one that no other process can import (defined in `__main__`, a lambda, a nested function) runs in this
process only: checked here under `interpret=True`, refused in one sentence before anything runs where Nsight
Compute's worker process would need it, and recorded so that `--resume` refuses it in one sentence too."""

from __future__ import annotations

import functools

import callable_kernels
import pytest

import perfmodel
from kernels import lookup, user_kernels
from perfmodel.cli import main
from perfmodel.errors import UserError

# collect runs the interpreter in its own child process, and this process compiles the census for sm_90 with the
# GPU copy of triton, so these tests are not marked `interpreter` (as tests/test_registry.py)

CONFIG = "B=1,H=1,S=40,D=64"  # one small head: the interpreter's process checks a case of it in about a second


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """No user implementation registered before the test, and none left after it."""
    monkeypatch.setenv("PERFMODEL_IMPLS", "")
    monkeypatch.setenv("PERFMODEL_IMPL_PATH", "")
    monkeypatch.setattr(user_kernels, "_IN_PROCESS", {}, raising=False)
    monkeypatch.setattr(user_kernels, "_REGISTERED_HERE", set(), raising=False)


def _collect(tmp_path, impls, **options):
    return perfmodel.collect(impls=impls, configs=[CONFIG], stages="none", refs="none", out=tmp_path / "runs",
                             determinism=1, **options)


def _defined_in_main():
    """A function as a notebook cell or a script defines it: its module is __main__."""
    namespace = {"__name__": "__main__"}
    exec("def attention_fn(q, k, v, causal=False, sm_scale=None):\n    return q\n", namespace)
    return namespace["attention_fn"]


def _nested():
    def attention_fn(q, k, v, causal=False, sm_scale=None):
        return callable_kernels.attention(q, k, v, causal, sm_scale)

    return attention_fn


def test_an_importable_function_runs_in_the_interpreter_process_and_is_recorded_by_its_spec(tmp_path):
    run = _collect(tmp_path, {"mine": callable_kernels.attention, "tk": callable_kernels.copy_attention},
                   interpret=True)
    assert run.status == "complete"
    correctness = run.table("correctness").set_index("impl")
    # "tk" launches a Triton kernel: correct only because the interpreter's process imported it under
    # TRITON_INTERPRET=1 (this process's copy of it is built for the GPU), from tests/, which is on this process's
    # sys.path and not on that process's
    assert correctness.loc["mine", "status"] == "ok" and correctness.loc["tk", "status"] == "ok"
    assert run.meta["options"]["impls"] == {"mine": "callable_kernels:attention",
                                            "tk": "callable_kernels:copy_attention"}
    assert run.table("census").set_index("impl").loc["tk", "status"] == "ok"
    assert main(["collect", "--resume", str(run.path)]) == 0  # the SPECs find the functions again


@pytest.mark.parametrize("make,why", [
    (_defined_in_main, "it is defined in __main__"),
    (lambda: (lambda q, k, v, causal=False, sm_scale=None: q), "it is a lambda"),
    (_nested, "it is defined inside another function"),
    (lambda: functools.partial(callable_kernels.attention), "without a module and a qualified name"),
])
def test_a_function_no_other_process_can_import_is_refused_with_ncu_before_anything_runs(tmp_path, make, why):
    with pytest.raises(UserError) as refused:
        _collect(tmp_path, {"mine": make()}, ncu=True)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and message.startswith("mine: ") and message.endswith(".")
    assert "Nsight Compute worker process" in message and why in message
    assert "to the top level of a module file and pass it, or pass 'path/to/file.py:" in message
    assert "no CUDA GPU" not in message  # refused for what it is, before the GPU is looked for
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # no chained traceback
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_an_importable_function_with_ncu_is_not_refused_for_being_a_function(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU this would measure; the point is the check that comes after the function's")
    with pytest.raises(UserError, match="no CUDA GPU is visible here"):
        _collect(tmp_path, {"mine": callable_kernels.attention}, ncu=True)


def test_a_function_only_this_process_can_run_is_checked_here_and_cannot_be_resumed(tmp_path, capsys):
    def attention(q, k, v, causal=False, sm_scale=None):  # nested: no other process can import it
        return callable_kernels.attention(q, k, v, causal, sm_scale)

    run = _collect(tmp_path, {"mine": attention}, interpret=True)
    assert run.status == "complete"
    assert run.table("correctness").set_index("impl").loc["mine", "status"] == "ok"
    assert run.meta["options"]["impls"] == {"mine": f"<callable {__name__}.{attention.__qualname__}, not importable>"}
    capsys.readouterr()
    assert main(["collect", "--resume", str(run.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be loaded again (e.g. by --resume)" in err[0] and "module file" in err[0], err


def test_a_triton_kernel_built_for_the_gpu_here_is_not_measured_under_interpret_and_says_why(tmp_path):
    from triton.runtime.interpreter import InterpretedFunction

    if isinstance(callable_kernels._copy, InterpretedFunction):
        pytest.skip("TRITON_INTERPRET=1 was set when triton was imported here: this process interprets it")

    def attention(q, k, v, causal=False, sm_scale=None):  # runs here, where callable_kernels._copy is a GPU build
        return callable_kernels.copy_attention(q, k, v, causal, sm_scale)

    run = _collect(tmp_path, {"mine": attention}, interpret=True)
    row = run.table("correctness").set_index("impl").loc["mine"]
    assert row["status"] == "not_measured"
    assert "launches `_copy`, which Triton built for the GPU" in row["error"]
    assert "move `attention` to the top level of a module file" in row["error"]


def test_a_name_registered_here_takes_the_newest_function(tmp_path):
    # a notebook redefines its function and collects again under the same name
    user_kernels.register("mine", callable_kernels.attention)
    redefined = _nested()
    assert user_kernels.register("mine", redefined).endswith("not importable>")
    assert lookup.get("mine").launcher.function() is redefined
    assert user_kernels.register("mine", callable_kernels.attention) == "callable_kernels:attention"
    assert lookup.get("mine").launcher.function() is callable_kernels.attention


def test_a_function_only_this_process_can_run_is_ablated_here_under_interpret(tmp_path):
    def attention(q, k, v, causal=False, sm_scale=None, *, fused=True):  # nested, with a technique switch
        return callable_kernels.attention(q, k, v, causal, sm_scale)

    attention.switches = {"fused": {"removes": [2]}}
    run = _collect(tmp_path, {"mine": attention}, interpret=True)
    variants = run.table("ablation_variants")
    # both variants checked in this process (the interpreter's process could not import the function)
    assert sorted(variants["fused"]) == [False, True] and set(variants["status"]) == {"ok"}
