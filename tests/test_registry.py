"""A kernel of the user's own: registered by `--impl NAME=SPEC`, by an entry point, or through the Python API,
measured under `--interpret` like a stage (correctness, census of its Triton kernels), and every way it can be
wrong ends in one sentence naming it, with nothing timed for a wrong kernel."""

from __future__ import annotations

import json
import textwrap

import pytest

from kernels import lookup, registry, user_kernels
from perfmodel.cli import main
from runstore.reader import load_run

# collect --interpret runs the kernels in its own interpreter child process; this process compiles the census for
# sm_90 with the GPU copy of triton, so these tests are not marked `interpreter`

TRITON_KERNEL = '''
import math
import torch
import triton
import triton.language as tl


@triton.jit
def _copy(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst + offs, tl.load(src + offs, mask=offs < n), mask=offs < n)


def attention(q, k, v, causal=False, sm_scale=None):
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal,
                                                           scale=sm_scale).to(q.dtype).contiguous()
    out = torch.empty_like(ref)
    _copy[(triton.cdiv(ref.numel(), 256),)](ref, out, ref.numel(), BLOCK=256)
    return out
'''

PLAIN = '''
import torch


def attention(q, k, v, causal=False, sm_scale=None):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale)


def two_args(q, k):
    return q


def bad_shape(q, k, v, causal=False, sm_scale=None):
    return q[..., :32]


def raises(q, k, v, causal=False, sm_scale=None):
    raise RuntimeError("boom")


def wrong(q, k, v, causal=False, sm_scale=None):
    return q * 0 + 1


NOT_A_FUNCTION = 3
'''

# technique switches a function cannot have (README, "Measure your own kernel": each is one sentence at --impl)
BAD_SWITCHES = '''
def _sdpa(q, k, v, causal=False, sm_scale=None, **switch):
    import torch
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale)


def not_a_keyword(q, k, v, causal=False, sm_scale=None):
    return _sdpa(q, k, v, causal, sm_scale)


def bad_default(q, k, v, causal=False, sm_scale=None, *, wide=None):
    return _sdpa(q, k, v, causal, sm_scale)


def same_values(q, k, v, causal=False, sm_scale=None, *, wide=True):
    return _sdpa(q, k, v, causal, sm_scale)


def unknown_key(q, k, v, causal=False, sm_scale=None, *, wide=True):
    return _sdpa(q, k, v, causal, sm_scale)


not_a_keyword.switches = {"wide": {"removes": [2]}}
bad_default.switches = {"wide": {"removes": [2]}}
same_values.switches = {"wide": {"on": True, "off": True}}
unknown_key.switches = {"wide": {"removes": [2], "constraint": 2}}
'''


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    monkeypatch.delenv(user_kernels.ENV_VAR, raising=False)
    (tmp_path / "tk.py").write_text(TRITON_KERNEL)
    (tmp_path / "plain.py").write_text(PLAIN)
    (tmp_path / "switches.py").write_text(BAD_SWITCHES)
    return tmp_path


def _run(tmp_path, *impls, stages="none"):
    out = tmp_path / "runs"
    args = ["collect", "--interpret", "--stages", stages, "--refs", "none", "--config", "B=1,H=2,S=33,D=64,causal",
            "--no-ncu", "--determinism", "1", "--out", str(out)]
    for spec in impls:
        args += ["--impl", spec]
    code = main(args)
    runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    return code, (load_run(runs[0]) if runs else None)


def test_user_triton_kernel_measured_with_its_census(user_files):
    code, run = _run(user_files, f"mine={user_files / 'tk.py'}:attention", stages="stage0_baseline")
    assert code == 0 and run.status == "complete"
    c = run.table("correctness").set_index("impl")
    assert c.loc["mine", "status"] == "ok" and c.loc["mine", "max_abs_err"] <= c.loc["mine", "budget_abs_err"]
    census = run.table("census").set_index("impl")
    assert census.loc["mine", "status"] == "ok" and census.loc["mine", "grid_programs"] > 0
    assert run.meta["options"]["impls"] == {"mine": f"{user_files / 'tk.py'}:attention"}
    assert {i["name"]: i["kind"] for i in run.meta["impls"]} == {"stage0_baseline": "stage", "mine": "user"}
    # resume finds the user's kernel again from the run's own record
    assert main(["collect", "--resume", str(run.path)]) == 0


