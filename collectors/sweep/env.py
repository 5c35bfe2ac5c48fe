"""The environment a run was measured in, for run.json.

Every field is read from the machine (torch, triton, nvidia-smi or NVML, git, ncu); a field that cannot be read is
None and `missing[field]` says why. Nothing is filled in from a datasheet or a guess.

`kernels_hash` names the kernel code a run measured without git: a hash of the installed `kernels` package's
sources (kernels.source.kernels_code), so a report, the dashboard or `perfmodel runs` can say, on a laptop install too, whether a
run's stage figures are of the kernels installed there (perfmodel.runs.kernel_code).

The GPU's state while the timings run (clocks, power, temperature, throttle reasons) is sampled by
collectors/timing/gpu_state.py; its nvidia-smi query (`nvidia_smi_query`) gives the driver version here too.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from collectors.timing.gpu_state import nvidia_smi_query, smi_device
from kernels.source import COLLECTED_KERNELS_SOURCE, kernels_code

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], timeout: float = 20, cwd: str | os.PathLike | None = None) -> tuple[int, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except (OSError, subprocess.SubprocessError) as e:
        return -1, str(e)
    return out.returncode, out.stdout.strip() or out.stderr.strip()


def _carried_git_state() -> dict | None:
    """The commit a copy of the tree was made from (e.g. a tree sent to a lent GPU machine): PERFMODEL_GIT_COMMIT
    and PERFMODEL_GIT_DIRTY (0/1), set by whoever made the copy from its checkout. When set they win over the
    copy's own .git, which may be a stale snapshot (a lent machine's copy carried one two commits old, so its runs
    said "4cbef4e, dirty" for code committed as c865a86, 2026-11-27)."""
    commit = os.environ.get("PERFMODEL_GIT_COMMIT", "").strip()
    if not commit:
        return None
    dirty = os.environ.get("PERFMODEL_GIT_DIRTY", "").strip()
    return {"git_commit": commit, "git_dirty": None if dirty == "" else dirty not in ("0", "false", "no")}


def git_state(root: str | os.PathLike = PROJECT_ROOT) -> tuple[dict, dict]:
    """({git_commit, git_dirty}, missing reasons)."""
    values = {"git_commit": None, "git_dirty": None}
    missing = {}
    carried = _carried_git_state()
    if carried is not None:
        return carried, ({} if carried["git_dirty"] is not None else {"git_dirty": "not given with the copy"})
    rc, out = _run(["git", "rev-parse", "HEAD"], cwd=root) if shutil.which("git") else (-1, "")
    if rc != 0:
        why = "git is not installed" if shutil.which("git") is None else "the project folder is not a git checkout"
        missing["git_commit"] = missing["git_dirty"] = why + " (and PERFMODEL_GIT_COMMIT is not set)"
        return values, missing
    values["git_commit"] = out
    rc, out = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    if rc == 0:
        values["git_dirty"] = bool(out.strip())
    else:
        missing["git_dirty"] = f"git status failed: {out[:200]}"
    return values, missing


def gpu_info() -> tuple[dict, dict]:
    values: dict = {k: None for k in ("gpu_name", "sm_count", "compute_capability", "gpu_memory_gb", "l2_bytes",
                                      "driver_version", "cuda_version")}
    missing: dict = {}
    try:
        import torch
    except ImportError:
        for k in values:
            missing[k] = "torch is not installed"
        return values, missing
    values["cuda_version"] = torch.version.cuda
    if torch.version.cuda is None:
        missing["cuda_version"] = "this torch build has no CUDA"
    if not torch.cuda.is_available():
        for k in ("gpu_name", "sm_count", "compute_capability", "gpu_memory_gb", "l2_bytes", "driver_version"):
            missing[k] = "no CUDA GPU is visible to torch"
        return values, missing
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    values["gpu_name"] = props.name
    values["sm_count"] = props.multi_processor_count
    values["compute_capability"] = f"{props.major}.{props.minor}"
    values["gpu_memory_gb"] = round(props.total_memory / 1e9, 2)
    l2 = getattr(props, "L2_cache_size", None)
    values["l2_bytes"] = int(l2) if l2 else None
    if not l2:
        missing["l2_bytes"] = "torch does not report the L2 size"
    row, why = nvidia_smi_query("driver_version", smi_device())
    if row is None:
        row, why = nvidia_smi_query("driver_version", None)
    if row:
        values["driver_version"] = row[0]
    else:
        missing["driver_version"] = why
    return values, missing


def software_versions() -> tuple[dict, dict]:
    values: dict = {"python_version": platform.python_version()}
    missing: dict = {}
    from importlib.metadata import PackageNotFoundError, version

    for name, key in (("torch", "torch_version"), ("triton", "triton_version"), ("numpy", "numpy_version"),
                      ("pandas", "pandas_version"), ("pyarrow", "pyarrow_version"), ("nvtx", "nvtx_version")):
        try:
            values[key] = version(name)
        except PackageNotFoundError:
            values[key] = None
            missing[key] = f"{name} is not installed"
    values["cudnn_version"] = None
    try:
        import torch

        if torch.backends.cudnn.is_available():
            values["cudnn_version"] = torch.backends.cudnn.version()
        else:
            missing["cudnn_version"] = "cuDNN is not available in this torch build"
    except ImportError:
        missing["cudnn_version"] = "torch is not installed"
    return values, missing


def collect_environment(command_line: list[str] | None = None, ncu_path: str | os.PathLike | None = None,
                        ncu_version: str | None = None, ncu_reason: str | None = None) -> dict:
    """Everything run.json's `environment` holds; `missing` maps each None field to its reason."""
    env: dict = {}
    missing: dict = {}
    for part in (gpu_info(), software_versions(), git_state()):
        env.update(part[0])
        missing.update(part[1])
    code = kernels_code()  # kernels/source.py
    env["kernels_hash"] = code["kernels_hash"]
    env["kernels_files"] = code.get("kernels_files")
    env["kernels_hash_source"] = COLLECTED_KERNELS_SOURCE
    if code["kernels_hash"] is None:
        missing["kernels_hash"] = code["why"]
    env["ncu_path"] = str(ncu_path) if ncu_path else None
    env["ncu_version"] = ncu_version
    if ncu_version is None:
        missing["ncu_version"] = ncu_reason or ("ncu --version gave no version" if ncu_path else "ncu not found")
    if not ncu_path:
        missing["ncu_path"] = ncu_reason or "ncu not found"
    env["host"] = socket.gethostname()
    env["platform"] = platform.platform()
    env["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    argv = list(sys.argv if command_line is None else command_line)
    env["command_line"] = " ".join(shlex.quote(a) for a in argv)
    env["triton_interpret"] = os.environ.get("TRITON_INTERPRET")
    env["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    env["missing"] = missing
    return env


def package_version() -> str | None:
    """This toolkit's installed version (merge refuses shards of different versions), None when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("perfmodel")
    except PackageNotFoundError:
        return None
