"""Shared pytest markers and fixtures.

- `@pytest.mark.interpreter`: the test runs Triton kernels on the CPU. Triton decides when a function is decorated
  (its own `triton.language` helpers included, at `import triton`) whether `@triton.jit` builds a GPU kernel or
  an interpreted one, so the fixture sets TRITON_INTERPRET=1 with monkeypatch and swaps in a second copy of the
  triton Python package and of the kernel modules, imported once under that setting (the compiled extension
  `triton._C` is shared); the GPU copies (used e.g. by the sm_90 census, which compiles without a GPU) are put
  back after the test.
- `@pytest.mark.gpu`: skipped unless torch sees a CUDA device.
- Stage 5 tunes on its first call with a key; in ordinary tests its config is pinned to one candidate (as
  attention-gym's conftest pins autotuning), tests that exercise the tuner itself use `unpinned_stage5`.
"""

from __future__ import annotations

import importlib
import sys

import pytest

# every kernels module that imports triton at import time (a Gluon module left from an interpreted import would
# hand the GPU copies another copy's TensorDescriptor class, which Triton's launcher cannot specialize)
KERNEL_MODULES = ("kernels._gluon", "kernels.stage0_baseline", "kernels.stage1_warpspec",
                  "kernels.stage2_reduced_sync", "kernels.stage3_persistent", "kernels.stage4_overlap",
                  "kernels.stage5_full", "kernels.triton_tl")

# The interpreted copies of triton's Python modules and of the kernel modules, imported once per session.
_INTERPRETED: dict[str, object] = {}


def _interpretable_names() -> list[str]:
    """sys.modules entries that must be re-imported under TRITON_INTERPRET=1."""
    names = [n for n in sys.modules
             if (n == "triton" or n.startswith("triton.")) and not n.startswith("triton._C")]
    return names + [n for n in KERNEL_MODULES if n in sys.modules]


def _swap_in(modules: dict[str, object]) -> dict[str, object]:
    """Put `modules` into sys.modules (kernel modules also on the kernels package); return what was there."""
    import kernels

    previous = {}
    for name, module in modules.items():
        previous[name] = sys.modules.get(name)
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
        if name.startswith("kernels."):
            short = name.rsplit(".", 1)[1]
            if module is None:
                if hasattr(kernels, short):
                    delattr(kernels, short)
            else:
                setattr(kernels, short, module)
    return previous


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # torch missing or broken: nothing GPU-marked can run
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


def _bind_gluon_descriptor_class() -> None:
    """Have Triton's launcher look up Gluon's TensorDescriptor class now, in the GPU copy of triton.

    Triton's C++ argument specializer finds that class by module name the first time it meets one and keeps it; the
    interpreter also specializes arguments, so a first lookup under the interpreted copy would make every later
    sm_90 compile of a Gluon stage fail ("failed to specialize argument of type: TensorDescriptor")."""
    import torch
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import native_specialize_impl

    from kernels._gluon import descriptor

    native_specialize_impl(BaseBackend, descriptor(torch.empty(1, 1, 16, 64, dtype=torch.float16), 16), False, True,
                           True)


@pytest.fixture(autouse=True)
def _kernel_mode(request, monkeypatch):
    """Interpreter tests get interpreted kernel modules; every test gets stage 5 pinned unless it opts out."""
    interpret = request.node.get_closest_marker("interpreter") is not None
    previous = None
    if interpret:
        if not _INTERPRETED:
            # the GPU copies first, so that every triton module they use (Gluon's included) is put back after the
            # interpreted import: Triton's launcher looks Gluon's TensorDescriptor class up by module name
            for name in KERNEL_MODULES:
                importlib.import_module(name)
            _bind_gluon_descriptor_class()
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        if not _INTERPRETED:
            saved = _swap_in({name: None for name in _interpretable_names() + list(KERNEL_MODULES)})
            try:
                for name in KERNEL_MODULES:
                    importlib.import_module(name)
                _INTERPRETED.update({name: sys.modules[name] for name in _interpretable_names()})
            finally:
                # drop what the interpreted import added, then put the GPU copies back
                _swap_in({name: None for name in _interpretable_names()})
                _swap_in(saved)
        previous = _swap_in(dict(_INTERPRETED))
    if "unpinned_stage5" not in request.fixturenames:
        for name in ("kernels.stage5_full", "kernels.triton_tl"):
            tuning = importlib.import_module(name)
            monkeypatch.setattr(tuning, "PINNED_CONFIG", tuning.Config())
    yield
    if previous is not None:
        _swap_in(previous)


@pytest.fixture
def unpinned_stage5(monkeypatch):
    """Stage 5 with its tuner active (its tuner's state cleared before the test and restored after it)."""
    import copy

    stage5 = importlib.import_module("kernels.stage5_full")
    monkeypatch.setattr(stage5, "PINNED_CONFIG", None)
    saved = copy.copy(stage5.TUNER.__dict__)
    for name in ("tuned", "timings", "skipped", "retimed"):
        setattr(stage5.TUNER, name, {})
    stage5.TUNER.last_run = []
    yield stage5
    stage5.TUNER.__dict__.update(saved)
