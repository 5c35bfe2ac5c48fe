"""Every bad input a user can hand the toolkit ends in one clear sentence and a non-zero exit (issue 12, item 2):
damaged run folders (Parquet parts, run.json fields, schema versions, columns), config texts and model files,
predictions for configs no kernel runs, configs that cannot fit the GPU, `--resume` with options of its own,
package versions that break the interpreter, file-system errors in collect, and compiler failures."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from collectors.sweep import preflight
from collectors.timing import memory
from perfmodel import runs
from perfmodel.cli import main
from runstore.layout import SCHEMA_VERSION
from runstore.reader import load_run
from runstore.writer import RunWriter

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = runs.default_run_dir()
TINY = "B=1,H=1,S=16,D=64"


def one_sentence(capsys, *argv, needles=()):
    """Run the CLI: exit status 2, one line on stderr starting 'perfmodel: error:', no traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    # the progress line (collect) is not a message
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not re.match(r"\[\d+/\d+\] ", ln)]
    assert code == 2, (code, out[-500:], err[-2000:])
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("perfmodel: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0], out


@pytest.fixture
def run_copy(tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(BUNDLED, dst)
    return dst


def _part(run_dir: Path, table: str) -> Path:
    return sorted((run_dir / "tables" / table).glob("part-*.parquet"))[0]


def _edit_meta(run_dir: Path, **fields) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    for k, v in fields.items():
        if v is KeyError:
            meta.pop(k, None)
        else:
            meta[k] = v
    (run_dir / "run.json").write_text(json.dumps(meta))


# ---- corrupt or truncated Parquet parts ---------------------------------------------------------------------------
def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:100])


def _scramble_pages(p: Path) -> None:
    """Garbage over the data pages, footer intact: caught only when the table is read."""
    data = bytearray(p.read_bytes())
    for i in range(8, len(data) // 2):
        data[i] = 0xFF
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _scramble_pages], ids=["truncated", "scrambled-pages"])
@pytest.mark.parametrize("command", ["report", "gates", "baseline"])
def test_a_damaged_parquet_part_is_one_sentence(capsys, tmp_path, run_copy, damage, command):
    damage(_part(run_copy, "stalls"))
    argv = {"report": ["report", run_copy, "--out", tmp_path / "r.html"],
            "gates": ["gates", run_copy],
            "baseline": ["report", BUNDLED, "--baseline", run_copy, "--out", tmp_path / "r.html"]}[command]
    if damage is _scramble_pages and command == "baseline":
        # the comparison reads the baseline's timings only: a damaged stalls page there goes unread
        _scramble_pages(_part(run_copy, "timings"))
    line, _ = one_sentence(capsys, *argv, needles=["part-", "parquet"])
    assert "corrupt" in line
    assert not (tmp_path / "r.html").exists()


def test_a_dashboard_page_on_a_damaged_run_shows_the_sentence(run_copy, monkeypatch):
    from streamlit.testing.v1 import AppTest

    _scramble_pages(_part(run_copy, "stalls"))
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(run_copy))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("corrupt" in e.value for e in at.error), [e.value for e in at.error]


# ---- run.json: wrongly typed fields, schema versions ---------------------------------------------------------------
@pytest.mark.parametrize("field, value, needle", [
    ("environment", "oops", "'environment' must be an object"),
    ("status", 5, "'status' must be text"),
    ("status", "done", "status 'done' is not one of"),
    ("configs", "B=1", "'configs' must be a list"),
    ("wall_s", "slow", "'wall_s' must be a number"),
    ("schema_version", "1", "schema_version must be a whole number"),
    ("run_id", KeyError, "no run_id"),
])
def test_a_wrongly_typed_run_json_field_is_one_sentence(capsys, tmp_path, run_copy, field, value, needle):
    _edit_meta(run_copy, **{field: value})
    one_sentence(capsys, "report", run_copy, "--out", tmp_path / "r.html", needles=["run.json", needle])
    one_sentence(capsys, "gates", run_copy, needles=[needle])


def test_a_future_schema_version_is_refused(capsys, tmp_path, run_copy):
    _edit_meta(run_copy, schema_version=SCHEMA_VERSION + 1)
    one_sentence(capsys, "report", run_copy, "--out", tmp_path / "r.html",
                 needles=[f"version {SCHEMA_VERSION + 1}", "update perfmodel"])


