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
    grid_programs  programs the stage's launcher starts for this config, with `sm_count` SMs (kernels/hardware.py)

Those are whole-kernel static counts: a barrier inside the key loop and one in the epilogue count the same, and a
stage that unrolls its masked diagonal blocks into straight-line code can have more barriers in total while
having fewer in each iteration of its loop. So the census also reads the loops (`ptx_loops`: a label and a later
branch back to it) and reports, over the loops that issue wgmma (the math loops, not a producer's load loop):

    loop_bar_sync    the most bar.sync / barrier.sync instructions in one iteration of a math loop
    loop_predicates  the most setp.* + selp.* (compares and selects: the masking) in one iteration of a math loop

both static counts of the loop body (an inner loop's body counts once in its enclosing loop); None where the
kernel has no loop issuing wgmma. The PTX itself is kept in `CensusResult.ptx` and the loops in
`CensusResult.loops` for reading.

How a stage is compiled without a GPU (its launcher's launches captured on CPU tensors, each compiled as Triton
would on an H100, stage 5 pinned to the config a run timed) is collectors/census/sm90.py's docstring; the PTX is
read by collectors/census/ptx.py. The config compiled is in `launch_meta` (the kernel's constexprs, e.g.
BLOCK_M, RING, CONSUMERS, OVERLAP, and num_warps), the kernel(s) launched in `kernel_name` (also when the compile
fails: a user's launcher may pick another path without a GPU, as Triton's tutorial picks its non-TMA `_attn_fwd`).
A compile that fails keeps in its error the line of Triton's output that says which pass failed and at which line
of the kernel's source, and a compile error its own message (collectors.timing.failures.one_line).

A launcher that refuses a config (KernelUnsupported, e.g. a candidate needing more shared memory than an SM has)
gives a census with status 'failed' and the refusal as its error: the census never compiles past a stage's own
refusal.

An implementation at a config whose dtype it does not run (`Impl.refusal`: fp8 for stages 1-4) gets a census with
status 'not_measured' and that reason: it is not compiled.

A `tl` kernel built by Triton's interpreter (TRITON_INTERPRET=1 when it was decorated) has nothing to compile: its
census is 'failed' with the reason (`InterpretedKernel`, collectors/census/sm90.py).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kernels.known_causes import known_cause
from kernels.workload import AttentionConfig

# the informative line of an exception (a compile error's own)
from collectors.census.ptx import PTX_PATTERNS, math_loop_maxima
from collectors.census.sm90 import (H100_SM_COUNT, NoTritonLaunch, capture, compile_launch, compiler_diagnosis,
                                    grid_programs, kernel_facts, stage_module)
from collectors.timing.failures import one_line as _one_line
from runstore.safe_io import stderr_to as _stderr_to
from runstore.schema import columns


@dataclass
class CensusResult:
    """The census of one stage at one config (counts summed over the kernels the launcher starts)."""

    impl: str
    config: AttentionConfig
    status: str = "ok"  # ok | failed (the compile failed; `error` says why)
    error: str = ""
    kernels: list[str] = field(default_factory=list)
    kernel_name: str | None = None  # the jit functions launched (comma-separated), also when a compile failed
    wgmma: int | None = None
    bar_sync: int | None = None
    loop_bar_sync: int | None = None
    loop_predicates: int | None = None
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
    loops: list[dict] = field(default_factory=list, repr=False)  # ptx_loops of every kernel, each with `kernel`

    def row(self, run_id: str = "") -> dict:
        """One row of the run store's `census` table (runstore/schema.py)."""
        values = {"run_id": run_id, "impl": self.impl, "config_id": self.config.id, **self.config.as_dict()}
        for name in columns("census"):
            if name not in values:
                values[name] = getattr(self, name)
        return {name: values[name] for name in columns("census")}


_CACHE: dict[tuple, CensusResult] = {}


def census(impl: str, config: AttentionConfig, sm_count: int = H100_SM_COUNT,
           tuned_config: str | None = None) -> CensusResult:
    """Compile stage `impl` for sm_90 at `config` and count; cached per (impl, config, sm_count) in this process.

    `tuned_config`: for a tuning stage, the config a run timed (its timings' `tuned_config` report); the census
    compiles that one (see `capture_launches` for the default).

    A compile that Triton refuses gives a result with status 'failed' and the reason, not an exception.
    """
    from kernels import lookup
    from kernels.registry import ImplError

    key = (impl, config, sm_count, tuned_config or None)
    if key in _CACHE:
        return _CACHE[key]
    result = CensusResult(impl=impl, config=config)
    try:
        entry = lookup.get(impl)
    except ImplError:  # a module the registry does not list (a test's stand-in): a stage
        entry = None
    refused = entry.refusal(config) if entry is not None else None
    if refused:  # a dtype the implementation does not run (kernels.registry.Impl.refusal): nothing to compile
        result.status, result.error = "not_measured", f"no census: {refused}"
        _CACHE[key] = result
        return result
    try:
        # the variant `tuned_config` names runs pinned: a user kernel's switches (a stage's capture pins the same)
        with entry.pinned(tuned_config) if entry is not None else contextlib.nullcontext():
            launches = capture(stage_module(impl), config, sm_count, tuned_config)
        result.kernel_name = ", ".join(dict.fromkeys(getattr(launch.fn, "__name__", "?") for launch in launches))
        counts = dict.fromkeys(PTX_PATTERNS, 0)
        ptx_parts, warps, req_warps, regs, shared, spills, programs = [], [], [], [], [], 0, 0
        for launch in launches:
            with tempfile.TemporaryDirectory() as tmp:
                log = Path(tmp) / "stderr.log"
                try:
                    with _stderr_to(log):
                        compiled, bound_args = compile_launch(launch)
                except Exception as exc:
                    detail = compiler_diagnosis(log.read_text(errors="replace"))
                    raise RuntimeError(f"{_one_line(exc)}" + (f" ({detail})" if detail else "")) from exc
            ptx = compiled.asm["ptx"]
            ptx_parts.append(ptx)
            facts = kernel_facts(compiled)
            for name, n in facts.counts.items():
                counts[name] += n
            result.loops += [{"kernel": compiled.metadata.name, **lp} for lp in facts.loops]
            res = facts.resources
            md = compiled.metadata
            result.kernels.append(md.name)
            warps.append(int(md.num_warps))
            req_warps.append(int(launch.kwargs.get("num_warps", 4)))
            regs.append(res.get("REG", 0))
            shared.append(int(md.shared) + res.get("SHARED", 0))
            spills += facts.spills_bytes
            programs += grid_programs(launch.grid, bound_args)
        for name, n in counts.items():
            setattr(result, name, n)
        result.loop_bar_sync, result.loop_predicates = math_loop_maxima(result.loops)
        result.num_warps, result.requested_warps = max(warps), max(req_warps)
        result.registers, result.shared_bytes = max(regs), max(shared)
        result.spills_bytes, result.grid_programs = spills, programs
        result.ptx = "\n".join(ptx_parts)
        result.launch_meta = {k: v for k, v in launches[0].kwargs.items()
                              if isinstance(v, (bool, int, float, str)) and k != "debug"}
    except NoTritonLaunch as exc:
        if entry is None or entry.triton:  # a stage must launch its kernel
            result.status, result.error = "failed", str(exc)
        else:  # a user kernel that is not a Triton kernel: nothing to count, and nothing wrong
            result.status, result.error = "not_measured", "no census: not a Triton kernel (it launched none)"
    except Exception as exc:  # a refused compile is a census finding, recorded with its reason
        known = known_cause(exc, impl) if entry is not None and entry.kind == "user" else None
        result.status, result.error = "failed", known or (str(exc) if isinstance(exc, RuntimeError) else
                                                          _one_line(exc))
    _CACHE[key] = result
    return result


def census_frame(impls: list[str], configs: list[AttentionConfig], sm_count: int = H100_SM_COUNT,
                 run_id: str = "") -> pd.DataFrame:
    """The `census` table (runstore/schema.py columns) for every (stage, config)."""
    rows = [census(impl, cfg, sm_count).row(run_id) for impl in impls for cfg in configs]
    return pd.DataFrame(rows, columns=columns("census"))
