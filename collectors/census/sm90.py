"""A stage's launcher compiled for sm_90 on a machine without a GPU: its launches captured, each compiled as
Triton would on an H100, and what the compiled kernel holds read from its cubin and `ptxas -v`.

How a stage is compiled without a GPU: the stage's own launcher is called on CPU tensors of the config's shape
with Triton's launch path intercepted (`capture_launches`), so the census compiles exactly the kernel, argument
specialization, constexprs, options and grid the launcher would use; the captured call is then bound and
compiled with `triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))` (a `GluonASTSource` for the
Gluon stages), the route `JITFunction.run` takes on a real H100 (`compile_launch`). A persistent launcher that sizes
its grid from the compiled kernel's occupancy gets the sm_90 build and the per-SM limits of compute capability 9.0
(`sm90_programs_per_sm`). Stage 5 tunes on the GPU (its own tuner, no `triton.autotune`); nothing can be timed
here, so the capture pins it (`PINNED_CONFIG`) to the config a run timed (`tuned_config`, the run's report of its
tuner's choice), else to the config its tuner chose for this config in this process (`tuned_config_for(config)`,
when a GPU run tuned before its census), or else to the module's stated census default (`CENSUS_CONFIG(config)`,
stage 4's config for the Gluon stage 5). A compile that fails keeps in its error the line of Triton's output that
says which pass failed and at which line of the kernel's source (`compiler_diagnosis`).

A `tl` kernel decorated while TRITON_INTERPRET=1 was set is an interpreted function, not a JITFunction: there is
nothing to compile, and its launch would run the kernel on the CPU at the config's full size. The capture refuses
such a launch at once (`InterpretedKernel`); the perfmodel command line never imports Triton that way
(perfmodel/cli.py `without_interpreter`).

`kernel_facts(compiled)`: PTX counts and loops (collectors/census/ptx.py), the cubin's resources (`cuobjdump
-res-usage`) and the spill bytes `ptxas -v` reports, read once per compiled kernel (by Triton's hash).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernels.hardware import DEFAULT_GPU, GPUS
from kernels.workload import AttentionConfig, torch_dtype

from collectors.census.ptx import count_ptx, ptx_loops

# Hopper: compute capability 9.0, 32 threads a warp.
SM90 = ("cuda", 90, 32)
# The sm_90 part the census compiles for and counts occupancy on: the hardware table's H100 SXM5 (kernels/hardware.py).
CENSUS_GPU = GPUS[DEFAULT_GPU]
H100_SM_COUNT = CENSUS_GPU.sm_count


# ---- occupancy on the H100 without the H100 -------------------------------------------------------------------
# Per-SM limits of compute capability 9.0, from the hardware table (kernels/hardware.py, which cites the CUDA C++
# Programming Guide): registers, shared memory, resident threads, the 1 KB the driver reserves per resident block.
SM90_REGS_PER_SM = CENSUS_GPU.regs_per_sm
SM90_SHARED_PER_SM = int(CENSUS_GPU.smem_per_sm_kb * 1024)
SM90_THREADS_PER_SM = CENSUS_GPU.threads_per_sm
SM90_SHARED_RESERVED_PER_PROGRAM = int(CENSUS_GPU.smem_reserved_per_program_kb * 1024)


class Sm90Kernel:
    """A kernel compiled for sm_90 here, exposing what launchers read from a CompiledKernel (metadata, n_regs,
    n_spills) without loading it on a GPU."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.metadata = compiled.metadata
        self.asm = compiled.asm
        facts = kernel_facts(compiled)
        self.n_regs = facts.resources.get("REG", 0)
        self.n_spills = facts.spills_bytes

    def _init_handles(self) -> None:  # nothing to load: there is no GPU
        return None


def sm90_programs_per_sm(kernel) -> int:
    """Programs of `kernel` resident on one sm_90 SM at once, limited by registers, shared memory and threads.

    The same rule the persistent stages apply on the GPU (kernels/stage3_persistent.py `programs_per_sm`), with
    the per-SM limits of compute capability 9.0 in place of the device's properties.
    """
    threads = 32 * int(kernel.metadata.num_warps)
    by_regs = SM90_REGS_PER_SM // (max(1, kernel.n_regs) * threads)
    by_smem = SM90_SHARED_PER_SM // (max(1, int(kernel.metadata.shared)) + SM90_SHARED_RESERVED_PER_PROGRAM)
    by_threads = SM90_THREADS_PER_SM // threads
    return max(1, min(by_regs, by_smem, by_threads))


# ---- intercepting a launcher ----------------------------------------------------------------------------------
@dataclass
class Launch:
    fn: object  # the JITFunction
    grid: object
    args: tuple
    kwargs: dict


class InterpretedKernel(RuntimeError):
    """The launcher launched a kernel that Triton's interpreter built (TRITON_INTERPRET=1 was set when it was
    decorated): there is no GPU kernel to compile for sm_90."""


