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

How a stage is compiled without a GPU: the stage's own launcher is called on CPU tensors of the config's shape
with Triton's launch path intercepted (`_capture_launches`), so the census compiles exactly the kernel, argument
specialization, constexprs, options and grid the launcher would use; the captured call is then bound and
compiled with `triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))` (a `GluonASTSource` for the
Gluon stages), the route `JITFunction.run` takes on a real H100. A persistent launcher that sizes its grid from
the compiled kernel's occupancy gets the sm_90 build and the per-SM limits of compute capability 9.0 (`sm90_programs_per_sm`).
Stage 5 tunes on the GPU (its own tuner, no `triton.autotune`); nothing can be timed here, so the census pins it
(`PINNED_CONFIG`) to the config a run timed (`tuned_config`, the run's report of its tuner's choice), else to
the config its tuner chose for this config in this process (`tuned_config_for(config)`, when a GPU run tuned
before its census), or else to the module's stated census default (`CENSUS_CONFIG(config)`,
stage 4's config for the Gluon stage 5). The config compiled is in `launch_meta` (the kernel's constexprs, e.g.
BLOCK_M, RING, CONSUMERS, OVERLAP, and num_warps), the kernel(s) launched in `kernel_name` (also when the compile
fails: a user's launcher may pick another path without a GPU, as Triton's tutorial picks its non-TMA `_attn_fwd`).
A compile that fails keeps in its error the line of Triton's output that says which pass failed and at which line
of the kernel's source (`_compiler_diagnosis`), and a compile error its own message (collectors.case_rows.one_line).

A launcher that refuses a config (KernelUnsupported, e.g. a candidate needing more shared memory than an SM has)
gives a census with status 'failed' and the refusal as its error: the census never compiles past a stage's own
refusal.

A `tl` kernel decorated while TRITON_INTERPRET=1 was set is an interpreted function, not a JITFunction: there is
nothing to compile, and its launch would run the kernel on the CPU at the config's full size. The capture refuses
such a launch at once (`InterpretedKernel`, status 'failed'); the perfmodel command line never imports Triton that
way (perfmodel/cli.py `without_interpreter`).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kernels.hardware import DEFAULT_GPU, GPUS
from kernels.known_causes import known_cause
from kernels.workload import AttentionConfig, torch_dtype

from .case_rows import one_line as _one_line  # the informative line of an exception (a compile error's own)
from .safe_io import stderr_to as _stderr_to
from .schema import columns

# Hopper: compute capability 9.0, 32 threads a warp.
SM90 = ("cuda", 90, 32)
# The sm_90 part the census compiles for and counts occupancy on: the hardware table's H100 SXM5 (kernels/hardware.py).
CENSUS_GPU = GPUS[DEFAULT_GPU]
H100_SM_COUNT = CENSUS_GPU.sm_count

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


# Per-iteration counts of a loop body: PTX_PATTERNS' bar.sync, wgmma, ex2, TMA, plus the masking (compares and
# selects) and the mbarrier waits a pipelined or warp-specialized loop blocks on.
LOOP_PATTERNS: dict[str, str] = {
    "bar_sync": PTX_PATTERNS["bar_sync"],
    "setp_selp": r"(?:setp|selp)\.",
    "wgmma": PTX_PATTERNS["wgmma"],
    "ex2": PTX_PATTERNS["ex2"],
    "tma": PTX_PATTERNS["tma"],
    "mbarrier_wait": r"mbarrier\.(?:try_wait|test_wait|wait)",
}
_LOOP_REGEX = {name: re.compile(r"^\s*(?:@!?%\w+\s+)?" + pat, re.M) for name, pat in LOOP_PATTERNS.items()}
_LABEL = re.compile(r"^\s*(\$L__BB\d+_\d+):")
# A branch to a compiler label ($L__BB...; inline-asm spin loops such as `waitLoop:` stay inside their block),
# and the instructions that end a thread.
_BRANCH = re.compile(r"^\s*(@!?%\w+\s+)?bra(?:\.uni)?\s+(\$L__BB\d+_\d+)\s*;")
_EXIT = re.compile(r"^\s*(@!?%\w+\s+)?(?:ret|exit|trap)\s*;")


_FUNCTION = re.compile(r"^\s*(?:\.visible\s+|\.weak\s+|\.extern\s+)*\.(?:entry|func)\b")


