"""Static census of a compiled stage for sm_90, without a GPU.

The census answers "is the technique really in the code?" by counting instructions in the sm_90 PTX that
Triton generates for a stage at a given config, and by reading the compiled kernel's resources:

    wgmma      `wgmma.mma_async` (Hopper warpgroup tensor-core MMA)
    bar_sync   `bar.sync` / `barrier.sync` (CTA-wide named-barrier waits); `bar_arrive` counts `bar.arrive`
    mbarrier   `mbarrier.*` (the asynchronous transaction barriers TMA and warp specialization use)
    tma        `cp.async.bulk.tensor` (TMA bulk tensor copies)
    ex2        `ex2.approx` (the special-function-unit exponential)
    setmaxnreg `setmaxnreg` (register reallocation between warp-specialized partitions)
    num_warps  warps per program as compiled: Triton's warp specialization adds partitions' warps
               (`ttg.total-num-warps`, which Triton copies into the kernel metadata)
    registers  registers per thread of the cubin (`cuobjdump -res-usage`, REG)
    spills     spill-store bytes reported by `ptxas -v` on the same PTX
    shared     shared memory per program: Triton's dynamic allocation (metadata.shared) plus the cubin's static
    grid_programs  programs the stage's launcher starts for this config, with `sm_count` SMs (132 on the H100)

These are static counts: a barrier inside the key loop and one in the epilogue count the same. Read the loop
(the PTX is kept in `CensusResult.ptx`) before concluding anything about per-iteration synchronization.

How a stage is compiled without a GPU: the stage's own launcher is called on CPU tensors of the config's shape
with Triton's launch path intercepted (`_capture_launches`), so the census compiles exactly the kernel, argument
specialization, constexprs, options and grid the launcher would use; the captured call is then bound and
compiled with `triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`, the route
`JITFunction.run` takes on a real H100. An autotuned kernel (`triton.autotune`) is compiled at the config the
stage names in `CENSUS_CONFIG(config)` when it has one, else at its first config (autotuning needs a GPU).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kernels.workload import AttentionConfig

from .schema import columns

# Hopper: compute capability 9.0, 32 threads a warp.
SM90 = ("cuda", 90, 32)
# H100 SXM5: 132 SMs (NVIDIA H100 Tensor Core GPU datasheet; read as 132 on the lent H100, ANCHORS.md).
H100_SM_COUNT = 132

# PTX instruction -> census field. Each pattern matches the opcode at the start of an instruction, optionally
# after a predicate guard (`@%p1 bar.sync 0;`), never inside a comment or a label.
PTX_PATTERNS: dict[str, str] = {
    "wgmma": r"wgmma\.mma_async",
    "bar_sync": r"(?:bar|barrier)\.sync",
    "bar_arrive": r"(?:bar|barrier)\.arrive",
    "mbarrier": r"mbarrier\.",
    "tma": r"cp\.async\.bulk\.tensor",
    "ex2": r"ex2\.approx",
    "setmaxnreg": r"setmaxnreg",
}
_PTX_REGEX = {name: re.compile(r"^\s*(?:@!?%\w+\s+)?" + pat, re.M) for name, pat in PTX_PATTERNS.items()}


def count_ptx(ptx: str) -> dict[str, int]:
    """Instruction counts of PTX text for every PTX_PATTERNS field."""
    return {name: len(rx.findall(ptx)) for name, rx in _PTX_REGEX.items()}


@dataclass
class CensusResult:
    """The census of one stage at one config (counts summed over the kernels the launcher starts)."""

    impl: str
    config: AttentionConfig
    status: str = "ok"  # ok | failed (the compile failed; `error` says why)
    error: str = ""
    kernels: list[str] = field(default_factory=list)
    wgmma: int | None = None
    bar_sync: int | None = None
    bar_arrive: int | None = None
    mbarrier: int | None = None
    tma: int | None = None
    ex2: int | None = None
    setmaxnreg: int | None = None
    requested_warps: int | None = None
    num_warps: int | None = None
    registers: int | None = None
    spills_bytes: int | None = None
    shared_bytes: int | None = None
    grid_programs: int | None = None
    launch_meta: dict = field(default_factory=dict)  # the first launch's scalar keyword arguments (constexprs)
    ptx: str = field(default="", repr=False)

    def row(self, run_id: str = "") -> dict:
        """One row of the run store's `census` table (collectors/schema.py)."""
        values = {"run_id": run_id, "impl": self.impl, "config_id": self.config.id, **self.config.as_dict()}
        for name in columns("census"):
            if name not in values:
                values[name] = getattr(self, name)
        return {name: values[name] for name in columns("census")}


