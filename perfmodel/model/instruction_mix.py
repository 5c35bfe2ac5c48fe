"""Instruction mix of a compiled stage, per iteration of its key loop, for the predictive model
(perfmodel/model/predictive.py).

The census (collectors/census/census.py) says whether a technique is in the code; this module says how much work one
iteration of the math loop issues, by pipe, and how the kernel's parts can overlap. It compiles a stage for sm_90
exactly as the census does (`sm90.capture` intercepts the stage's own launcher, `sm90.compile_launch` compiles
the captured launch, no GPU needed) and reads, from the sm_90 PTX of each math loop (`ptx.math_loops`: the
innermost loops that issue wgmma, one iteration per key block), per thread and per iteration:

    wgmma            count, shapes (`m64n128k16` -> count), FLOPs per warp group (2·m·n·k each), operand bytes the
                     tensor cores read from shared memory (A when it is a descriptor, not registers; B always)
    ex2              `ex2.approx` (MUFU, the special-function unit)
    fp               other floating-point arithmetic (add, sub, mul, fma, max, min, ... on f32/f16/bf16 types)
    cvt, predicate   conversions; compares and selects (setp, selp: the masking)
    int_alu          every other non-memory instruction (integer arithmetic, moves, logic)
    shfl             warp shuffles (the row reductions of a tl kernel)
    smem_loads, smem_stores, smem_bytes   ld/st.shared, ldmatrix, stmatrix and the bytes one thread moves
    global_mem       ld/st.global and cp.async (pointer loads of a non-TMA kernel)
    bar_sync         bar.sync / barrier.sync, with `bar_threads`: the thread counts named (0 = the whole CTA)
    mbarrier_wait, mbarrier_arrive
    wgmma_waits      the N of each `wgmma.wait_group N`; `overlap_flops`: FLOPs (per warp group) of the wgmma
                     groups a wait with N >= 1 leaves in flight: work that may overlap the instructions after it
    instructions     every instruction line of the loop (what the warp schedulers issue, PTX not SASS)

All counts are static counts of the loop's blocks: both sides of a branch inside the loop count (an iteration runs
one), an inline-asm spin loop (an mbarrier wait) counts once, and PTX is not the SASS that runs (ptxas drops some
moves and expands a few instructions). Those are the model's stated approximations.

Around the loops, per stage and config (`InstructionMix`): registers, shared memory, warps per program, programs
per SM and occupancy (sm90.sm90_programs_per_sm, the per-SM limits of kernels/hardware.py), the partitions
(warp specialization: setmaxnreg register budgets, producer loops that issue TMA without wgmma), BLOCK_M / BLOCK_N
of the launch, work items (query tiles x batch x heads), key blocks per work item (causal: up to the block holding
the tile's last row), the grid, work items per program and waves. Warp groups per math loop come from the tile:
one key block of a BLOCK_M x BLOCK_N tile is 4·BLOCK_M·BLOCK_N·D FLOPs (QKᵀ and P·V), and the loops' FLOPs per warp
group divide it.

Compiling is the slow part: the mix of a kernel is cached per Triton kernel hash (`_MIX`), and configs that compile
to the same kernel (they differ in B, H or S only) share it.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kernels.workload import AttentionConfig

from collectors.census import ptx as _ptx, sm90 as _sm90
from collectors.timing import failures as _failures
from perfmodel.model import critical_path as _critical_path
from runstore.safe_io import stderr_to as _stderr_to

_SHAPE = re.compile(r"\.m(\d+)n(\d+)k(\d+)\.")
_WAIT = re.compile(r"wgmma\.wait_group\S*\s+(\d+)")
_BAR = re.compile(r"(?:bar|barrier)\.sync(?:\.aligned)?\s+([^;]*);")
_ELEMENT_BYTES = {"f16": 2, "bf16": 2, "tf32": 4, "e4m3": 1, "e5m2": 1, "s8": 1, "u8": 1}
_FP_OPS = ("add", "sub", "mul", "fma", "mad", "max", "min", "neg", "abs", "div", "rcp", "sqrt", "rsqrt", "lg2")
_FP_TYPE = re.compile(r"\.(?:f32|f16|f16x2|bf16|bf16x2|f64)\b")


def _operand_bytes(inst: str) -> int:
    """Bytes one wgmma reads from shared memory: B (k x n) always, A (m x k) when it is a descriptor."""
    m, n, k = (int(x) for x in _SHAPE.search(inst).groups())
    in_type = inst.split()[0].split(".")[-1]
    elt = _ELEMENT_BYTES.get(in_type, 2)
    # operands after the opcode: {D regs}, then A as {regs} (register operand, RS) or a 64-bit descriptor (SS)
    a_in_registers = inst.split("}", 1)[1].lstrip(" ,").startswith("{")
    return k * n * elt + (0 if a_in_registers else m * k * elt)


@dataclass(frozen=True)
class LoopMix:
    """What one thread of a math loop issues per iteration (static counts; see the module docstring)."""

    kernel: str
    label: str
    wgmma: int
    wgmma_shapes: dict
    wgmma_flops: int  # per warp group and iteration
    wgmma_smem_bytes: int  # per warp group and iteration
    overlap_flops: int  # per warp group: in flight across a wgmma.wait_group N >= 1
    wgmma_waits: tuple
    ex2: int
    fp: int
    cvt: int
    predicate: int
    int_alu: int
    shfl: int
    smem_loads: int
    smem_stores: int
    smem_bytes: int  # per thread and iteration
    global_mem: int
    bar_sync: int
    bar_threads: tuple  # thread counts the bar.syncs name (0: the whole CTA)
    mbarrier_wait: int
    mbarrier_arrive: int
    instructions: int
    # the loop's instructions as the in-order replay reads them (perfmodel/model/critical_path.py)
    path: tuple = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "path"}


def loop_mix(ptx_lines: list[str], loop: dict, kernel: str = "") -> LoopMix:
    """The LoopMix of one loop (a dict of collectors.census.ptx.ptx_loops, with its `ranges`) of PTX text split into
    lines."""
    body = _ptx.instruction_lines([ln for a, b in loop["ranges"] for ln in ptx_lines[a:b]])
    shapes: dict[str, int] = {}
    flops = smem_mma = overlap = 0
    groups: list[int] = []  # FLOPs of each committed wgmma group, in program order
    pending = 0
    waits, bars = [], []
    c = dict.fromkeys(("ex2", "fp", "cvt", "predicate", "int_alu", "shfl", "smem_loads", "smem_stores",
                       "smem_bytes", "global_mem", "bar_sync", "mbarrier_wait", "mbarrier_arrive", "wgmma"), 0)
    for inst in body:
        op = inst.split()[0]
        if op.startswith("wgmma.mma_async"):
            m, n, k = (int(x) for x in _SHAPE.search(op + ".").groups())
            key = f"m{m}n{n}k{k}"
            shapes[key] = shapes.get(key, 0) + 1
            c["wgmma"] += 1
            flops += 2 * m * n * k
            pending += 2 * m * n * k
            smem_mma += _operand_bytes(inst)
        elif op.startswith("wgmma.commit_group"):
            groups.append(pending)
            pending = 0
        elif op.startswith("wgmma.wait_group"):
            n_out = int(_WAIT.search(inst).group(1))
            waits.append(n_out)
            if n_out:
                overlap += sum(groups[-n_out:])
            groups = groups[-n_out:] if n_out else []
        elif op.startswith("wgmma."):
            pass  # fence: ordering, no work
        elif op.startswith("ex2.approx"):
            c["ex2"] += 1
        elif op.startswith(("setp", "selp")):
            c["predicate"] += 1
        elif op.startswith("cvt"):
            c["cvt"] += 1
        elif op.startswith(("ld.shared", "ldmatrix")):
            c["smem_loads"] += 1
            c["smem_bytes"] += _ptx.smem_bytes(inst)
        elif op.startswith(("st.shared", "stmatrix")):
            c["smem_stores"] += 1
            c["smem_bytes"] += _ptx.smem_bytes(inst)
        elif op.startswith(("ld.global", "st.global", "cp.async")):
            c["global_mem"] += 1
        elif op.startswith(("bar.sync", "barrier.sync")):
            c["bar_sync"] += 1
            args = [a.strip() for a in _BAR.search(inst + (";" if ";" not in inst else "")).group(1).split(",")]
            bars.append(int(args[1]) if len(args) > 1 and args[1].isdigit() else 0)
        elif op.startswith("mbarrier.try_wait") or op.startswith("mbarrier.test_wait") or op == "mbarrier.wait":
            c["mbarrier_wait"] += 1
        elif op.startswith("mbarrier.arrive"):
            c["mbarrier_arrive"] += 1
        elif op.startswith("shfl"):
            c["shfl"] += 1
        elif op.split(".")[0] in _FP_OPS and _FP_TYPE.search(op):
            c["fp"] += 1
        else:
            c["int_alu"] += 1
    return LoopMix(kernel=kernel, label=loop["label"], wgmma_shapes=shapes, wgmma_flops=flops,
                   wgmma_smem_bytes=smem_mma, overlap_flops=overlap, wgmma_waits=tuple(waits),
                   bar_threads=tuple(sorted(set(bars))), instructions=len(body),
                   path=_critical_path.nodes(body), **c)


_SETMAXNREG = re.compile(r"setmaxnreg\.(?:inc|dec)\S*\s+(\d+)")


@dataclass(frozen=True)
class KernelMix:
    """The mix of one compiled kernel: its math loops, producer loops and resources (cached by kernel hash)."""

    name: str
    hash: str
    math_loops: tuple  # LoopMix per math loop, in PTX order
    producer_loops: int  # loops issuing TMA and no wgmma (a load partition)
    setmaxnreg: tuple  # the register budgets named, in PTX order (warp-specialized partitions)
    registers: int
    spills_bytes: int
    shared_bytes: int
    num_warps: int
    # where math_loops were read: "ptx", or "sass" / "ptx (<why not SASS>)" when perfmodel/model/sass_mix.py read them
    loops_source: str = "ptx"


_MIX: dict[str, KernelMix] = {}


def _producer_loops(loops: list[dict]) -> int:
    """Loops that issue TMA and no wgmma, not nested in another such loop: a load partition's loops."""
    tma_only = {lp["label"] for lp in loops if lp["tma"] and not lp["wgmma"]}
    return sum(1 for lp in loops if lp["label"] in tma_only
               and not any(lp["label"] in other["contains"] for other in loops if other["label"] in tma_only))


