"""Instruction mix of a compiled stage's math loops read from the SASS that runs, not the PTX Triton emits.

The instruction mix (perfmodel/model/instruction_mix.py) reads each math loop's sm_90 PTX; ptxas turns that PTX into
SASS, adding address arithmetic, moves of uniform registers and range checks, and dropping moves. This module reads
the same loops in SASS (collectors/census/sass_disasm.py: nvdisasm of the cubin; sass_loops.py: the loops; sass_ops.py:
each instruction's class and registers), so the model can count the instructions the warp schedulers issue.

A SASS math loop is matched to the PTX math loop (census.ptx.math_loops) whose blocks hold most of the PTX lines its
instructions come from (`match` "ptx lines"; `ptx_line_share` says how many: instructions ptxas moved across the
loop's edges are the rest; an HGMMA carries the line of the descriptor arithmetic next to its wgmma, whose inline
asm has none of its own). Without line info (TRITON_DISABLE_LINE_INFO) only a kernel with one math loop is
matched (`match` "only loop"): ptxas lays partitions out in its own order (stage 4's two consumer loops come in
one order in the PTX and the other in the SASS), so position says nothing. SASS and PTX must have as many math
loops, matched one to one, each SASS iteration issuing as many HGMMA as its PTX iteration issues wgmma (ptxas
unrolls nothing there), else the PTX mix is kept (below).

Counts are static counts of a loop's blocks, as the PTX mix's are: both sides of a branch inside the loop count
(an iteration runs one), a predicated instruction counts once whether or not its predicate holds (`predicated`
says how many are; `@!PT`, never executed, is among them, in a class of its own), and an mbarrier wait's
out-of-line retry is left out (`spin_retry_instructions`; sass_loops.py says why).

What one loop holds (`SassLoop`): `classes` (sass_ops.CLASSES, summing to `instructions`), `opcodes`, the control
words' stall cycles, and `mix`: an instruction_mix.LoopMix of the SASS, each field meaning what it means for PTX
and each instruction put where the PTX mix puts the PTX instruction it comes from: wgmma = HGMMA (shapes, FLOPs,
operand bytes as for PTX), ex2 = MUFU.EX2, fp = the other MUFU and floating-point ops, cvt = conversions,
predicate = compares and selects (PLOP3 too), shfl, smem_* (bytes per thread as ld.shared / ldmatrix count them),
global_mem = global, cp.async and TMA, bar_sync = BAR.SYNC, mbarrier_wait = SYNCS.PHASECHK, mbarrier_arrive =
SYNCS.ARRIVE, int_alu = everything else (integer, uniform, constant loads, branches, BAR.ARV, mbarrier init,
fences, `@!PT`: the PTX mix puts their PTX there too); WARPGROUP.* count in no field but `instructions`, as
wgmma.fence / commit / wait do; a wgmma group ends at the HGMMA that carries `gsb0` (SASS has no commit
instruction), and `WARPGROUP.DEPBAR.LE gsb0, N` is `wgmma.wait_group N`.

`mix.path`: the loop's dependency nodes in perfmodel/model/critical_path.py's form (kind, written, read, extra;
registers as sass_ops.operands_rw gives them), so the replay can run on SASS. Kinds map as for PTX: HGMMA WGMMA
(its accumulator read, written at completion, as for PTX); WARPGROUP.DEPBAR WAIT, WARPGROUP.ARRIVE OTHER; BAR.SYNC
BAR; SYNCS.PHASECHK MBAR_WAIT; MUFU.* MUFU (the PTX replay gives that kind to ex2 only: an rcp is ALU there);
SHFL, LDS, LDSM XBAR; STS, STSM, and what writes no register (stores, LDGSTS, TMA, branches, arrives, cp.async
waits, fences, `@!PT`) STORE; the rest ALU (LDG included, as ld.global; a uniform-datapath op too, though its
result is ready sooner). Where an HGMMA closes its group the nodes add a COMMIT node after it (the replay closes
groups there), so `len(path)` exceeds `instructions` by the groups one iteration commits. Each node carries a fifth
field, its control word's stall count (at least 1): the clocks the warp waits before its next instruction issues,
ptxas' schedule of the pipes' issue intervals, which the replay honours; a COMMIT node carries 0 (no issue slot).

The fallback: where nvdisasm is missing, fails, or gives what cannot be matched to the PTX loops, `SassMix.source`
is "ptx (<the reason>)" and `math_loops` is the PTX mix (instruction_mix.loop_mix of census.ptx.math_loops), so a
caller keeps the PTX mix and records why; with SASS, `source` is "sass". Cached per Triton kernel hash.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from collectors.census import ptx as _ptx, sm90 as _sm90
from collectors.census.sass_disasm import SassInstruction, SassUnavailable, disassemble, parse_nvdisasm
from collectors.census.sass_loops import loop_body, sass_loops
from collectors.census.sass_ops import (CLASSES, a_in_registers, classify, closes_group, hgmma_shape, operands_rw,
                                        smem_bytes, wait_n, wgmma_smem_bytes)
from collectors.timing import failures as _failures
from perfmodel.model import critical_path as _cp, instruction_mix as _mix
from runstore.safe_io import stderr_to as _stderr_to

# The LoopMix field of each class: where the PTX mix puts the PTX instruction it comes from (None: no field)
_MIX_FIELD = {"hgmma": "wgmma", "warpgroup": None, "mufu_ex2": "ex2", "mufu_other": "fp", "fp32": "fp",
              "fp16x2": "fp", "fp64": "fp", "conversion": "cvt", "predicate": "predicate", "integer": "int_alu",
              "uniform": "int_alu", "constant": "int_alu", "shuffle": "shfl", "smem_load": "smem_loads",
              "smem_store": "smem_stores", "global": "global_mem", "tma": "global_mem", "barrier": "bar_sync",
              "bar_arrive": "int_alu", "mbarrier_wait": "mbarrier_wait", "mbarrier_other": "int_alu",
              "control": "int_alu", "predicated_off": "int_alu", "other": "int_alu"}

# The replay's node kind of each class (the others: ALU if they write a register, else STORE)
_KIND = {"hgmma": _cp.WGMMA, "warpgroup": _cp.OTHER, "barrier": _cp.BAR, "mbarrier_wait": _cp.MBAR_WAIT,
         "mufu_ex2": _cp.MUFU, "mufu_other": _cp.MUFU, "shuffle": _cp.XBAR, "smem_load": _cp.XBAR,
         "smem_store": _cp.STORE, "control": _cp.STORE, "bar_arrive": _cp.STORE, "mbarrier_other": _cp.STORE,
         "predicated_off": _cp.STORE}


def nodes(body: list[SassInstruction]) -> tuple:
    """The loop's dependency nodes (critical_path's kind, written, read, extra), a COMMIT node after each HGMMA
    that closes its group (see the module docstring)."""
    out = []
    for inst in body:
        cls = classify(inst)
        written, read = operands_rw(inst) if cls != "predicated_off" else ([], [])
        kind, extra = _KIND.get(cls, _cp.ALU if written else _cp.STORE), None
        if cls == "hgmma":
            m, n, k, _ = hgmma_shape(inst)
            extra = ("rs" if a_in_registers(inst) else "ss", n, k, 2 * m * n * k)
            read, written = read + written, []  # as for PTX: the accumulator is read, and written at completion
        elif cls == "warpgroup" and inst.opcode.startswith("WARPGROUP.DEPBAR"):
            kind, extra = _cp.WAIT, wait_n(inst)
        elif cls in ("shuffle", "smem_load", "smem_store"):
            extra = 128 if cls == "shuffle" else smem_bytes(inst) * 32  # bytes a warp moves
        out.append((kind, tuple(written), tuple(read), extra, max(1, inst.stall)))
        if closes_group(inst):
            out.append((_cp.COMMIT, (), (), None, 0))
    return tuple(out)


# ---- one loop ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SassLoop:
    """One SASS math loop: what one thread issues per iteration, by pipe class, and its PTX loop."""

    kernel: str
    label: str
    first_address: int
    instructions: int  # the body less the waits' retries: the loop's counted instructions
    classes: dict  # CLASSES -> count (they sum to `instructions`)
    opcodes: dict  # base opcode -> count
    predicated: int  # instructions under a guard (@P0, @!UP1, ...)
    predicated_off: int  # ... of which @!PT: issued, never executed (class predicated_off)
    spin_retry_instructions: int  # in the out-of-line retries of mbarrier waits, not counted
    stall_cycles: int  # the control words' stall counts summed over the body (both sides of a branch)
    ptx_label: str  # the matched PTX loop (census.ptx.ptx_loops label)
    match: str  # "ptx lines" | "only loop"
    ptx_line_share: float | None  # of the body's instructions with a PTX line, the share inside the PTX loop
    mix: _mix.LoopMix = field(repr=False)  # the PTX mix's fields, read from the SASS; `path` its SASS nodes

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "mix"}


def loop_mix(body: list[SassInstruction], kernel: str, label: str) -> _mix.LoopMix:
    """The instruction_mix.LoopMix of one SASS loop body (each field as for PTX; see the module docstring)."""
    c = dict.fromkeys(("ex2", "fp", "cvt", "predicate", "int_alu", "shfl", "smem_loads", "smem_stores",
                       "smem_bytes", "global_mem", "bar_sync", "mbarrier_wait", "mbarrier_arrive", "wgmma"), 0)
    shapes: dict[str, int] = {}
    flops = smem_mma = overlap = pending = 0
    groups: list[int] = []  # FLOPs of each closed wgmma group, in program order
    waits, bars = [], []
    for inst in body:
        cls = classify(inst)
        target = "mbarrier_arrive" if inst.opcode.startswith("SYNCS.ARRIVE") and cls != "predicated_off" \
            else _MIX_FIELD[cls]
        if target:
            c[target] += 1
        if cls in ("smem_load", "smem_store"):
            c["smem_bytes"] += smem_bytes(inst)
        elif cls == "hgmma":
            m, n, k, _ = hgmma_shape(inst)
            shapes[f"m{m}n{n}k{k}"] = shapes.get(f"m{m}n{n}k{k}", 0) + 1
            flops += 2 * m * n * k
            pending += 2 * m * n * k
            smem_mma += wgmma_smem_bytes(inst)
            if closes_group(inst):
                groups.append(pending)
                pending = 0
        elif cls == "warpgroup" and inst.opcode.startswith("WARPGROUP.DEPBAR"):
            n_out = wait_n(inst)
            waits.append(n_out)
            if n_out:
                overlap += sum(groups[-n_out:])
            groups = groups[-n_out:] if n_out else []
        elif cls == "barrier":  # BAR.SYNC id[, threads]: no thread count is the whole CTA (0, as for PTX)
            ints = [int(op, 0) for op in inst.operands if re.fullmatch(r"0x[0-9a-f]+|\d+", op)]
            bars.append(ints[1] if len(ints) > 1 else 0)
    return _mix.LoopMix(kernel=kernel, label=label, wgmma_shapes=shapes, wgmma_flops=flops,
                        wgmma_smem_bytes=smem_mma, overlap_flops=overlap, wgmma_waits=tuple(waits),
                        bar_threads=tuple(sorted(set(bars))), instructions=len(body), path=nodes(body), **c)


def _in_ptx_loop(line: int, ptx_loop: dict) -> bool:
    """Whether 1-based PTX line `line` lies in a census.ptx.ptx_loops loop (0-based [first, end) ranges)."""
    return any(a <= line - 1 < b for a, b in ptx_loop["ranges"])


def _sass_loop(insts: tuple, loop: dict, ptx_loop: dict, match: str) -> SassLoop:
    body = loop_body(insts, loop)
    classes = dict.fromkeys(CLASSES, 0)
    opcodes: dict[str, int] = {}
    for inst in body:
        classes[classify(inst)] += 1
        opcodes[inst.base] = opcodes.get(inst.base, 0) + 1
    lines = [i.ptx_line for i in body if i.ptx_line is not None]
    return SassLoop(kernel=loop["kernel"], label=loop["label"], first_address=loop["first_address"],
                    instructions=len(body), classes=classes, opcodes=dict(sorted(opcodes.items())),
                    predicated=sum(bool(i.guard) for i in body),
                    predicated_off=sum(i.guard == "!PT" for i in body),
                    spin_retry_instructions=sum(e - a for a, e in loop["retry"]),
                    stall_cycles=sum(i.stall for i in body), ptx_label=ptx_loop["label"], match=match,
                    ptx_line_share=sum(_in_ptx_loop(x, ptx_loop) for x in lines) / len(lines) if lines else None,
                    mix=loop_mix(body, loop["kernel"], loop["label"]))


# ---- a kernel ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SassMix:
    """The math loops of one compiled kernel, from SASS (`source` "sass") or, as the fallback, from its PTX
    (`source` "ptx (<reason>)"): `math_loops` are instruction_mix.LoopMix records either way, in PTX order."""

    kernel: str
    hash: str
    source: str
    math_loops: tuple  # LoopMix per math loop
    sass_loops: tuple = ()  # SassLoop per math loop, in the same order (source "sass" only)

    @property
    def from_sass(self) -> bool:
        return self.source == "sass"


def _ptx_math_loops(ptx: str, kernel: str) -> tuple[list, tuple]:
    """(census loops, LoopMix) of the PTX's math loops, as instruction_mix.kernel_mix reads them."""
    lines = ptx.splitlines()
    loops = _ptx.math_loops(_ptx.ptx_loops(ptx))
    return loops, tuple(_mix.loop_mix(lines, lp, kernel) for lp in loops)