# ---- occupancy on the H100 without the H100 -------------------------------------------------------------------
# Per-SM limits of compute capability 9.0 (CUDA C++ Programming Guide, "Technical Specifications per Compute
# Capability"): 64K 32-bit registers, 228 KB shared memory, 2048 resident threads.
SM90_REGS_PER_SM = 65536
SM90_SHARED_PER_SM = 228 * 1024
SM90_THREADS_PER_SM = 2048
SM90_SHARED_RESERVED_PER_PROGRAM = 1024  # the 1 KB the driver reserves per resident block (same guide)


class Sm90Kernel:
    """A kernel compiled for sm_90 here, exposing what launchers read from a CompiledKernel (metadata, n_regs,
    n_spills) without loading it on a GPU."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.metadata = compiled.metadata
        self.asm = compiled.asm
        resources = cubin_resources(compiled.asm["cubin"])
        self.n_regs = resources.get("REG", 0)
        self.n_spills = ptxas_spill_bytes(compiled.asm["ptx"])

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
class _Launch:
    fn: object  # the JITFunction
    grid: object
    args: tuple
    kwargs: dict


@contextlib.contextmanager
def _capture_launches(stage_module, sm_count: int, config: AttentionConfig):
    """Within the block, Triton launches record themselves in the yielded list instead of running.

    The launcher runs on CPU tensors: its input check is told it runs under the interpreter (so CPU inputs are
    accepted) while the stage module itself is told it does not (so it picks its GPU path), and the SM count is
    `sm_count`.
    """
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    import kernels._launch as launch_mod

    launches: list[_Launch] = []

    def jit_run(self, *args, grid, warmup, **kwargs):
        if warmup:
            # A launcher that compiles ahead (`kernel.warmup(...)`) to size a persistent grid gets the sm_90 build.
            compiled, _ = _compile_launch(_Launch(self, grid, args, kwargs))
            return Sm90Kernel(compiled)
        launches.append(_Launch(self, grid, args, kwargs))
        return None

    def autotune_run(self, *args, **kwargs):
        # As Autotuner.run does, minus the benchmarking: prune, pick one config, run its pre_hook (which may set
        # tensor-descriptor block shapes), then launch the inner function with the config's meta-parameters.
        self.nargs = dict(zip(self.arg_names, args))
        candidates = self.prune_configs(kwargs)
        chooser = getattr(stage_module, "CENSUS_CONFIG", None)
        cfg = chooser(config) if callable(chooser) else None
        cfg = cfg if cfg is not None else candidates[0]
        if cfg.pre_hook is not None:
            cfg.pre_hook({**self.nargs, **kwargs, **cfg.all_kwargs()})
        self.nargs = None
        return self.fn.run(*args, **kwargs, **cfg.all_kwargs())

    patches = [
        (JITFunction, "run", jit_run),
        (Autotuner, "run", autotune_run),
        (launch_mod, "interpreting", lambda: True),
        (launch_mod, "sm_count", lambda device: sm_count),
    ]
    if callable(getattr(stage_module, "programs_per_sm", None)):
        patches.append((stage_module, "programs_per_sm", lambda kernel, device: sm90_programs_per_sm(kernel)))
    if isinstance(getattr(stage_module, "_OCCUPANCY", None), dict):
        patches.append((stage_module, "_OCCUPANCY", {}))  # never mix H100 occupancies into the module's cache
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


def _torch_dtype(name: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def capture(stage_module, config: AttentionConfig, sm_count: int) -> list[_Launch]:
    """The Triton launches `stage_module.attention` makes for `config`, without running anything."""
    import torch

    dtype = _torch_dtype(config.dtype)
    q, k, v = (torch.empty(config.B, config.H, config.S, config.D, dtype=dtype) for _ in range(3))
    with _capture_launches(stage_module, sm_count, config) as launches:
        try:
            stage_module.attention(q, k, v, causal=config.causal)
        except Exception:
            # Nothing ran, so a launcher that reads its (never written) output may fail after the launch it made;
            # what was captured up to there is the census. Without any launch the error is the result.
            if not launches:
                raise
    if not launches:
        raise RuntimeError(f"{stage_module.__name__}.attention made no Triton launch for {config.id}.")
    return launches


# ---- compiling for sm_90 --------------------------------------------------------------------------------------
def _compile_launch(launch: _Launch):
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
    compiled = triton_compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    return compiled, bound_args


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send file descriptor 2 to `path` (Triton's C++ passes print whole IR dumps there when they fail)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _compiler_diagnosis(log: str) -> str:
    """The informative line of a failed MLIR pipeline's stderr (which pass failed), or ''."""
    m = re.search(r"Pipeline failed while executing \[`?([A-Za-z0-9_:.-]+)", log)
    if m:
        return f"Triton pass {m.group(1)} failed"
    m = re.search(r"error: (.+)", log)
    return m.group(1).strip()[:300] if m else ""