def test_runs_without_a_schema_version_are_version_1_and_new_runs_say_so(tmp_path):
    committed = [d for d in (ROOT / "runs").iterdir() if (d / "run.json").is_file()] + runs.bundled_run_dirs()
    assert committed
    older = [d for d in committed if "schema_version" not in json.loads((d / "run.json").read_text())]
    assert older  # the runs made before schema_version existed ...
    for d in committed:
        run = runs.load_run(d)  # ... and the newer ones all load (tables checked too)
        assert run.meta.get("schema_version", 1) <= SCHEMA_VERSION, d
    w = RunWriter(tmp_path / "new", {})
    w.finish("complete")
    # version 2: timings.time_ms became the GPU's time by CUDA graph where the call can be captured
    assert load_run(w.path).meta["schema_version"] == SCHEMA_VERSION == 2


# ---- columns ----------------------------------------------------------------------------------------------------
def _rewrite(part: Path, fn) -> None:
    df = pq.read_table(part).to_pandas()
    fn(df).to_parquet(part, index=False)


@pytest.mark.parametrize("change, needle", [
    (lambda df: df.rename(columns={"time_ms": "time_mss"}), "'time_mss' where the schema has 'time_ms'"),
    (lambda df: df.assign(time_ms=df["time_ms"].astype(str)), "stores 'time_ms' as text"),
    (lambda df: df.drop(columns=["impl"]), "lacks the key column(s) impl"),
    (lambda df: df.assign(colour="red"), "does not have: colour"),
], ids=["renamed", "text-in-numbers", "key-missing", "unknown"])
def test_a_renamed_or_mistyped_column_is_one_sentence(capsys, tmp_path, run_copy, change, needle):
    _rewrite(_part(run_copy, "timings"), change)
    one_sentence(capsys, "report", run_copy, "--out", tmp_path / "r.html", needles=["timings", needle])


def test_an_unknown_table_folder_is_one_sentence(capsys, tmp_path, run_copy):
    (run_copy / "tables" / "timings").rename(run_copy / "tables" / "timngs")
    one_sentence(capsys, "gates", run_copy, needles=["timngs", "did you mean 'timings'"])


# ---- config keys (--config, model files) ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["predict", "collect", "bench"])
@pytest.mark.parametrize("text, needle", [
    ("B=1,B=2,H=1,S=64,D=64", "sets B twice"),
    ("B=1,H=1,S=64,D=64,causal,full", "sets causal twice"),
    ("B=1,H=1,S=64,D=64,dtype=bf16,fp16", "sets dtype twice"),
    ("B=1,=2,H=1,S=64,D=64", "an item with no key"),
])
def test_duplicate_or_empty_config_keys_are_refused(capsys, tmp_path, command, text, needle):
    extra = {"predict": [], "collect": ["--interpret", "--out", tmp_path], "bench": []}[command]
    one_sentence(capsys, command, "--config", text, *extra, needles=[needle])


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace("[document]\n", '[document]\n"" = "x"\n', 1), "empty key in document"),
    (lambda t: t.replace("[[stages]]\n", '[[stages]]\n"" = 1\n', 1), "empty key in stages[0]"),
    (lambda t: t.replace('config = "B=16,', 'config = "B=8,B=16,', 1), "sets B twice"),
    (lambda t: t.replace("[document]\n", '[document]\ntitle = "again"\n', 1), "not valid TOML"),
], ids=["empty-key", "empty-key-in-array", "duplicate-config-key", "duplicate-toml-key"])
def test_model_file_keys(capsys, tmp_path, edit, needle):
    text = (ROOT / "perfmodel" / "data" / "einstein.toml").read_text()
    model = tmp_path / "plan.toml"
    model.write_text(edit(text))
    assert model.read_text() != text
    one_sentence(capsys, "model", "check", "--model", model, needles=[needle])


# ---- predictions without a kernel -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["B=1,H=1,S=128,D=96", "B=1,H=1,S=128,D=64,dtype=fp32"])
def test_predictions_for_configs_no_kernel_runs_are_refused(capsys, text):
    one_sentence(capsys, "predict", "--config", text, needles=["no kernel of this toolkit runs"])


def test_fp8_predictions_mark_the_stages_without_a_kernel(capsys):
    assert main(["predict", "--config", "B=1,H=1,S=128,D=64,dtype=fp8", "--format", "csv"]) == 0
    from io import StringIO

    frame = pd.read_csv(StringIO(capsys.readouterr().out), dtype={"no_kernel": str}).fillna({"no_kernel": ""})
    fp8_stages = frame["impl"].isin(["stage0_baseline", "stage5_full"])  # the stages whose launchers take e4m3
    assert (frame.loc[~fp8_stages, "no_kernel"] != "").all()
    assert (frame.loc[fp8_stages, "no_kernel"] == "").all()
    assert main(["predict", "--config", "B=1,H=1,S=128,D=64,dtype=fp8"]) == 0
    assert "no kernel" in capsys.readouterr().out


