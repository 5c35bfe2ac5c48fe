"""The compiled instruction mixes on disk (issue 22, "a report in a second"): perfmodel/model/mix_cache.py keeps each
case's mix in the user cache and ships the bundled runs' mixes in the package, so reading a run compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels.source import source_hash
from kernels.workload import parse_config
from perfmodel.model import instruction_mix as im, mix_cache

CFG = parse_config("B=1,H=2,S=256,D=64,causal")
_COMPILE_MIX = mix_cache.compile_mix
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache, no shipped layer, and a count of the compiles."""
    monkeypatch.setenv("PERFMODEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(mix_cache, "shipped_dir", lambda: tmp_path / "no-shipped-mixes")
    monkeypatch.setattr(mix_cache, "_MEMO", {})
    monkeypatch.setattr(mix_cache, "_KERNELS", {})
    compiles = []

    def counted(*args):
        compiles.append(args)
        return im.instruction_mix(*args[:4])  # the PTX mix (args[4] names where the loops are read)

    monkeypatch.setattr(mix_cache, "compile_mix", counted)
    return tmp_path / "mixes", compiles


def _fresh_process(monkeypatch):
    monkeypatch.setattr(mix_cache, "_MEMO", {})
    monkeypatch.setattr(mix_cache, "_KERNELS", {})


def test_a_mix_reads_back_as_it_was_compiled(cache, monkeypatch):
    root, compiles = cache
    first = mix_cache.instruction_mix("stage4_overlap", CFG, 132)
    _fresh_process(monkeypatch)
    again = mix_cache.instruction_mix("stage4_overlap", CFG, 132)
    assert len(compiles) == 1
    assert again == first and again.kernel == first.kernel
    # the replay nodes are not part of equality (compare=False): check them too
    assert [lp.path for lp in again.kernel.math_loops] == [lp.path for lp in first.kernel.math_loops]
    assert isinstance(again.kernel.math_loops[0].path[0][1], tuple)


def test_the_key_names_the_compiler_and_the_kernels_sources(cache, monkeypatch):
    root, compiles = cache
    mix_cache.instruction_mix("stage2_reduced_sync", CFG, 132)
    for patch in (("triton_version", lambda: "0.0.0"), ("source_hash", lambda: "0" * 12)):
        _fresh_process(monkeypatch)
        with monkeypatch.context() as m:
            m.setattr(mix_cache, *patch)
            mix_cache.instruction_mix("stage2_reduced_sync", CFG, 132)
    _fresh_process(monkeypatch)
    mix_cache.instruction_mix("stage2_reduced_sync", CFG, 100)  # another SM count: another grid
    assert len(compiles) == 4


def test_a_damaged_entry_is_compiled_again_and_rewritten(cache, monkeypatch):
    root, compiles = cache
    mix_cache.instruction_mix("stage3_persistent", CFG, 132)
    (case,) = (root / "cases").glob("*.json")
    for damage in (b"{not json", json.dumps({"key": {"other": 1}, "mix": {}}).encode()):
        case.write_bytes(damage)
        _fresh_process(monkeypatch)
        mix_cache.instruction_mix("stage3_persistent", CFG, 132)
        assert json.loads(case.read_text())["key"]["impl"] == "stage3_persistent"
    (kernel,) = (root / "kernels").glob("*.json")
    kernel.write_bytes(b"")
    _fresh_process(monkeypatch)
    mix_cache.instruction_mix("stage3_persistent", CFG, 132)
    assert len(compiles) == 4 and json.loads(kernel.read_text())["kernel"]["hash"] == kernel.stem


def test_an_unwritable_cache_only_costs_the_next_compile(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PERFMODEL_CACHE_DIR", str(blocker))
    monkeypatch.setattr(mix_cache, "_MEMO", {})
    assert mix_cache.instruction_mix("stage1_warpspec", CFG, 132).impl == "stage1_warpspec"


def test_two_processes_compiling_one_case_leave_one_whole_entry(tmp_path):
    code = ("import sys; from kernels.workload import parse_config; from perfmodel.model import mix_cache; "
            "m = mix_cache.instruction_mix('stage5_full', parse_config(sys.argv[1]), 132); print(m.kernel.hash)")
    env = {**os.environ, "PERFMODEL_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("TRITON_INTERPRET", None)
    procs = [subprocess.Popen([sys.executable, "-c", code, "B=1,H=2,S=256,D=64,causal"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    (case,) = (tmp_path / "mixes" / "cases").glob("*.json")
    assert json.loads(case.read_text())["key"]["impl"] == "stage5_full"
    assert not list((tmp_path / "mixes").rglob(".*"))  # no temporary file left behind


def test_the_shipped_mixes_are_todays_and_cover_the_bundled_runs(monkeypatch, tmp_path):
    """Without Triton (the laptop install) and with an empty user cache, the model is shown beside every measured
    stage of every bundled run: the mixes shipped in perfmodel/bundled/mixes answer. After a change under kernels/
    this fails until `python scripts/ship_mixes.py` is run."""
    from perfmodel.model.model_cases import model_table
    from perfmodel.runs import bundled_run_dirs, load_run

    index = json.loads((mix_cache.shipped_dir() / "index.json").read_text())
    assert index["kernels_source"] == source_hash(), "kernels/ changed: run `python scripts/ship_mixes.py`"
    monkeypatch.setenv("PERFMODEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(mix_cache, "_MEMO", {})
    monkeypatch.setattr(mix_cache, "triton_version", lambda: None)

    def no_compile(*args):
        raise AssertionError(f"compiled {args[0]} at {args[1].id}: its mix is not shipped")

    monkeypatch.setattr(mix_cache, "compile_mix", no_compile)
    for path in bundled_run_dirs():
        table = model_table(load_run(path))
        measured = table[table["model_status"] != "not_measured"]
        assert len(measured) and (measured["model_status"] == "ok").all(), measured[["impl", "model_reason"]]


def test_a_kernels_ptx_and_sass_mixes_are_filed_apart(cache, monkeypatch):
    # one Triton kernel hash has two mixes (the math loops read from the PTX, or from the SASS): filed under one
    # name, the second process read whichever was written first (a `--loops sass` score came out as the PTX's)
    root, compiles = cache
    monkeypatch.setattr(mix_cache, "compile_mix", _COMPILE_MIX)  # the SASS reader too, not the fixture's PTX one
    ptx = mix_cache.instruction_mix("stage2_reduced_sync", CFG, 132, None, "ptx")
    sass = mix_cache.instruction_mix("stage2_reduced_sync", CFG, 132, None, "sass")
    assert ptx.kernel.hash == sass.kernel.hash and sass.kernel.loops_source == "sass"
    for order in (("ptx", "sass"), ("sass", "ptx")):
        _fresh_process(monkeypatch)
        got = {loops: mix_cache.instruction_mix("stage2_reduced_sync", CFG, 132, None, loops) for loops in order}
        assert got["ptx"].kernel.loops_source == "ptx" and got["sass"].kernel.loops_source == "sass"
        assert [lp.instructions for lp in got["sass"].kernel.math_loops] == [
            lp.instructions for lp in sass.kernel.math_loops]
        assert [lp.instructions for lp in got["ptx"].kernel.math_loops] == [
            lp.instructions for lp in ptx.kernel.math_loops]