def _nvidia_tool(name: str) -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not in the triton wheel ({path}).")
    return str(path)


def cubin_resources(cubin: bytes) -> dict[str, int]:
    """REG / SHARED / LOCAL of the (single) function in a cubin, from `cuobjdump -res-usage`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        out = subprocess.run([_nvidia_tool("cuobjdump"), "-res-usage", str(path)], capture_output=True, text=True,
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
        res = subprocess.run([_nvidia_tool("ptxas"), "-v", f"--gpu-name={arch}", str(src), "-o",
                              str(Path(tmp) / "kernel.o")], capture_output=True, text=True, check=True)
    return sum(int(n) for n in re.findall(r"(\d+) bytes spill stores", res.stderr + res.stdout))


def _grid_programs(grid, bound_args: dict) -> int:
    if callable(grid):
        grid = grid(bound_args)
    total = 1
    for g in tuple(grid):
        total *= int(g)
    return total


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}"


def stage_module(impl: str):
    """The kernels module of a stage name (e.g. 'stage0_baseline')."""
    return importlib.import_module(f"kernels.{impl}")


_CACHE: dict[tuple, CensusResult] = {}


def census(impl: str, config: AttentionConfig, sm_count: int = H100_SM_COUNT) -> CensusResult:
    """Compile stage `impl` for sm_90 at `config` and count; cached per (impl, config, sm_count) in this process.

    A compile that Triton refuses gives a result with status 'failed' and the reason, not an exception.
    """
    key = (impl, config, sm_count)
    if key in _CACHE:
        return _CACHE[key]
    result = CensusResult(impl=impl, config=config)
    try:
        launches = capture(stage_module(impl), config, sm_count)
        counts = dict.fromkeys(PTX_PATTERNS, 0)
        ptx_parts, warps, req_warps, regs, shared, spills, programs = [], [], [], [], [], 0, 0
        for launch in launches:
            with tempfile.TemporaryDirectory() as tmp:
                log = Path(tmp) / "stderr.log"
                try:
                    with _stderr_to(log):
                        compiled, bound_args = _compile_launch(launch)
                except Exception as exc:
                    detail = _compiler_diagnosis(log.read_text(errors="replace"))
                    raise RuntimeError(f"{_one_line(exc)}" + (f" ({detail})" if detail else "")) from exc
            ptx = compiled.asm["ptx"]
            ptx_parts.append(ptx)
            for name, n in count_ptx(ptx).items():
                counts[name] += n
            res = cubin_resources(compiled.asm["cubin"])
            md = compiled.metadata
            result.kernels.append(md.name)
            warps.append(int(md.num_warps))
            req_warps.append(int(launch.kwargs.get("num_warps", 4)))
            regs.append(res.get("REG", 0))
            shared.append(int(md.shared) + res.get("SHARED", 0))
            spills += ptxas_spill_bytes(ptx)
            programs += _grid_programs(launch.grid, bound_args)
        for name, n in counts.items():
            setattr(result, name, n)
        result.num_warps, result.requested_warps = max(warps), max(req_warps)
        result.registers, result.shared_bytes = max(regs), max(shared)
        result.spills_bytes, result.grid_programs = spills, programs
        result.ptx = "\n".join(ptx_parts)
        result.launch_meta = {k: v for k, v in launches[0].kwargs.items()
                              if isinstance(v, (bool, int, float, str)) and k != "debug"}
    except Exception as exc:  # a refused compile is a census finding, recorded with its reason
        result.status, result.error = "failed", str(exc) if isinstance(exc, RuntimeError) else _one_line(exc)
    _CACHE[key] = result
    return result


def census_frame(impls: list[str], configs: list[AttentionConfig], sm_count: int = H100_SM_COUNT,
                 run_id: str = "") -> pd.DataFrame:
    """The `census` table (collectors/schema.py columns) for every (stage, config)."""
    rows = [census(impl, cfg, sm_count).row(run_id) for impl in impls for cfg in configs]
    return pd.DataFrame(rows, columns=columns("census"))
