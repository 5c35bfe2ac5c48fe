"""A stand-in for Triton's CUDA driver on a machine without a GPU: the JIT compiles for sm_90 as it would on an
H100, binds and specializes the arguments, and the launcher's Python wrapper encodes the tensor descriptors, but the
driver calls (loading the cubin, encoding a tensor map, launching) do nothing. What runs is exactly the host path a
call of a Gluon stage takes in Python, which is what the launch-path tests and benchmark measure
(tests/test_fastlaunch.py, scripts/bench_launch_path.py).

Use it as a context manager around calls of a stage on CPU tensors:

    with stub_cuda_driver() as launches:
        stage1_warpspec.attention(q, k, v, causal=True)
    launches  # one entry per kernel launch: (grid, every argument the C launcher got)
"""

from __future__ import annotations

import contextlib

from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.driver import CudaLauncher, wrap_handle_tensordesc
from triton.runtime import driver

H100_SHARED_BYTES = 232448  # cudaDevAttrMaxSharedMemoryPerBlockOptin on sm_90 (227 KiB)
# The device index the stub reports: no real GPU has it, so the JIT's per-device kernel caches and the stages'
# prepared launches made here never answer a real device's call in the same process.
STUB_DEVICE = 1000


class _Utils:
    def __init__(self, launches):
        self.launches = launches

    def fill_tma_descriptor(self, *args):
        return ("CUtensorMap", args[0])  # the stand-in for cuTensorMapEncodeTiled's result

    def load_binary(self, name, kernel, shared, device):
        return 1, 1, 128, 0, 1024  # module, function, registers, spills, max threads

    def get_device_properties(self, device):
        return {"max_shared_mem": H100_SHARED_BYTES, "multiprocessor_count": 132}


# The launches of the stub driver active now: a compiled kernel keeps the launcher it was first loaded with, across
# stub_cuda_driver blocks, so its recorder appends to whichever block is running.
_RECORDING: list[list] = []


class _Launcher(CudaLauncher):
    """Triton's CudaLauncher with its compiled C module replaced by a recorder."""

    def __init__(self, src, metadata):
        constants = src.constants if hasattr(src, "constants") else dict()
        signature = dict(src.signature.items())
        del constants

        def c_launch(*args):  # as the C launcher: the enter and exit hooks, when given, with the launch metadata
            if args[11] is not None:
                args[11](args[10])
            _RECORDING[-1].append((args[:3], args))
            if args[12] is not None:
                args[12](args[10])

        self.num_ctas = getattr(metadata, "num_ctas", 1)
        self.launch = wrap_handle_tensordesc(c_launch, signature, getattr(metadata, "tensordesc_meta", None))
        self.global_scratch_size = metadata.global_scratch_size
        self.global_scratch_align = metadata.global_scratch_align
        self.profile_scratch_size = metadata.profile_scratch_size
        self.profile_scratch_align = metadata.profile_scratch_align
        self.launch_cooperative_grid = metadata.launch_cooperative_grid
        self.launch_pdl = metadata.launch_pdl


class StubDriver:
    def __init__(self):
        self.launches: list = []
        self.utils = _Utils(self.launches)

    def is_active(self):
        return True

    def get_current_device(self):
        return STUB_DEVICE

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_device_capability(self, device=None):
        return (9, 0)

    def launcher_cls(self, src, metadata):
        return _Launcher(src, metadata)

    def get_active_torch_device(self):
        import torch

        return torch.device("cpu")


@contextlib.contextmanager
def stub_cuda_driver():
    """Triton's active driver replaced by StubDriver for the block; yields its list of launches."""
    stub = StubDriver()
    previous = driver._active
    driver.set_active(stub)
    _RECORDING.append(stub.launches)
    try:
        yield stub.launches
    finally:
        _RECORDING.pop()
        driver._active = previous
