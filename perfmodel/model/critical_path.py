"""An SM partition's time through one iteration of its warps' math loops: an in-order issue replay of their PTX
with measured latencies.

The instruction mix (perfmodel/model/instruction_mix.py) says how much a loop issues; this says how long the warps of
one partition (scheduler) take when each instruction must wait for the results it reads and for the pipes the
warps share. `nodes(body)` turns the loop's PTX instructions into compact nodes (latency class, registers written,
registers read, and for wgmma its shape); `partition_seconds` replays the warps of a partition together, the way a
Hopper scheduler issues (each warp in order, one instruction a clock for the partition):

- an instruction starts when its warp's previous one has issued, when the partition's issue port is free, when
  every register it reads is ready (the writer's start + its class' latency), and when its pipe is free (the MUFU
  takes a warp instruction every `mufu_clocks` clocks; shared-memory instructions hold the partition's share of
  the shared-memory bandwidth); the earliest such instruction of any warp issues next;
- `wgmma.mma_async` issues like any instruction (reading its A registers and accumulator); `wgmma.commit_group`
  closes a group, which occupies the partition's tensor core for its time at the shape's measured rate (groups of
  every warp in commit order) and completes at the later of that and its measured latency after the commit;
- a node may carry a fifth field, the clocks its warp waits before its next instruction (a SASS control word's
  stall count, perfmodel/model/sass_mix.py); PTX nodes have four fields and hold their warp one clock; a node of 0
  clocks is bookkeeping and takes no issue slot;
- blocking instructions hold the warp: `wgmma.wait_group N` until every group but the newest N completed,
  `bar.sync` until every warp of its barrier group arrived, plus the barrier's cost; an mbarrier wait for the cost
  of a wait whose phase has completed (the producer is assumed ahead: a ring that runs dry is not modelled).

Latencies are the run's micro-benchmarks (collectors/ceilings/microbench.py, passed in as `Latencies`): fp32 and integer
arithmetic, conversions, compares and moves at the FMA latency; ex2 at the exp2 chain's step less one FMA
(the step is a negation and an ex2); shuffles and shared-memory loads at the shuffle latency (both go through the
SM's shared-memory crossbar; no shared-memory load latency is measured); stores, arrives and branches produce no
register anyone waits for. Every warp's iteration is replayed `REPLAYS` times from idle and the largest time
between the ends of a warp's last two replays is the steady state, so values carried across iterations (a P·V
left in flight across the next QKᵀ) count once. Both sides of a branch inside the loop are replayed (the mix's own
approximation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collectors.census.ptx import smem_bytes

_REG = re.compile(r"%[a-z]+\d+")
_SHAPE = re.compile(r"\.m(\d+)n(\d+)k(\d+)\.")
_WAIT = re.compile(r"wgmma\.wait_group\S*\s+(\d+)")
REPLAYS = 3

# node kinds
ALU, MUFU, XBAR, STORE, WGMMA, COMMIT, WAIT, BAR, MBAR_WAIT, OTHER = range(10)
_NO_DEST = ("st.", "bar.", "barrier.", "bra", "mbarrier.arrive", "mbarrier.init", "cp.async", "fence", "ret",
            "@", "wgmma.fence", "wgmma.commit", "wgmma.wait", "setmaxnreg", "red.", "prefetch")


@dataclass(frozen=True)
class Latencies:
    """What the replay charges (seconds, except the per-instruction pipe clocks)."""

    clock_hz: float
    alu_s: float
    ex2_s: float
    xbar_s: float
    bar_sync_s: float
    mbarrier_wait_s: float
    mufu_clocks: float  # clocks the partition's MUFU is busy per warp instruction
    smem_bytes_per_clock: float  # per SM partition
    wgmma_group_s: object  # callable (kind "ss"|"rs", n, k_total, flops) -> (latency s, time at the pipe's rate s)


def _operands(inst: str) -> tuple[list[str], list[str]]:
    """(registers written, registers read) of one PTX instruction."""
    op, _, rest = inst.partition(" ")
    rest = rest.strip().rstrip(";")
    if not rest:
        return [], []
    if op.startswith(_NO_DEST):
        return [], _REG.findall(rest)
    if rest.startswith("{"):  # a vector destination: {%r1, %r2, ...}, rest
        dest, _, srcs = rest[1:].partition("}")
        return _REG.findall(dest), _REG.findall(srcs)
    dest, _, srcs = rest.partition(",")
    return _REG.findall(dest), _REG.findall(srcs)


def nodes(body: list[str]) -> tuple:
    """Compact nodes (kind, written, read, extra) of a loop body's instructions (guard stripped, as
    collectors.census.ptx.instruction_lines gives them). extra: (kind, n, k) of a wgmma, N of a wait_group, bytes of a
    shared-memory access."""
    out = []
    for inst in body:
        op = inst.split()[0]
        written, read = _operands(inst)
        extra = None
        if op.startswith("wgmma.mma_async"):
            m, n, k = (int(x) for x in _SHAPE.search(op + ".").groups())
            a_regs = inst.split("}", 1)[1].lstrip(" ,").startswith("{")
            kind, extra = WGMMA, ("rs" if a_regs else "ss", n, k, 2 * m * n * k)
            read = read + written  # the accumulator is read too
            written = []  # ... and written when the group completes (wait_group blocks until then)
        elif op.startswith("wgmma.commit_group"):
            kind = COMMIT
        elif op.startswith("wgmma.wait_group"):
            kind, extra = WAIT, int(_WAIT.search(inst).group(1))
        elif op.startswith("wgmma."):
            kind = OTHER
        elif op.startswith(("bar.sync", "barrier.sync")):
            kind = BAR
        elif op.startswith(("mbarrier.try_wait", "mbarrier.test_wait")) or op == "mbarrier.wait":
            kind = MBAR_WAIT
        elif op.startswith("ex2"):
            kind = MUFU
        elif op.startswith(("shfl", "ld.shared", "ldmatrix")):
            kind, extra = XBAR, (smem_bytes(inst) * 32 if not op.startswith("shfl") else 128)
        elif op.startswith(("st.shared", "stmatrix")):
            kind, extra = STORE, smem_bytes(inst) * 32
        elif op.startswith(_NO_DEST):
            kind = STORE
        else:
            kind = ALU
        out.append((kind, tuple(written), tuple(read), extra))
    return tuple(out)


def iteration_seconds(loop_nodes: tuple, lat: Latencies, warpgroups_in_lockstep: float = 1.0) -> float:
    """Steady-state seconds of one iteration of one math group whose `warpgroups_in_lockstep` warp groups run the
    same loop joined by its bar.syncs (one warp of each on a partition; see `partition_seconds`)."""
    k = max(1, int(round(warpgroups_in_lockstep)))
    return partition_seconds([(loop_nodes, 0)] * k, lat)


class _Warp:
    __slots__ = ("nodes", "group", "pc", "t", "ready", "pending", "groups", "bars", "ends", "waiting", "last")

    def __init__(self, nodes: tuple, group) -> None:
        self.nodes, self.group = nodes, group
        self.pc, self.t, self.bars, self.waiting, self.last = 0, 0.0, 0, False, -1.0
        self.ready: dict[str, float] = {}
        self.pending: list[tuple] = []  # wgmmas of the open group
        self.groups: list[float] = []  # completion times of committed groups not yet waited for
        self.ends: list[float] = []


def partition_seconds(streams: list[tuple], lat: Latencies) -> float:
    """Steady-state seconds of one iteration of every warp on one SM partition (scheduler), replayed together.

    `streams`: (loop nodes, barrier group) per warp on the partition: one warp of each resident warp group (a
    warp group spans the four partitions, one warp on each, and the partitions are alike). Warps of the same
    barrier group are joined at each bar.sync (the lockstep warp groups of one consumer); others run freely. The
    warps share the partition's issue port (one instruction a clock), its MUFU, its share of shared memory and
    its tensor core: each committed wgmma group occupies the tensor pipe for its time at the shape's measured rate,
    in commit order, and completes at the later of that and its measured latency after its commit. At each step
    the instruction that can start earliest issues (ties: the warp that issued least recently). The period is
    the largest, over the warps, time between the ends of their last two replays.
    """
    clock = 1.0 / lat.clock_hz
    warps = [_Warp(nodes, group) for nodes, group in streams if nodes]
    if not warps:
        return 0.0
    members: dict = {}
    for w in warps:
        members[w.group] = members.get(w.group, 0) + 1
    arrived: dict[tuple, list] = {}
    issue_free = mufu_free = xbar_free = tensor_free = 0.0
    total = [len(w.nodes) * REPLAYS for w in warps]

    def candidate(w: _Warp) -> float:
        kind, _, read, extra = w.nodes[w.pc % len(w.nodes)][:4]
        start = max(w.t, issue_free)
        for r in read:
            start = max(start, w.ready.get(r, 0.0))
        if kind == WAIT:
            retire = w.groups[:len(w.groups) - extra] if extra else w.groups
            start = max([start] + retire)
        elif kind == MUFU:
            start = max(start, mufu_free)
        elif kind in (XBAR, STORE) and extra:
            start = max(start, xbar_free)
        return start

    while True:
        live = [i for i, w in enumerate(warps) if w.pc < total[i] and not w.waiting]
        if not live:
            if any(w.waiting for w in warps):  # a barrier nobody else reaches (should not happen): let them go
                for w in warps:
                    w.waiting = False
                continue
            break
        # the earliest start issues; among equals the warp that issued least recently (the schedulers' rotation)
        start, _, i = min((candidate(warps[i]), warps[i].last, i) for i in live)
        w = warps[i]
        node = w.nodes[w.pc % len(w.nodes)]
        kind, written, read, extra = node[:4]
        hold = node[4] if len(node) > 4 else 1  # clocks before the warp's next instruction (SASS: its control word)
        if hold:  # a node of no clocks is bookkeeping (SASS's COMMIT after the HGMMA closing a group): no issue slot
            issue_free = start + clock
        w.last = start
        if kind == WAIT:
            w.groups = w.groups[len(w.groups) - extra:] if extra else []
            w.t = start + clock
        elif kind == BAR:
            key = (w.group, w.bars)
            w.bars += 1
            arrived.setdefault(key, []).append((w, start))
            w.waiting = True
            if len(arrived[key]) == members[w.group]:
                leave = max(t for _, t in arrived[key]) + lat.bar_sync_s
                for other, _ in arrived.pop(key):
                    other.t, other.waiting = leave, False
        elif kind == MBAR_WAIT:
            w.t = start + lat.mbarrier_wait_s
        elif kind == COMMIT:
            if w.pending:
                lat_s, rate_s = _group_time(w.pending, lat, 1.0)
                begin = max(start, tensor_free)
                tensor_free = begin + rate_s
                w.groups.append(max(start + lat_s, tensor_free))
                w.pending = []
            w.t = start + (clock if hold else 0.0)
        elif kind == WGMMA:
            w.pending.append(extra)
            w.t = start + clock
        else:
            if kind == MUFU:
                mufu_free = start + lat.mufu_clocks * clock
                latency = lat.ex2_s
            elif kind == XBAR:
                xbar_free = start + extra / lat.smem_bytes_per_clock * clock
                latency = lat.xbar_s
            elif kind == STORE:
                if extra:
                    xbar_free = start + extra / lat.smem_bytes_per_clock * clock
                latency = 0.0
            else:
                latency = lat.alu_s
            for r in written:
                w.ready[r] = start + latency
            w.t = start + clock
        if hold > 1 and not w.waiting:
            w.t = max(w.t, start + hold * clock)
        w.pc += 1
        if w.pc % len(w.nodes) == 0:
            w.ends.append(max([w.t] + list(w.ready.values())))
    return max(w.ends[-1] - w.ends[-2] for w in warps)


def wgmma_groups(loop_nodes: tuple) -> list[tuple]:
    """(kind, n, k_total, flops) of every wgmma group one iteration commits, in program order."""
    out, pending = [], []
    for kind, _, _, extra, *_ in loop_nodes:
        if kind == WGMMA:
            pending.append(extra)
        elif kind == COMMIT and pending:
            out.append((pending[0][0], pending[0][1], sum(p[2] for p in pending), sum(p[3] for p in pending)))
            pending = []
    return out


def _group_time(pending: list[tuple], lat: Latencies, lockstep: float) -> tuple[float, float]:
    """(latency, time at the tensor pipe's rate) of one committed group: the measured group latency for its shape
    (at the group's K), and its FLOPs at the measured per-shape rate, times the warp groups sharing the pipe."""
    kind, n, _, _ = pending[0]
    k_total = sum(p[2] for p in pending)
    flops = sum(p[3] for p in pending)
    latency, rate_s = lat.wgmma_group_s(kind, n, k_total, flops)
    return max(latency, lockstep * rate_s), lockstep * rate_s