def _ptx_blocks(lines: list[str]) -> tuple[list[tuple[int, int]], list[list[int]], dict[int, str], list[int]]:
    """Basic blocks of PTX text: (first line, end line) ranges, successor lists, labels, and the entry blocks (the
    text before the first function and the start of each function; nothing falls through into one)."""
    starts, label_of = [0], {}
    for i, line in enumerate(lines):
        if _LABEL.match(line) or _FUNCTION.match(line):
            starts.append(i)
        elif _BRANCH.match(line) or _EXIT.match(line):
            starts.append(i + 1)
    starts = sorted(set(s for s in starts if s < len(lines)))
    ranges = [(a, b) for a, b in zip(starts, starts[1:] + [len(lines)])]
    by_label = {}
    for n, (a, _) in enumerate(ranges):
        m = _LABEL.match(lines[a])
        if m:
            by_label[m.group(1)] = n
            label_of[n] = m.group(1)
    succs: list[list[int]] = []
    for n, (a, b) in enumerate(ranges):
        last = next((lines[i] for i in range(b - 1, a - 1, -1) if lines[i].strip()), "")
        out, falls = [], True
        m = _BRANCH.match(last)
        if m:
            if m.group(2) in by_label:
                out.append(by_label[m.group(2)])
            falls = bool(m.group(1))  # a guarded branch may fall through
        elif _EXIT.match(last):
            falls = bool(_EXIT.match(last).group(1))
        if falls and n + 1 < len(ranges) and not _FUNCTION.match(lines[ranges[n + 1][0]]):
            out.append(n + 1)
        succs.append(out)
    entries = [n for n, (a, _) in enumerate(ranges) if n == 0 or _FUNCTION.match(lines[a])]
    return ranges, succs, label_of, entries


def ptx_loops(ptx: str) -> list[dict]:
    """Every loop of PTX text with its per-iteration instruction counts.

    The PTX is cut into basic blocks (at `$L__BB` labels and after branches and exits); a loop is the natural loop
    of a back edge (a branch to a block that dominates the branching one), so a loop whose blocks the compiler laid
    out apart (as warp-specialized code is) is still one loop, and unrelated code between its blocks is not in it.
    One dict per loop header, in PTX order: `label`, `first_line` (0-based line of the header label), `lines`
    (PTX lines in the loop), `ranges` (its blocks' [first, end) line ranges, in PTX order), `depth` (1 for an outermost loop), `contains` (the labels of the loops nested in it),
    and for each LOOP_PATTERNS field (bar_sync, setp_selp, wgmma, ex2, tma, mbarrier_wait) the count in the loop's
    blocks: what one iteration issues, statically (both sides of a branch inside the loop count; an inner loop's
    body counts once in its enclosing loop, and is also a loop of its own; an inline-asm spin loop such as an
    mbarrier wait is part of its block, not a loop). Several functions in one text are analysed separately.
    """
    lines = ptx.splitlines()
    ranges, succs, label_of, entries = _ptx_blocks(lines)
    n = len(ranges)
    preds: list[list[int]] = [[] for _ in range(n)]
    for b, out in enumerate(succs):
        for t in out:
            preds[t].append(b)
    # dominators (iterative data flow on bit sets), over the blocks reachable from the function entries
    reach, stack = set(entries), list(entries)
    while stack:
        for t in succs[stack.pop()]:
            if t not in reach:
                reach.add(t)
                stack.append(t)
    order = sorted(reach)
    full = (1 << n) - 1
    dom = {b: (1 << b) if b in entries else full for b in order}
    changed = True
    while changed:
        changed = False
        for b in order:
            if b in entries:
                continue
            new = full
            for p in preds[b]:
                if p in reach:
                    new &= dom[p]
            new |= 1 << b
            if new != dom[b]:
                dom[b], changed = new, True
    # natural loops, merged per header
    bodies: dict[int, set[int]] = {}
    for b in order:
        for h in succs[b]:
            if h in reach and dom[b] >> h & 1:
                body = bodies.setdefault(h, {h})
                stack = [b] if b not in body else []
                body.add(b)
                while stack:
                    for p in preds[stack.pop()]:
                        if p in reach and p not in body:
                            body.add(p)
                            stack.append(p)
    loops = []
    for h, body in sorted(bodies.items(), key=lambda kv: ranges[kv[0]][0]):
        text = "\n".join("\n".join(lines[a:b]) for a, b in (ranges[x] for x in sorted(body)))
        counts = {name: len(rx.findall(text)) for name, rx in _LOOP_REGEX.items()}
        loops.append({"label": label_of.get(h, f"block{h}"), "first_line": ranges[h][0],
                      "lines": sum(ranges[x][1] - ranges[x][0] for x in body),
                      "ranges": [ranges[x] for x in sorted(body)],
                      "depth": sum(h in other for other in bodies.values()),
                      "contains": [label_of.get(g, f"block{g}") for g in sorted(bodies) if g != h and g in body],
                      **counts})
    return loops