def kernel_mix(compiled) -> KernelMix:
    """The KernelMix of a kernel compiled by collectors.census.sm90.compile_launch, cached per Triton kernel hash."""
    if compiled.hash not in _MIX:
        ptx = compiled.asm["ptx"]
        lines = ptx.splitlines()
        loops = _ptx.ptx_loops(ptx)
        facts = _sm90.kernel_facts(compiled)  # the census' own cache of resources and spills (same hash)
        md = compiled.metadata
        _MIX[compiled.hash] = KernelMix(
            name=md.name, hash=compiled.hash,
            math_loops=tuple(loop_mix(lines, lp, md.name) for lp in _ptx.math_loops(loops)),
            producer_loops=_producer_loops(loops),
            setmaxnreg=tuple(int(x) for x in _SETMAXNREG.findall(ptx)),
            registers=facts.resources.get("REG", 0), spills_bytes=facts.spills_bytes,
            shared_bytes=int(md.shared) + facts.resources.get("SHARED", 0), num_warps=int(md.num_warps))
    return _MIX[compiled.hash]


@dataclass(frozen=True)
class InstructionMix:
    """A stage at a config: its (single) kernel's mix, the occupancy and the work decomposition of the launch."""

    impl: str
    config: AttentionConfig
    kernel: KernelMix
    launch_meta: dict
    block_m: int
    block_n: int
    programs_per_sm: int
    occupancy: float  # resident warps / 64 per SM
    grid_programs: int
    work_items: int
    iterations: tuple  # key blocks of each query tile of one (batch, head), in tile order
    persistent: bool  # fewer programs than work items: each program loops over work items
    items_per_program: float
    waves: float  # programs / (SMs x programs per SM)
    warpgroups_per_loop: float  # warp groups running each math loop, from the tile's FLOPs
    sm_count: int
    # the kernel takes an L2 group (argument GROUP): it orders its work items in L2 sections of heads, heaviest
    # tile first when causal (kernels/schedule.py); else its grid runs query tiles, then heads, in launch order
    l2_sections: bool = False
    # the kernel takes its work items from a global counter (stage 5's `dynamic` switch, argument DYNAMIC): each
    # program's first item is its own id, then the next one in the kernel's order whenever it frees
    dynamic_schedule: bool = False

    @property
    def warp_specialized(self) -> bool:
        return bool(self.kernel.setmaxnreg) or self.kernel.producer_loops > 0

    def summary(self) -> dict:
        """The flat record a table or a test reads: the work decomposition and the first math loop's counts."""
        out = {"impl": self.impl, "config_id": self.config.id, "kernel_hash": self.kernel.hash,
               "block_m": self.block_m, "block_n": self.block_n, "registers": self.kernel.registers,
               "shared_bytes": self.kernel.shared_bytes, "num_warps": self.kernel.num_warps,
               "programs_per_sm": self.programs_per_sm, "occupancy": self.occupancy,
               "warp_specialized": self.warp_specialized, "math_loops": len(self.kernel.math_loops),
               "producer_loops": self.kernel.producer_loops, "warpgroups_per_loop": self.warpgroups_per_loop,
               "grid_programs": self.grid_programs, "work_items": self.work_items, "persistent": self.persistent,
               "items_per_program": self.items_per_program, "waves": self.waves,
               "iterations_total": sum(self.iterations) * self.config.B * self.config.H}
        if self.kernel.math_loops:
            out.update({f"loop_{k}": v for k, v in self.kernel.math_loops[0].as_dict().items()
                        if k not in ("kernel", "label")})
        return out