def _ptx_fallback(ptx: str, kernel: str, kernel_hash: str, reason: SassUnavailable) -> SassMix:
    return SassMix(kernel=kernel, hash=kernel_hash, source=f"ptx ({reason})",
                   math_loops=_ptx_math_loops(ptx, kernel)[1])


def _match(insts: tuple, sass_math: list, ptx_math: list) -> tuple[list, str]:
    """The PTX math loop of each SASS math loop, and how they were matched ("ptx lines" or "only loop")."""
    if len(sass_math) != len(ptx_math):
        n, plural = len(sass_math), "" if len(sass_math) == 1 else "s"
        raise SassUnavailable(f"the SASS has {n} math loop{plural} where the PTX has {len(ptx_math)}.")
    body_lines = [[i.ptx_line for i in loop_body(insts, lp) if i.ptx_line is not None] for lp in sass_math]
    if not all(body_lines):
        if len(sass_math) == 1:
            return list(ptx_math), "only loop"
        # ptxas lays partitions out in its own order (stage 4's second consumer loop comes first in PTX, last in
        # SASS), so without lines nothing says which loop is which
        raise SassUnavailable(f"the cubin has no PTX line info (TRITON_DISABLE_LINE_INFO set?) to tell which of "
                              f"its {len(sass_math)} SASS math loops is which PTX loop.")
    matched = []
    for lp, lines in zip(sass_math, body_lines):
        inside = [sum(_in_ptx_loop(line, p) for line in lines) for p in ptx_math]
        best = max(range(len(ptx_math)), key=inside.__getitem__)
        if 2 * inside[best] <= len(lines):
            raise SassUnavailable(f"no PTX math loop holds most of SASS loop {lp['label']}'s instructions.")
        matched.append(ptx_math[best])
    if len({p["label"] for p in matched}) != len(matched):
        raise SassUnavailable("two SASS math loops come from the same PTX math loop.")
    return matched, "ptx lines"