def math_loops(loops: list[dict]) -> list[dict]:
    """The innermost loops that issue wgmma: the key loops doing the math, one iteration per key block. An outer
    loop around them (a persistent kernel's loop over work items, the loop Triton wraps around warp-specialized
    partitions) and a producer's load loop (no wgmma) are not among them. `loops` as ptx_loops gives them (loops
    of several kernels may be mixed if each carries its `kernel` name)."""
    with_mma = [lp for lp in loops if lp["wgmma"]]
    mma_labels = {(lp.get("kernel"), lp["label"]) for lp in with_mma}
    return [lp for lp in with_mma if not any((lp.get("kernel"), c) in mma_labels for c in lp["contains"])]


def math_loop_maxima(loops: list[dict]) -> tuple[int | None, int | None]:
    """(loop_bar_sync, loop_predicates): the most bar.sync, and setp+selp, in one iteration of a math loop
    (`math_loops`); (None, None) when there is none."""
    math = math_loops(loops)
    if not math:
        return None, None
    return max(lp["bar_sync"] for lp in math), max(lp["setp_selp"] for lp in math)


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
        """One row of the run store's `census` table (collectors/schema.py)."""
        values = {"run_id": run_id, "impl": self.impl, "config_id": self.config.id, **self.config.as_dict()}
        for name in columns("census"):
            if name not in values:
                values[name] = getattr(self, name)
        return {name: values[name] for name in columns("census")}


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
        facts = _kernel_facts(compiled)
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
class _Launch:
    fn: object  # the JITFunction
    grid: object
    args: tuple
    kwargs: dict


class InterpretedKernel(RuntimeError):
    """The launcher launched a kernel that Triton's interpreter built (TRITON_INTERPRET=1 was set when it was
    decorated): there is no GPU kernel to compile for sm_90."""


@contextlib.contextmanager
def _capture_launches(stage_module, sm_count: int, config: AttentionConfig, tuned_config: str | None = None):
    """Within the block, Triton launches record themselves in the yielded list instead of running.

    The launcher runs on CPU tensors: its input check is told it runs under the interpreter (so CPU inputs are
    accepted) while the stage module itself is told it does not (so it picks its GPU path), and the SM count is
    `sm_count`. A launch of an interpreted function raises InterpretedKernel instead of running on the CPU.
    """
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


