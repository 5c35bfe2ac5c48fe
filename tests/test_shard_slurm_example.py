"""The Slurm example (examples/slurm/collect_array.sbatch) and the README's copy of it: every perfmodel command
line in them parses with the real argument parser, so a copied script does not fail in the queue."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from perfmodel.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "slurm" / "collect_array.sbatch"
VALUES = {"SUITE": "fa3-grid", "SHARDS": "4", "OUT": "runs/fa3-grid-shards", "SLURM_ARRAY_TASK_ID": "3"}


def _expand(line: str) -> str:
    """The shell's expansions these scripts use: ${VAR:-default}, $VAR, $((VAR + 1)), "$OUT"/*/ globs."""
    line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: VALUES.get(m.group(1), m.group(2)), line)
    line = re.sub(r"\$\(\((\w+) ?\+ ?1\)\)", lambda m: str(int(VALUES.get(m.group(1), "0")) + 1), line)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VALUES.get(m.group(1), m.group(1).lower()), line.replace('"', ""))


def _perfmodel_lines(text: str) -> list[list[str]]:
    lines = []
    for raw in text.replace("\\\n", " ").splitlines():
        if raw.lstrip().startswith("#"):
            continue
        raw = re.sub(r"\$\{\w+\[@\]\}", "", raw).replace('"', "")  # bash arrays (the options they hold: above)
        for m in re.finditer(r"perfmodel (collect|merge)[^\n;]*", raw):
            lines.append(shlex.split(_expand(m.group(0)), comments=True)[1:])
    return lines


def test_the_sbatch_script_runs_one_shard_per_task_then_merges():
    lines = _perfmodel_lines(SCRIPT.read_text())
    assert [a[0] for a in lines] == ["merge", "collect"]
    parser = build_parser()
    merge, collect = (parser.parse_args(a) for a in lines)
    assert collect.shard == "4/4" and collect.suite == "fa3-grid" and collect.out == "runs/fa3-grid-shards"
    assert merge.shards == ["runs/fa3-grid-shards/*/"] and merge.out == "runs/fa3-grid-merged"
    assert "--dependency=afterok:" in SCRIPT.read_text()


@pytest.mark.parametrize("source", ["README.md", "scripts/device_shard_check.sh"])
def test_every_perfmodel_line_of_the_docs_parses(source):
    text = (ROOT / source).read_text()
    if source.endswith(".md"):  # the README's shell blocks only, not its prose
        text = "\n".join(re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S))
    lines = _perfmodel_lines(text)
    assert any(a[0] == "merge" for a in lines) and any("--shard" in " ".join(a) for a in lines)
    parser = build_parser()
    for args in lines:
        if "--shard" in args or args[0] == "merge" or "--devices" in args:
            parser.parse_args([a for a in args if not a.startswith("$")])