def sass_mix_of(ptx: str, sass_text: str, kernel: str, kernel_hash: str = "") -> SassMix:
    """The SassMix of a kernel from its PTX and its `nvdisasm -c -gp -hex` text: source "sass", or the PTX mix
    with the reason the SASS could not be read or matched."""
    ptx_math = _ptx_math_loops(ptx, kernel)[0]
    try:
        insts, labels = parse_nvdisasm(sass_text)
        sass_math = _ptx.math_loops(sass_loops(insts, labels))
        matched, how = _match(insts, sass_math, ptx_math)
        pairs = sorted(zip(sass_math, matched), key=lambda pair: ptx_math.index(pair[1]))
        loops = tuple(_sass_loop(insts, lp, p, how) for lp, p in pairs)
        for loop, (_, p) in zip(loops, pairs):
            if loop.mix.wgmma != p["wgmma"]:
                raise SassUnavailable(f"SASS loop {loop.label} issues {loop.mix.wgmma} HGMMA an iteration where "
                                      f"its PTX loop {p['label']} issues {p['wgmma']} wgmma (ptxas unrolled it).")
    except SassUnavailable as exc:
        return _ptx_fallback(ptx, kernel, kernel_hash, exc)
    return SassMix(kernel=kernel, hash=kernel_hash, source="sass", math_loops=tuple(lp.mix for lp in loops),
                   sass_loops=loops)