def test_the_kernel_table_of_predictions_matches_the_kernels():
    launch = pytest.importorskip("kernels._launch")  # imports torch
    from perfmodel.plan.predictions import KERNEL_DTYPES, KERNEL_HEAD_DIMS

    assert tuple(launch.SUPPORTED_HEAD_DIMS) == KERNEL_HEAD_DIMS
    from kernels.workload import torch_dtype

    assert {torch_dtype(d) for d, only in KERNEL_DTYPES.items() if only is None} == set(launch.GPU_DTYPES)


# ---- GPU memory -------------------------------------------------------------------------------------------------
def test_a_config_that_cannot_fit_the_gpu_is_refused_before_launching(capsys, tmp_path, monkeypatch):
    import collectors.timing.measure

    monkeypatch.setattr(collectors.timing.measure, "cuda_available", lambda: True)
    monkeypatch.setattr(memory, "device_memory", lambda: ("Fake GPU 1GB", 2**30))
    one_sentence(capsys, "collect", "--config", "B=16,H=16,S=4096,D=64", "--no-ncu", "--out", tmp_path / "runs",
                 needles=["GiB of GPU memory", "Fake GPU 1GB", "smaller B, H or S"])
    assert not (tmp_path / "runs").exists()


def test_case_bytes_counts_the_float64_scores_of_the_chunk_the_check_holds():
    from kernels.hardware import GPUS
    from kernels.suites import get_suite
    from kernels.workload import AttentionConfig

    cfg = AttentionConfig(B=16, H=16, S=2048, D=64, causal=True)
    # one batch entry's 16 heads at once (16 x 2048^2 x 8 bytes = 512 MiB, under the 1 GiB chunk): three copies
    assert memory.heads_per_chunk(16, 2048) == 16
    assert memory.case_bytes(cfg) > 8 * 3 * 16 * 2048 * 2048
    assert memory.memory_problem([cfg], 80 * 2**30) is None  # the seed config fits an H100
    # the suites the README runs on an H100 (fa3-grid's S=16384 configs checked one 2 GiB head at a time)
    for suite in ("fa3-grid", "plan", "batching"):
        assert memory.memory_problem(get_suite(suite), GPUS["h100-sxm"].memory_bytes) is None, suite


# ---- --resume with options of its own --------------------------------------------------------------------------------
@pytest.fixture
def stopped_run(tmp_path) -> Path:
    cfg = {"config_id": "B1-H1-S16-D64-full-fp16", "B": 1, "H": 1, "S": 16, "D": 64, "causal": False,
           "dtype": "fp16"}
    w = RunWriter(tmp_path / "stopped", {"suite": "custom", "configs": [cfg], "options": {
        "suite": "tiny", "stages": "stage0_baseline", "refs": "none", "impls": {}, "interpret": True,
        "determinism_runs": 100, "ablation": False, "ncu": False}})
    w.finish("interrupted")
    return w.path


@pytest.mark.parametrize("argv, needles", [
    (["--stages", "all"], ["--stages all (the run: stage0_baseline)"]),
    (["--refs", "sdpa_flash", "--determinism", "5"], ["--refs sdpa_flash", "--determinism 5 (the run: 100)"]),
    (["--config", "B=2,H=1,S=16,D=64"], ["--config B2-H1-S16-D64-full-fp16"]),
    (["--suite", "seed"], ["--suite seed (the run: tiny)"]),
])
def test_resume_with_conflicting_options_names_them(capsys, stopped_run, argv, needles):
    one_sentence(capsys, "collect", "--resume", stopped_run, *argv, needles=["--resume continues", *needles])
    assert load_run(stopped_run).meta["status"] == "interrupted"  # nothing was touched


def test_resume_with_out_is_refused(capsys, stopped_run, tmp_path):
    one_sentence(capsys, "collect", "--resume", stopped_run, "--out", tmp_path, needles=["drop --out"])


# ---- package versions that break the interpreter ------------------------------------------------------------------
def test_numpy_2_4_is_named_before_the_interpreter_runs(capsys, tmp_path, monkeypatch):
    real = preflight.metadata.version
    monkeypatch.setattr(preflight.metadata, "version", lambda p: "2.4.1" if p == "numpy" else real(p))
    one_sentence(capsys, "collect", "--interpret", "--stages", "stage0_baseline", "--refs", "none", "--config", TINY,
                 "--out", tmp_path / "runs", needles=["numpy 2.4.1 breaks Triton's CPU interpreter", "numpy<2.4"])
    assert not (tmp_path / "runs").exists()
    assert preflight.interpreter_problem(lambda p: "2.3.5") is None


