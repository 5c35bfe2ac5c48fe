"""The loops of a kernel's SASS (collectors/census/sass_disasm.py instructions), found as ptx.ptx_loops finds PTX
loops.

The SASS of each function is cut into basic blocks (at labels, after branches and exits) and a loop is the natural
loop of a back edge: a branch to a block that dominates the branching one (the backward `BRA` to a loop's label,
and any other edge that closes a cycle). A guarded branch or exit may fall through (`@!PT`, never taken, always
does); a `BRX` goes to the targets nvdisasm lists. The loop dicts carry the fields ptx.math_loops reads
(`wgmma`: the HGMMA count, `label`, `contains`, `kernel`), so the math loops of SASS are ptx.math_loops' choice:
the innermost loops that issue HGMMA (Hopper's wgmma in SASS).

An mbarrier wait's retry is out of line in SASS: `SYNCS.PHASECHK.TRANS64.TRYWAIT P, [..]; @!P BRA retry` in the
loop, and the retry block, elsewhere, spinning on the same TRYWAIT and branching back. That block is a loop of
its own (`spin`) inside the loop that waits, and `loop_body` leaves it out (with the lone `BRA` back), so a wait
counts its first try once, as the PTX's inline-asm spin loop (`waitLoop:`) counts once in ptx.ptx_loops.
"""

from __future__ import annotations

from collectors.census.ptx import natural_loops
from collectors.census.sass_disasm import SassInstruction

_BRANCHES = ("BRA", "BRX", "JMP", "JMX")
_ENDS = ("EXIT", "RET", "KILL")


def _falls_through(inst: SassInstruction) -> bool:
    """Whether a branch or exit may fall through: a guarded one (`@!PT`, never taken, always does), or a BRA on a
    predicate or register operand (`BRA.U !UP0, ...`, `BRA.DIV UR4, ...`)."""
    return bool(inst.guard) or (inst.base in ("BRA", "JMP") and len(inst.operands) > 1)


def basic_blocks(insts: tuple, labels: dict) -> tuple[list, list, list]:
    """Basic blocks: [first, end) instruction ranges, successors, and the entry blocks (each function's first)."""
    starts = {0} | {idx for _, idx in labels.values()}
    for n, inst in enumerate(insts):
        if n and inst.function != insts[n - 1].function:
            starts.add(n)
        if inst.base in _BRANCHES or inst.base in _ENDS:
            starts.add(n + 1)
    starts = sorted(s for s in starts if s < len(insts))
    ranges = list(zip(starts, starts[1:] + [len(insts)]))
    block_of = {a: b for b, (a, _) in enumerate(ranges)}
    succs = []
    for b, (a, e) in enumerate(ranges):
        last, out, falls = insts[e - 1], [], True
        if last.base in _BRANCHES:
            if last.guard != "!PT":
                out += [block_of[labels[t][1]] for t in last.targets if t in labels]
            falls = _falls_through(last)
        elif last.base in _ENDS:
            falls = _falls_through(last)
        if falls and b + 1 < len(ranges) and insts[ranges[b + 1][0]].function == last.function:
            out.append(b + 1)
        succs.append(sorted(set(out)))
    entries = [b for b, (a, _) in enumerate(ranges) if a == 0 or insts[a].function != insts[a - 1].function]
    return ranges, succs, entries


_SPIN_OPS = ("SYNCS.PHASECHK", "BRA", "NOP")


def sass_loops(insts: tuple, labels: dict) -> list[dict]:
    """Every loop of the SASS, described as ptx.ptx_loops describes PTX loops: one dict per loop header in
    address order with `kernel` (the function), `label`, `first_address`, `ranges` (its blocks' [first, end)
    instruction ranges), `depth`, `contains` (labels of the loops nested in it), `wgmma` (its HGMMA count, so that
    ptx.math_loops reads these dicts), `spin` (a loop of mbarrier TRYWAITs and branches only: a wait's
    out-of-line retry) and `retry` (the ranges of its blocks that are spin loops or only branch back from one)."""
    ranges, succs, entries = basic_blocks(insts, labels)
    bodies = natural_loops(succs, entries)
    label_at = {idx: label for label, (_, idx) in labels.items()}

    def is_spin(body: set) -> bool:
        return all(insts[i].opcode.startswith(_SPIN_OPS) for b in body for i in range(*ranges[b]))

    spin_blocks = set().union(*(body for body in bodies.values() if is_spin(body)))
    preds: dict[int, list] = {}
    for b, out in enumerate(succs):
        for t in out:
            preds.setdefault(t, []).append(b)
    for b, (a, e) in enumerate(ranges):  # a lone unconditional BRA reached only from a retry: the way back
        if e - a == 1 and insts[a].base == "BRA" and not _falls_through(insts[a]) and preds.get(b) \
                and all(p in spin_blocks for p in preds[b]):
            spin_blocks.add(b)
    loops = []
    for h, body in sorted(bodies.items(), key=lambda kv: ranges[kv[0]][0]):
        a, spin = ranges[h][0], is_spin(body)
        loops.append({
            "kernel": insts[a].function, "label": label_at.get(a, f"block{h}"), "first_address": insts[a].address,
            "ranges": [ranges[x] for x in sorted(body)],
            "depth": sum(h in other for other in bodies.values()),
            "contains": [label_at.get(ranges[g][0], f"block{g}") for g in sorted(bodies) if g != h and g in body],
            "wgmma": sum(insts[i].base == "HGMMA" for x in body for i in range(*ranges[x])),
            "spin": spin,
            "retry": [] if spin else [ranges[x] for x in sorted(body) if x in spin_blocks and x != h],
        })
    return loops


def loop_body(insts: tuple, loop: dict) -> list[SassInstruction]:
    """The instructions one iteration of a loop counts, in address order: its blocks less the retry blocks."""
    retry = {tuple(r) for r in loop["retry"]}
    return [insts[i] for r in loop["ranges"] if tuple(r) not in retry for i in range(*r)]
