"""TRITON_INTERPRET=1 in the shell (common while developing Triton kernels on a CPU) changes nothing a command says
or how long it takes (issue 21, item 1).

Triton decides when a function is decorated whether `@triton.jit` builds a GPU kernel or an interpreted one, so a
process that imported the kernels with the variable set could not compile them for sm_90: the predictive model
beside every stage of `perfmodel report` ran stage 0 in the interpreter at the seed config's full size instead
(past 5 minutes). The commands run in child processes here, each with its own empty user mix cache
(perfmodel/model/mix_cache.py: the second cannot read what the first compiled), under a limit far below that hang: three
times the same command without the variable, plus a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT_MD = "report.md"
COMMANDS = {
    "report": ["report", "--format", "md", "--out", REPORT_MD],  # the bundled run, with the predictive model
    "gates": ["gates"],
    "predict": ["predict"],
}


def _env(tmp_path: Path, interpret: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PERFMODEL_CACHE_DIR"] = str(tmp_path / "cache")  # empty: this command compiles what it needs
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return env


def _perfmodel(args: list[str], tmp_path: Path, interpret: bool, timeout_s: float | None = None):
    """(exit status, stdout, stderr, the report it wrote or None, seconds) of `python -m perfmodel ARGS`."""
    tmp_path.mkdir(parents=True)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "perfmodel", *args], cwd=tmp_path, env=_env(tmp_path, interpret),
                          capture_output=True, text=True, timeout=timeout_s)
    seconds = time.monotonic() - start
    report = tmp_path / REPORT_MD
    return proc.returncode, proc.stdout, proc.stderr, report.read_text() if report.is_file() else None, seconds


def _comparable(result) -> tuple:
    """What must not change: the exit status, the report, and the output (the line saying where the report went
    gives its own wall time, which is not an answer)."""
    code, out, err, report, _ = result
    out = "\n".join(line for line in out.splitlines() if not line.startswith(f"wrote {REPORT_MD} "))
    return code, out, err, report


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_answers_the_same_with_triton_interpret_set(command, tmp_path):
    plain = _perfmodel(COMMANDS[command], tmp_path / "plain", interpret=False)
    limit_s = 3 * plain[-1] + 60
    try:
        interpreted = _perfmodel(COMMANDS[command], tmp_path / "interpret", interpret=True, timeout_s=limit_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"perfmodel {command} with TRITON_INTERPRET=1 ran past {limit_s:.0f} s "
                    f"(without it: {plain[-1]:.1f} s)")
    if command == "report":
        assert plain[0] == 0 and plain[3], plain[2]
        assert "model ms" in plain[3]  # the report has the model's column
    assert _comparable(interpreted) == _comparable(plain)


def test_a_command_runs_without_the_variable_and_gives_it_back(monkeypatch):
    """The command (and any child it starts) sees no TRITON_INTERPRET; the caller's environment is restored."""
    from perfmodel import cli
    from perfmodel.commands import predict

    seen = []
    monkeypatch.setattr(predict, "run", lambda args: seen.append(os.environ.get("TRITON_INTERPRET")) or 0)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert cli.main(["predict"]) == 0
    assert seen == [None] and os.environ["TRITON_INTERPRET"] == "1"


def test_the_census_refuses_an_interpreted_kernel_at_once(tmp_path):
    """A process that imported the kernels under the interpreter (a notebook, the Python API) gets a census that
    says why it cannot compile stage 0, in seconds, instead of stage 0 run on the CPU at the seed config."""
    code = textwrap.dedent("""
        from collectors.census.census import census
        from perfmodel.model.instruction_mix import MixError, instruction_mix
        from kernels.suites import SEED

        result = census("stage0_baseline", SEED)
        print(result.status, result.error)
        try:
            instruction_mix("stage0_baseline", SEED)
        except MixError as exc:
            print("MixError", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(tmp_path, interpret=True),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    census_line, mix_line = proc.stdout.strip().splitlines()[-2:]
    assert census_line.startswith("failed _attn_fwd was built by Triton's CPU interpreter")
    assert "TRITON_INTERPRET" in census_line and "TRITON_INTERPRET" in mix_line
    assert mix_line.startswith("MixError stage0_baseline at B16-H16-S2048-D64-causal-fp16: InterpretedKernel")