def capture(stage_module, config: AttentionConfig, sm_count: int, tuned_config: str | None = None) -> list[_Launch]:
    """The Triton launches `stage_module.attention` makes for `config`, without running anything."""
    import torch

    dtype = torch_dtype(config.dtype)
    q, k, v = (torch.empty(config.B, config.H, config.S, config.D, dtype=dtype) for _ in range(3))
    with _capture_launches(stage_module, sm_count, config, tuned_config) as launches:
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
    # a Gluon kernel (GluonJITFunction) builds its IR from a GluonASTSource, as its own `run` does on a GPU
    source = getattr(fn, "ASTSource", None) or ASTSource
    if getattr(fn, "is_gluon", lambda: False)():
        from triton.experimental.gluon._runtime import GluonASTSource as source
    compiled = triton_compile(source(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    return compiled, bound_args


# MLIR's note on a failed pass pipeline, with the kernel source location it failed at: "<file>:<line>:<col>: note:
# Pipeline failed while executing [`TritonGPUPipeline` on 'builtin.module' operation]: reproducer generated at ..."
# (without the brackets when TRITON_REPRODUCER_PATH is set, as collectors.preflight.compile_log sets it).
_PIPELINE_FAILED = re.compile(r"^(?:(?P<file>[^\s:][^:\n]*):(?P<line>\d+):\d+: )?(?:note: )?Pipeline failed while "
                              r"executing \[?`?(?P<pass>[A-Za-z0-9_:.-]+)", re.MULTILINE)
_GENERIC_ERROR = "Failures have been detected while processing an MLIR pass pipeline"


def _compiler_diagnosis(log: str) -> str:
    """The informative line of a failed MLIR pipeline's stderr (which pass failed, and at which line of the
    kernel's source), or ''."""
    m = _PIPELINE_FAILED.search(log)
    if m:
        where = f" at {m['file']}:{m['line']}" if m["file"] else ""
        return f"Triton pass {m['pass']} failed{where}"
    errors = [e.strip() for e in re.findall(r"error: (.+)", log)]
    informative = [e for e in errors if _GENERIC_ERROR not in e] or errors
    return informative[0][:300] if informative else ""


def _nvidia_tool(name: str) -> str:
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
        # The ptxas Triton itself compiled this PTX with (knobs honour TRITON_PTXAS_PATH, which the GPU image
        # sets to its CUDA toolkit); the wheel's bundled one can be older than the PTX ISA that Triton emitted.
        res = subprocess.run([_nvidia_tool("ptxas"), "-v", f"--gpu-name={arch}", str(src), "-o",
                              str(Path(tmp) / "kernel.o")], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"ptxas -v exited {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}")
    return sum(int(n) for n in re.findall(r"(\d+) bytes spill stores", res.stderr + res.stdout))


def _grid_programs(grid, bound_args: dict) -> int:
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

    from kernels import registry

    entry = registry.get(impl)
    if entry.kind == "stage":
        return entry.module()
    if entry.triton is False:
        raise KeyError(f"no census for {impl!r}: it is neither a stage nor a registered implementation.")
    proxy = types.ModuleType(f"perfmodel_user_census.{impl}")
    proxy.attention = entry.launcher
    return proxy


class NoTritonLaunch(RuntimeError):
    """The implementation ran without launching any Triton kernel: there is nothing to census."""


_CACHE: dict[tuple, CensusResult] = {}


@dataclass(frozen=True)
class _KernelFacts:
    counts: dict
    loops: list
    resources: dict
    spills_bytes: int


# What the census reads from one compiled kernel, by Triton's hash of it. Configs of a suite that differ only in
# runtime arguments (B, S, ...) compile to the same kernel; reading its cubin and running `ptxas -v` once is
# enough (those tools are most of a census's time).
_FACTS: dict[str, _KernelFacts] = {}


def _kernel_facts(compiled) -> _KernelFacts:
    if compiled.hash not in _FACTS:
        ptx = compiled.asm["ptx"]
        _FACTS[compiled.hash] = _KernelFacts(count_ptx(ptx), ptx_loops(ptx), cubin_resources(compiled.asm["cubin"]),
                                             ptxas_spill_bytes(ptx))
    return _FACTS[compiled.hash]


def census(impl: str, config: AttentionConfig, sm_count: int = H100_SM_COUNT,
           tuned_config: str | None = None) -> CensusResult:
    """Compile stage `impl` for sm_90 at `config` and count; cached per (impl, config, sm_count) in this process.

    `tuned_config`: for a tuning stage, the config a run timed (its timings' `tuned_config` report); the census
    compiles that one (see `_capture_launches` for the default).

    A compile that Triton refuses gives a result with status 'failed' and the reason, not an exception.
    """
    from kernels import registry

    key = (impl, config, sm_count, tuned_config or None)
    if key in _CACHE:
        return _CACHE[key]
    result = CensusResult(impl=impl, config=config)
    try:
        entry = registry.get(impl)
    except registry.ImplError:  # a module the registry does not list (a test's stand-in): a stage
        entry = None
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
                        compiled, bound_args = _compile_launch(launch)
                except Exception as exc:
                    detail = _compiler_diagnosis(log.read_text(errors="replace"))
                    raise RuntimeError(f"{_one_line(exc)}" + (f" ({detail})" if detail else "")) from exc
            ptx = compiled.asm["ptx"]
            ptx_parts.append(ptx)
            facts = _kernel_facts(compiled)
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
            programs += _grid_programs(launch.grid, bound_args)
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
    """The `census` table (collectors/schema.py columns) for every (stage, config)."""
    rows = [census(impl, cfg, sm_count).row(run_id) for impl in impls for cfg in configs]
    return pd.DataFrame(rows, columns=columns("census"))