_SASS_MIX: dict[str, SassMix] = {}


def kernel_sass_mix(compiled) -> SassMix:
    """The SassMix of a kernel compiled by collectors.census.sm90.compile_launch, cached per Triton kernel hash (a
    fallback too: the same kernel and tools give the same reason)."""
    if compiled.hash not in _SASS_MIX:
        ptx, name = compiled.asm["ptx"], compiled.metadata.name
        try:
            text = disassemble(compiled.asm["cubin"] if "cubin" in compiled.asm else b"")
        except SassUnavailable as exc:
            _SASS_MIX[compiled.hash] = _ptx_fallback(ptx, name, compiled.hash, exc)
        else:
            _SASS_MIX[compiled.hash] = sass_mix_of(ptx, text, name, compiled.hash)
    return _SASS_MIX[compiled.hash]


def compile_stage(impl: str, config, sm_count: int = _sm90.H100_SM_COUNT, tuned_config: str | None = None):
    """The one kernel `impl` launches at `config`, compiled for sm_90 as instruction_mix.instruction_mix compiles
    it (raises instruction_mix.MixError when the stage refuses the config, launches several kernels or does not
    compile)."""
    from kernels import lookup

    try:
        with lookup.get(impl).pinned(tuned_config):
            launches = _sm90.capture(_sm90.stage_module(impl), config, sm_count, tuned_config)
    except Exception as exc:
        raise _mix.MixError(f"{impl} at {config.id}: {_failures.one_line(exc)}") from None
    if len(launches) != 1:
        raise _mix.MixError(f"{impl} at {config.id} launches {len(launches)} kernels; the mix reads one.")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with _stderr_to(Path(tmp) / "stderr.log"):
                compiled, _ = _sm90.compile_launch(launches[0])
        except Exception as exc:
            raise _mix.MixError(f"{impl} at {config.id}: {_failures.one_line(exc)}") from None
    return compiled


def kernel_mix(compiled) -> _mix.KernelMix:
    """instruction_mix.kernel_mix with the math loops read from the SASS (`loops_source` "sass"), or from the PTX
    with the reason the SASS could not be used ("ptx (<why>)"); producer loops, registers, shared memory and warps
    as the PTX mix reads them. What the predictive model prices (perfmodel/model/mix_cache.py compiles with it)."""
    sass = kernel_sass_mix(compiled)
    return dataclasses.replace(_mix.kernel_mix(compiled), math_loops=sass.math_loops, loops_source=sass.source)