class MixError(RuntimeError):
    """The stage could not be compiled for sm_90 at this config (the reason is the message)."""


_BY_CASE: dict[tuple, InstructionMix] = {}


def key_blocks(config: AttentionConfig, block_m: int, block_n: int) -> tuple:
    """Key blocks each query tile of one (batch, head) walks: all of them, or (causal) up to the one holding the
    tile's last row."""
    n_tiles = math.ceil(config.S / block_m)
    if not config.causal:
        return (math.ceil(config.S / block_n),) * n_tiles
    return tuple(math.ceil(min(config.S, (i + 1) * block_m) / block_n) for i in range(n_tiles))


def instruction_mix(impl: str, config: AttentionConfig, sm_count: int = _sm90.H100_SM_COUNT,
                    tuned_config: str | None = None, read_kernel=kernel_mix) -> InstructionMix:
    """Compile `impl` for sm_90 at `config` (as the census does) and read its instruction mix; cached per case and
    per kernel hash. `tuned_config`: for a tuning stage, the config a run reported it ran (compiled pinned, as the
    census compiles it). `read_kernel`: compiled kernel -> KernelMix (`kernel_mix`, the PTX's; the model reads the
    SASS's, perfmodel/model/sass_mix.py `kernel_mix`). Raises MixError when the stage refuses the config or Triton
    cannot compile it."""
    from kernels import lookup

    key = (impl, config, sm_count, tuned_config or None, read_kernel)
    if key in _BY_CASE:
        return _BY_CASE[key]
    try:
        with lookup.get(impl).pinned(tuned_config):
            launches = _sm90.capture(_sm90.stage_module(impl), config, sm_count, tuned_config)
    except Exception as exc:
        raise MixError(f"{impl} at {config.id}: {_failures.one_line(exc)}") from None
    if len(launches) != 1:
        raise MixError(f"{impl} at {config.id} launches {len(launches)} kernels; the mix reads one.")
    launch = launches[0]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with _stderr_to(Path(tmp) / "stderr.log"):
                compiled, bound_args = _sm90.compile_launch(launch)
        except Exception as exc:
            raise MixError(f"{impl} at {config.id}: {_failures.one_line(exc)}") from None
    mix = read_kernel(compiled)
    if not mix.math_loops:
        raise MixError(f"{impl} at {config.id}: the compiled kernel has no loop issuing wgmma.")
    meta = {k: v for k, v in launch.kwargs.items() if isinstance(v, (bool, int, float, str)) and k != "debug"}
    block_m, block_n = int(meta["BLOCK_M"]), int(meta["BLOCK_N"])
    pps = _sm90.sm90_programs_per_sm(_sm90.Sm90Kernel(compiled))
    grid = _sm90.grid_programs(launch.grid, bound_args)
    iterations = key_blocks(config, block_m, block_n)
    items = len(iterations) * config.B * config.H
    tile_flops = 4 * block_m * block_n * config.D
    per_wg = sum(lp.wgmma_flops for lp in mix.math_loops)
    result = InstructionMix(
        impl=impl, config=config, kernel=mix, launch_meta=meta, block_m=block_m, block_n=block_n,
        programs_per_sm=pps, occupancy=pps * mix.num_warps / 64, grid_programs=grid, work_items=items,
        iterations=iterations, persistent=grid < items, items_per_program=items / grid,
        waves=grid / (sm_count * pps), warpgroups_per_loop=tile_flops / per_wg, sm_count=sm_count,
        l2_sections="GROUP" in bound_args, dynamic_schedule=bool(meta.get("DYNAMIC", False)))
    _BY_CASE[key] = result
    return result
