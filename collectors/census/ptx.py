"""PTX text read without a compiler: instruction counts, the loops of a kernel, the math loops among them, and what
one PTX instruction moves through shared memory (text only; the census, the instruction mix and the critical path
read it).

    count_ptx(ptx)          PTX_PATTERNS' instruction counts of a whole kernel
    ptx_loops(ptx)          each loop (a label and a later branch back to it) with LOOP_PATTERNS' counts per
                            iteration, its body and its nesting
    math_loops(loops)       the loops that issue wgmma (not a producer's load loop); `math_loop_maxima` their most
                            bar.sync and setp/selp in one iteration
    instruction_lines(lines)  the instruction lines of PTX text, guards stripped
    smem_bytes(inst)        the bytes one thread moves with a shared-memory load or store
"""

from __future__ import annotations

import re

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


def natural_loops(succs: list, entries: list) -> dict[int, set]:
    """Header block -> blocks of its natural loop (the back edges to one header merged), over the blocks the
    entries reach, for a control-flow graph given as each block's successors; dominators by iterative data flow on
    bit sets. Shared by the PTX loops here and the SASS loops (collectors/census/sass_loops.py)."""
    n = len(succs)
    preds: list[list[int]] = [[] for _ in range(n)]
    for b, out in enumerate(succs):
        for t in out:
            preds[t].append(b)
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
    return bodies


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
    bodies = natural_loops(succs, entries)
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


# ---- one PTX instruction: the lines the instruction mix and the critical path read ---------------------------
_GUARD = re.compile(r"^\s*(?:@!?%\w+\s+)?")
_VEC = re.compile(r"\.v(\d)\.")
_BITS = re.compile(r"\.[busf](8|16|32|64)\b")
_LDMATRIX_X = re.compile(r"\.x(\d)\b")


def instruction_lines(lines: list[str]) -> list[str]:
    """The instruction lines of PTX text, guard stripped: no labels, directives, braces or comments."""
    out = []
    for line in lines:
        text = line.split("//", 1)[0].strip()
        if not text or text[0] in ".{}$" or text.endswith(":"):
            continue
        out.append(_GUARD.sub("", text))
    return out


def smem_bytes(inst: str) -> int:
    """Bytes one thread moves with a shared-memory load or store."""
    op = inst.split()[0]
    if op.startswith(("ldmatrix", "stmatrix")):  # x1/x2/x4 8x8 b16 matrices per warp: 8 bytes a thread each
        m = _LDMATRIX_X.search(op)
        return 4 * int(m.group(1)) if m else 4
    vec = _VEC.search(op)
    bits = _BITS.findall(op)
    return (int(vec.group(1)) if vec else 1) * (int(bits[-1]) // 8 if bits else 4)