# ---- file-system errors in collect ------------------------------------------------------------------------------------
INTERPRET = ["collect", "--interpret", "--stages", "stage0_baseline", "--refs", "none", "--no-ablation",
             "--config", TINY]


def test_out_that_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    one_sentence(capsys, *INTERPRET, "--out", tmp_path / "f", needles=["is a file, not a folder"])


def test_read_only_out(capsys, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def read_only(self, *a, **kw):
        if tmp_path / "ro" in (self, *self.parents):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", read_only)
    one_sentence(capsys, *INTERPRET, "--out", tmp_path / "ro", needles=["cannot write", "Read-only file system"])


@pytest.mark.interpreter
@pytest.mark.parametrize("meta_too", [False, True], ids=["tables", "tables-and-run-json"])
def test_disk_full_mid_run_leaves_a_truthful_status(capsys, tmp_path, monkeypatch, meta_too):
    from runstore import safe_io, writer as store

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store, "atomic_write_bytes", full)  # every table part
    if meta_too:
        real = safe_io.atomic_write_bytes
        n = {"meta": 0}

        def meta_full(path, data):  # run.json: the first writes pass (the run starts), then the disk is full
            n["meta"] += 1
            if n["meta"] > 2:
                full(path, data)
            real(path, data)

        monkeypatch.setattr(safe_io, "atomic_write_bytes", meta_full)
    one_sentence(capsys, *INTERPRET, "--out", tmp_path / "runs", needles=["No space left on device"])
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = load_run(run_dir)
    if meta_too:  # run.json could not record it: it says running, and with no writer left it reads interrupted
        assert run.meta["status"] == "running" and run.status == "interrupted"
    else:
        assert run.status == "failed" and "No space left on device" in run.meta["error"]
    assert not (run_dir / ".lock").exists() or safe_io.lock_holder(run_dir) is None


# ---- compiler failures --------------------------------------------------------------------------------------------
def test_a_compile_failure_keeps_its_dump_in_the_run_folder(tmp_path, monkeypatch):
    from collectors.sweep.local import _Collector
    from collectors.sweep.options import CollectOptions

    c = _Collector(CollectOptions(interpret=True))
    c.compile_problems = []
    writer = RunWriter(tmp_path / "run", {})
    with preflight.compile_log(tmp_path / "run" / "logs", "stage5_full-B1-H1-S16-D64-full-fp16") as log:
        os.write(2, b"// -----// IR Dump Before ConvertTritonGPUToLLVM //----- //\nmodule { ... }\n")
        Path(os.environ["TRITON_REPRODUCER_PATH"]).write_text("module { reproducer }")
    assert "TRITON_REPRODUCER_PATH" not in os.environ or os.environ["TRITON_REPRODUCER_PATH"] != str(log.reproducer)
    c._note_compile_log(writer, "stage5_full B1", "failed", "RuntimeError: PassManager::run failed", log)
    (line,) = c.compile_problems
    assert "\n" not in line and "PassManager::run failed" in line and "logs/stage5_full-B1" in line
    assert "IR Dump" in log.log.read_text() and log.reproducer.read_text() == "module { reproducer }"
    with preflight.compile_log(tmp_path / "run" / "logs", "quiet") as quiet:
        pass
    assert quiet.kept() == [] and not quiet.log.exists()  # nothing printed: no file left
    writer.finish("complete")


def test_a_successful_compile_leaves_no_reproducers(tmp_path):
    # With TRITON_REPRODUCER_PATH set, Triton writes `<path>.<pipeline>.repro.mlir` for every pipeline it runs,
    # successful ones too (a seed run on the H200 once kept 33 of them, 1.6 MB): only a failed launch keeps them.
    logs = tmp_path / "logs"
    for failed in (False, True):
        with preflight.compile_log(logs, f"stage5_full-{failed}") as log:
            for stage in ("make_ttir", "make_ttgir", "make_llir"):
                Path(os.environ["TRITON_REPRODUCER_PATH"] + f".{stage}.repro.mlir").write_text("module {}")
        kept = log.kept(failed=failed)
        assert len(kept) == (3 if failed else 0), kept
    assert sorted(p.name for p in logs.iterdir()) == [f"stage5_full-True.mlir.{s}.repro.mlir"
                                                      for s in ("make_llir", "make_ttgir", "make_ttir")]