@contextlib.contextmanager
def capture_launches(stage_module, sm_count: int, config: AttentionConfig, tuned_config: str | None = None):
    """Within the block, Triton launches record themselves in the yielded list instead of running.

    The launcher runs on CPU tensors: its input check is told it runs under the interpreter (so CPU inputs are
    accepted) while the stage module itself is told it does not (so it picks its GPU path), and the SM count is
    `sm_count`. A launch of an interpreted function raises InterpretedKernel instead of running on the CPU.
    """
    from triton.runtime.jit import JITFunction

    import kernels._launch as launch_mod

    launches: list[Launch] = []

    def jit_run(self, *args, grid, warmup, **kwargs):
        if warmup:
            # A launcher that compiles ahead (`kernel.warmup(...)`) to size a persistent grid gets the sm_90 build.
            compiled, _ = compile_launch(Launch(self, grid, args, kwargs))
            return Sm90Kernel(compiled)
        launches.append(Launch(self, grid, args, kwargs))
        return None

    def interpreted_run(self, *args, grid, warmup, **kwargs):
        raise InterpretedKernel(
            f"{self.__name__} was built by Triton's CPU interpreter (this process imported it with "
            "TRITON_INTERPRET=1), so there is no kernel to compile for sm_90; start the process without "
            "TRITON_INTERPRET (the perfmodel command line always does).")

    patches = [
        (JITFunction, "run", jit_run),
        (launch_mod, "interpreting", lambda: True),
        (launch_mod, "sm_count", lambda device: sm_count),
    ]
    # Triton imports its interpreter only when it decorates a function under TRITON_INTERPRET=1.
    interpreter = sys.modules.get("triton.runtime.interpreter")
    if interpreter is not None:
        patches.append((interpreter.InterpretedFunction, "run", interpreted_run))
    if callable(getattr(stage_module, "programs_per_sm", None)):
        patches.append((stage_module, "programs_per_sm", lambda kernel, device: sm90_programs_per_sm(kernel)))
    if isinstance(getattr(stage_module, "_OCCUPANCY", None), dict):
        patches.append((stage_module, "_OCCUPANCY", {}))  # never mix H100 occupancies into the module's cache
    if hasattr(stage_module, "PINNED_CONFIG") and callable(getattr(stage_module, "CENSUS_CONFIG", None)):
        # A tuned stage cannot tune here (nothing runs): compile the config its tuner chose for this config in this
        # process (a GPU run tunes before its census), else the module's stated default for the census.
        parse = getattr(stage_module, "config_from_report", lambda text: None)
        tuned = parse(tuned_config) or getattr(stage_module, "tuned_config_for", lambda c: None)(config)
        patches.append((stage_module, "PINNED_CONFIG", tuned or stage_module.CENSUS_CONFIG(config)))
    if hasattr(stage_module, "interpreting"):
        patches.append((stage_module, "interpreting", lambda: False))
    if hasattr(stage_module, "sm_count"):
        patches.append((stage_module, "sm_count", lambda device: sm_count))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield launches
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def capture(stage_module, config: AttentionConfig, sm_count: int, tuned_config: str | None = None) -> list[Launch]:
    """The Triton launches `stage_module.attention` makes for `config`, without running anything."""
    import torch

    dtype = torch_dtype(config.dtype)
    q, k, v = (torch.empty(config.B, config.H, config.S, config.D, dtype=dtype) for _ in range(3))
    with capture_launches(stage_module, sm_count, config, tuned_config) as launches:
        try:
            stage_module.attention(q, k, v, causal=config.causal)
        except Exception:
            # Nothing ran, so a launcher that reads its (never written) output may fail after the launch it made;
            # what was captured up to there is the census. Without any launch the error is the result.
            if not launches:
                raise
    if not launches:
        raise NoTritonLaunch(f"{stage_module.__name__}.attention made no Triton launch for {config.id}.")
    return launches


