"""Packaging: the base install reads runs without torch, triton or nvtx, each extra holds what its commands import,
and a command whose extra is missing says which one in one sentence (pyproject.toml, perfmodel/cli.py).

The runs without torch and triton happen in a child interpreter whose first meta-path finder refuses them, so
that an `import torch` anywhere on those paths fails as it does on a laptop; CI also runs tests/laptop/ in a real
virtual environment without them (.ci/run).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from perfmodel.cli import EXTRAS, NEEDS
from module_imports import run_without

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

GPU_MODULES = ("torch", "triton", "nvtx", "pynvml")


def _run_blocked(code: str, blocked=GPU_MODULES, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_without(code, blocked, ROOT, timeout)


def _cli(argv: list[str], blocked=GPU_MODULES) -> subprocess.CompletedProcess:
    return _run_blocked(f"from perfmodel.cli import main\nsys.exit(main({argv!r}))", blocked)


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name for r in requirements}


def test_base_install_has_no_gpu_or_dashboard_packages():
    assert not _names(PYPROJECT["dependencies"]) & {"torch", "triton", "nvtx", "nvidia-ml-py", "streamlit"}


def test_extras():
    extras = PYPROJECT["optional-dependencies"]
    assert _names(extras["gpu"]) >= {"torch", "triton", "nvtx", "nvidia-ml-py"}
    assert _names(extras["dashboard"]) == {"streamlit"}
    assert Requirement(extras["dashboard"][0]).specifier.contains("1.49")  # st.dataframe(width="stretch")
    assert not Requirement(extras["dashboard"][0]).specifier.contains("1.48")
    assert _names(extras["ncu"]) == {"ncu-report"}
    # the README's test command runs the whole suite after `pip install -e ".[dev]"`
    dev_extras = {e for r in extras["dev"] if Requirement(r).name == PYPROJECT["name"] for e in Requirement(r).extras}
    assert dev_extras == {"gpu", "dashboard", "ncu"}
    # every extra the CLI names when one is missing exists
    assert {extra for extra, _ in NEEDS.values()} | set(EXTRAS) <= set(extras)


def test_triton_pin_holds_the_installed_torch_and_triton():
    """The triton range of the [gpu] extra accepts the triton this torch build pins (CUDA builds on Linux pin
    one release; the CPU wheel pins none) and the triton installed here."""
    pin = next(Requirement(r) for r in PYPROJECT["optional-dependencies"]["gpu"] if Requirement(r).name == "triton")
    try:
        torch_requires = importlib.metadata.requires("torch") or []
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("torch or triton is not installed")
    assert pin.specifier.contains(triton_version, prereleases=True), (triton_version, str(pin))
    for r in map(Requirement, torch_requires):
        if r.name == "triton" and (r.marker is None or r.marker.evaluate()):
            pinned = [s.version for s in r.specifier if s.operator == "=="]
            assert all(pin.specifier.contains(v, prereleases=True) for v in pinned), (str(r), str(pin))


def test_laptop_tests_pass_without_torch_and_triton():
    # tests/laptop/: report, gates, predict, model, runs, compare and every dashboard page on both bundled runs
    proc = _run_blocked("import pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/laptop']))")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_import_of_an_ncu_export_needs_no_gpu_packages(tmp_path):
    data = ROOT / "tests" / "data" / "h100"
    proc = _cli(["import", str(data / "raw.csv"), "--details", str(data / "details.csv"), "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert [p for p in tmp_path.iterdir() if (p / "run.json").is_file()]


@pytest.mark.parametrize("blocked", [("torch", "triton"), ("triton",)])
def test_collect_without_the_gpu_extra_is_one_sentence(blocked, tmp_path):
    proc = _cli(["collect", "--interpret", "--out", str(tmp_path)], blocked)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"perfmodel: error: `perfmodel collect` needs the [gpu] extra ({', '.join(blocked)} not installed): "
        f"pip install 'perfmodel[gpu]' (from a clone: pip install -e '.[gpu]')."]


def test_dashboard_without_its_extra_is_one_sentence():
    proc = _cli(["dashboard", "--port", "1"], blocked=("streamlit",))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "perfmodel: error: `perfmodel dashboard` needs the [dashboard] extra (streamlit not installed): "
        "pip install 'perfmodel[dashboard]' (from a clone: pip install -e '.[dashboard]')."]


def test_a_gpu_module_missing_mid_command_is_one_sentence():
    # nvtx is not checked before `collect` starts (only its Nsight Compute worker needs it): its import failing
    # later names the extra too
    proc = _run_blocked("from perfmodel import cli\n"
                        "import perfmodel.commands.runs as r\n"
                        "def boom(args):\n    import nvtx\n"
                        "r.run = boom\nsys.exit(cli.main(['runs']))", blocked=("nvtx",))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "perfmodel: error: `perfmodel runs` needs the [gpu] extra (nvtx not installed): "
        "pip install 'perfmodel[gpu]' (from a clone: pip install -e '.[gpu]')."]
