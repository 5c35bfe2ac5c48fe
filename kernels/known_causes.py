"""Known causes of a kernel's failure on a machine without a GPU, each said in one sentence naming the fix.

A kernel file written for the GPU (Triton's own fused-attention tutorial is one) meets `perfmodel collect
--interpret` with a few habits that only a GPU answers, and Triton or torch then say something that does not name
the habit. `known_cause(exc, name, importing)` turns those into one sentence naming the implementation, the line
of the user's file that did it and the fix, or gives None for anything else (the caller keeps its own message):

    a GPU-driver query       `triton.runtime.driver.active...` raises "0 active drivers": when the module is
                             imported (`importing`: the file registry.load was importing), or when it is called
    torch.cuda without CUDA  "Torch not compiled with CUDA enabled" (a CPU torch), "Found no NVIDIA driver",
                             "No CUDA GPUs are available", at import or at a call
    @triton.autotune         several configs: the autotuner benchmarks them, which needs a GPU (its frame is in
                             the traceback); under --interpret one config must be pinned

kernels.user_kernels.load uses it for an import, collectors.timing.failures.case_error for a call and the census for its
compile. Nothing here imports torch or triton.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from pathlib import Path

_NO_DRIVER = re.compile(r"\b0 active drivers\b")
_NO_CUDA = re.compile(r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|No CUDA GPUs are available")
_AUTOTUNER_FILE = os.path.join("triton", "runtime", "autotuner.py")
_TOOLKIT = Path(__file__).resolve().parent.parent  # this repository (or install): its own frames are not the user's
_TOOLKIT_DIRS = tuple(str(_TOOLKIT / d) + os.sep for d in ("kernels", "collectors", "perfmodel"))


def _raw(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _frames(exc: BaseException):
    tb = exc.__traceback__
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _library_dirs() -> tuple[str, ...]:
    """Folders whose frames are libraries, not the user's: triton's, torch's and the standard library's."""
    dirs = [os.path.dirname(os.__file__) + os.sep]
    for name in ("triton", "torch"):
        module = sys.modules.get(name)
        if getattr(module, "__file__", None):
            dirs.append(os.path.dirname(module.__file__) + os.sep)
    return tuple(dirs)


def _is_users(filename: str, libraries: tuple[str, ...]) -> bool:
    if filename.startswith("<") or filename.startswith(_TOOLKIT_DIRS):
        return False
    stdlib, *packages = libraries
    if any(filename.startswith(d) for d in packages):
        return False
    return not (filename.startswith(stdlib) and "-packages" not in filename[len(stdlib):])


def user_frame(exc: BaseException) -> tuple[str, int, str] | None:
    """(file, line, its code) of the innermost frame of `exc`'s traceback in the user's code (not triton's, torch's,
    the standard library's or this toolkit's), or None."""
    libraries = _library_dirs()
    found = None
    for frame, lineno in _frames(exc):
        if _is_users(frame.f_code.co_filename, libraries):
            found = (frame.f_code.co_filename, lineno)
    if found is None:
        return None
    code = linecache.getline(*found).strip()
    return found[0], found[1], code if len(code) <= 90 else code[:87] + "..."


def _autotuner(exc: BaseException):
    """The triton Autotuner whose benchmarking raised `exc`, or None."""
    for frame, _ in _frames(exc):
        if frame.f_code.co_filename.endswith(_AUTOTUNER_FILE):
            tuner = frame.f_locals.get("self")
            if len(getattr(tuner, "configs", ()) or ()) > 1:
                return tuner
    return None


def known_cause(exc: BaseException, name: str, importing: str | os.PathLike | None = None) -> str | None:
    """One sentence for a failure of implementation `name` whose cause is known (see the module docstring), or
    None. `importing`: the module file being imported when `exc` was raised (None: the kernel was called)."""
    text = str(exc)
    no_driver, no_cuda = bool(_NO_DRIVER.search(text)), bool(_NO_CUDA.search(text))
    if not (no_driver or no_cuda):
        return None
    raw = _raw(exc)
    tuner = _autotuner(exc)
    if tuner is not None:
        kernel = getattr(getattr(tuner, "base_fn", None), "__name__", None) or "its kernel"
        return (f"{name}: @triton.autotune of {kernel} has {len(tuner.configs)} configs and benchmarks them on "
                f"a GPU, and there is none here ({raw}); under --interpret pin one config (e.g. `configs[:1]` "
                "when `not torch.cuda.is_available()`).")
    if no_driver:
        asks, why = "queries the GPU driver", "this machine has no GPU driver (--interpret runs without one)"
        fix = ("move that query into the function" if importing else
               "skip that query when `not torch.cuda.is_available()`")
    else:
        asks, why = "calls torch.cuda", "this torch has no GPU to answer (--interpret runs on the CPU)"
        fix = ("move that call into the function, behind `torch.cuda.is_available()`" if importing else
               "guard it with `torch.cuda.is_available()`")
    frame = user_frame(exc)
    if importing:
        file = Path(frame[0] if frame else importing).name
        line = (f"line {frame[1]}" + (f": `{frame[2]}`" if frame[2] else "") + "; ") if frame else ""
        return f"{name}: {file} {asks} when it is imported ({line}{raw}), and {why}: {fix}."
    at = (f" {Path(frame[0]).name}:{frame[1]}" + (f" (`{frame[2]}`)" if frame[2] else "")) if frame else ""
    return f"{name}:{at} {asks} ({raw}), and {why}: {fix}."