# ---- compiling for sm_90 --------------------------------------------------------------------------------------
def compile_launch(launch: Launch):
    """Compile one captured launch for sm_90; returns (compiled kernel, bound arguments)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.compiler import compile as triton_compile
    from triton.runtime.jit import create_function_from_signature

    fn = launch.fn
    target = GPUTarget(*SM90)
    backend = make_backend(target)
    kwargs = dict(launch.kwargs)
    kwargs.setdefault("debug", False)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    # a Gluon kernel (GluonJITFunction) builds its IR from a GluonASTSource, as its own `run` does on a GPU
    source = getattr(fn, "ASTSource", None) or ASTSource
    if getattr(fn, "is_gluon", lambda: False)():
        from triton.experimental.gluon._runtime import GluonASTSource as source
    compiled = triton_compile(source(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    return compiled, bound_args


# MLIR's note on a failed pass pipeline, with the kernel source location it failed at: "<file>:<line>:<col>: note:
# Pipeline failed while executing [`TritonGPUPipeline` on 'builtin.module' operation]: reproducer generated at ..."
# (without the brackets when TRITON_REPRODUCER_PATH is set, as collectors.sweep.preflight.compile_log sets it).
_PIPELINE_FAILED = re.compile(r"^(?:(?P<file>[^\s:][^:\n]*):(?P<line>\d+):\d+: )?(?:note: )?Pipeline failed while "
                              r"executing \[?`?(?P<pass>[A-Za-z0-9_:.-]+)", re.MULTILINE)
_GENERIC_ERROR = "Failures have been detected while processing an MLIR pass pipeline"


def compiler_diagnosis(log: str) -> str:
    """The informative line of a failed MLIR pipeline's stderr (which pass failed, and at which line of the
    kernel's source), or ''."""
    m = _PIPELINE_FAILED.search(log)
    if m:
        where = f" at {m['file']}:{m['line']}" if m["file"] else ""
        return f"Triton pass {m['pass']} failed{where}"
    errors = [e.strip() for e in re.findall(r"error: (.+)", log)]
    informative = [e for e in errors if _GENERIC_ERROR not in e] or errors
    return informative[0][:300] if informative else ""


def nvidia_tool(name: str) -> str:
    """Path of an NVIDIA tool (ptxas, cuobjdump) as Triton itself resolves it: its knobs honour TRITON_PTXAS_PATH
    and friends, which the GPU image points at its CUDA toolkit; the wheel's bundled copy is the fallback. The
    PTX Triton emitted is versioned for that same tool, so an older bundled ptxas can refuse it (seen on the H100)."""
    from triton import knobs

    tool = getattr(knobs.nvidia, name)
    if tool is None or not tool.path:
        raise FileNotFoundError(f"Triton finds no {name}.")
    return tool.path


def cubin_resources(cubin: bytes) -> dict[str, int]:
    """REG / SHARED / LOCAL of the (single) function in a cubin, from `cuobjdump -res-usage`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        out = subprocess.run([nvidia_tool("cuobjdump"), "-res-usage", str(path)], capture_output=True, text=True,
                             check=True).stdout
    found = {}
    for key in ("REG", "SHARED", "LOCAL", "STACK"):
        m = re.search(rf"\b{key}:(\d+)", out.split("Function", 1)[-1])
        if m:
            found[key] = int(m.group(1))
    return found


def ptxas_spill_bytes(ptx: str, arch: str = "sm_90a") -> int:
    """Spill-store bytes `ptxas -v` reports for PTX text (summed over its functions)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        # The ptxas Triton itself compiled this PTX with (knobs honour TRITON_PTXAS_PATH, which the GPU image
        # sets to its CUDA toolkit); the wheel's bundled one can be older than the PTX ISA that Triton emitted.
        res = subprocess.run([nvidia_tool("ptxas"), "-v", f"--gpu-name={arch}", str(src), "-o",
                              str(Path(tmp) / "kernel.o")], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"ptxas -v exited {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}")
    return sum(int(n) for n in re.findall(r"(\d+) bytes spill stores", res.stderr + res.stdout))


def grid_programs(grid, bound_args: dict) -> int:
    if callable(grid):
        grid = grid(bound_args)
    total = 1
    for g in tuple(grid):
        total *= int(g)
    return total


def stage_module(impl: str):
    """The kernels module of a stage name (e.g. 'stage0_baseline'), or for a user implementation (kernels.registry)
    a stand-in module whose `attention` is the user's launcher."""
    import types

    from kernels import lookup

    entry = lookup.get(impl)
    if entry.kind == "stage":
        return entry.module()
    if entry.triton is False:
        raise KeyError(f"no census for {impl!r}: it is neither a stage nor a registered implementation.")
    proxy = types.ModuleType(f"perfmodel_user_census.{impl}")
    proxy.attention = entry.launcher
    return proxy


class NoTritonLaunch(RuntimeError):
    """The implementation ran without launching any Triton kernel: there is nothing to census."""


@dataclass(frozen=True)
class KernelFacts:
    counts: dict
    loops: list
    resources: dict
    spills_bytes: int


# What the census reads from one compiled kernel, by Triton's hash of it. Configs of a suite that differ only in
# runtime arguments (B, S, ...) compile to the same kernel; reading its cubin and running `ptxas -v` once is
# enough (those tools are most of a census's time).
_FACTS: dict[str, KernelFacts] = {}


def kernel_facts(compiled) -> KernelFacts:
    if compiled.hash not in _FACTS:
        ptx = compiled.asm["ptx"]
        _FACTS[compiled.hash] = KernelFacts(count_ptx(ptx), ptx_loops(ptx), cubin_resources(compiled.asm["cubin"]),
                                             ptxas_spill_bytes(ptx))
    return _FACTS[compiled.hash]