def test_a_kernel_without_triton_gets_no_census_and_says_why(user_files):
    code, run = _run(user_files, f"plain={user_files / 'plain.py'}:attention")
    census = run.table("census")
    assert list(census["status"]) == ["not_measured"] and "not a Triton kernel" in census["error"].iloc[0]
    assert list(run.table("correctness")["status"]) == ["ok"]


def test_wrong_kernels_are_recorded_and_never_timed(user_files):
    p = user_files / "plain.py"
    code, run = _run(user_files, f"shape={p}:bad_shape", f"raises={p}:raises", f"wrong={p}:wrong")
    c = run.table("correctness").set_index("impl")
    assert c.loc["shape", "status"] == "failed" and "shape" in c.loc["shape", "error"]
    assert c.loc["raises", "status"] == "failed" and "boom" in c.loc["raises", "error"]
    assert c.loc["wrong", "status"] == "wrong" and "exceeds the budget" in c.loc["wrong", "error"]
    t = run.table("timings")
    assert t["tflops"].isna().all()


@pytest.mark.parametrize("spec,words", [
    ("x={d}/nope.py:attention", "does not exist"),
    ("x={d}/plain.py:missing", "has no function 'missing'"),
    ("x={d}/plain.py:NOT_A_FUNCTION", "not a function"),
    ("x={d}/plain.py:two_args", "must take (q, k, v, causal=..., sm_scale=...)"),
    ("x=no_such_module_here:f", "cannot import module"),
    ("x={d}/plain.py", "must be 'package.module:function'"),
    ("x", "must be NAME=SPEC"),
    ("stage0_baseline={d}/plain.py:attention", "is a stage or peer"),
    ("bad name={d}/plain.py:attention", "must be letters"),
    ("x={d}/switches.py:not_a_keyword", "x: switch 'wide' must be a keyword argument of the function"),
    ("x={d}/switches.py:bad_default", "the default None is neither its on (True) nor its off (False) value"),
    ("x={d}/switches.py:same_values", "on and off must be two different"),
    ("x={d}/switches.py:unknown_key", "must be a Switch or a dict with keys among"),
])
def test_bad_specs_end_in_one_sentence(user_files, capsys, spec, words):
    code, run = _run(user_files, spec.format(d=user_files))
    assert code == 2 and run is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_entry_point_registers_an_installed_kernel(user_files, monkeypatch):
    # an installed distribution declaring [perfmodel.implementations] fromep = "fromep_mod:attention"
    pkg = user_files / "site"
    pkg.mkdir()
    (pkg / "fromep_mod.py").write_text(PLAIN)
    dist = pkg / "fromep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fromep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [perfmodel.implementations]
        fromep = fromep_mod:attention
    """))
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("PYTHONPATH", str(pkg))  # the interpreter child finds it too
    assert user_kernels.entry_points() == {"fromep": "fromep_mod:attention"}
    launcher, reason = lookup.resolve("fromep")
    assert reason is None and callable(launcher)


def test_environment_registration_is_validated(monkeypatch):
    monkeypatch.setenv(user_kernels.ENV_VAR, "{not json")
    with pytest.raises(registry.ImplError, match="JSON"):
        user_kernels.user_specs()
    monkeypatch.setenv(user_kernels.ENV_VAR, json.dumps({"a": 1}))
    with pytest.raises(registry.ImplError, match="strings"):
        user_kernels.user_specs()


def test_python_api_end_to_end(user_files, tmp_path):
    import perfmodel

    run = perfmodel.collect(impls={"mine": f"{user_files / 'tk.py'}:attention"}, configs=["B=1,H=1,S=40,D=64"],
                            stages="stage0_baseline", refs="none", out=tmp_path / "api", interpret=True,
                            determinism=1)
    assert run.status == "complete"
    again = perfmodel.load_run(run.path)
    assert set(again.table("correctness")["impl"]) == {"stage0_baseline", "mine"}
    html = perfmodel.report(again, out=tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == html and "mine" in html
    md = perfmodel.report(run.path, fmt="md")
    assert md.startswith("#")
    with pytest.raises(perfmodel.errors.UserError):
        perfmodel.load_run(tmp_path / "nowhere")


def test_a_relative_spec_is_recorded_absolute(user_files, monkeypatch):
    # the interpreter child and the ncu worker start in the project folder: a relative path must not break them
    monkeypatch.chdir(user_files)
    code, run = _run(user_files, "rel=tk.py:attention")
    assert code == 0 and list(run.table("correctness")["status"]) == ["ok"]
    assert run.meta["options"]["impls"] == {"rel": f"{user_files / 'tk.py'}:attention"}
