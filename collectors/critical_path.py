"""One warp's time through a math loop's iteration: an in-order issue simulation of its PTX with measured latencies.

The instruction mix (collectors/instruction_mix.py) says how much a loop issues; this says how long one warp of it
takes when each instruction must wait for the results it reads. `nodes(body)` turns the loop's PTX instructions into
compact nodes (latency class, registers written, registers read, and for wgmma its shape); `iteration_seconds`
replays them the way a Hopper warp issues (in order, one instruction a clock at most):

- an instruction starts when the previous one has issued, when every register it reads is ready (the writer's
  start + its class' latency), and when its pipe is free (the MUFU takes a warp instruction every
  `mufu_clocks` clocks; shared-memory instructions hold the partition's share of the shared-memory bandwidth);
- `wgmma.mma_async` issues like any instruction (reading its A registers and accumulator); `wgmma.commit_group`
  closes a group, which completes `group latency` after its commit, and not before the previous group completed
  plus this group's time at the tensor pipe's rate (one warp group's groups run in order);
- blocking instructions hold the warp: `wgmma.wait_group N` until every group but the newest N completed,
  `bar.sync` for the barrier's cost, an mbarrier wait for the cost of a wait whose phase has completed (the
  producer is assumed ahead: a ring that runs dry is not modelled), after which issue resumes.

Latencies are the run's micro-benchmarks (collectors/microbench.py, passed in as `Latencies`): fp32 and integer
arithmetic, conversions, compares and moves at the FMA latency; ex2 at the exp2 chain's step less one FMA
(the step is a negation and an ex2); shuffles and shared-memory loads at the shuffle latency (both go through the
SM's shared-memory crossbar; no shared-memory load latency is measured); stores, arrives and branches produce no
register anyone waits for. The iteration is replayed `REPLAYS` times from idle and the time between the ends of the
last two replays is the steady state, so values carried across iterations (a P·V left in flight across the next
QKᵀ) count once. Both sides of a branch inside the loop are replayed (the mix's own approximation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    instruction_mix._instructions gives them). extra: (kind, n, k) of a wgmma, N of a wait_group, bytes of a
    shared-memory access."""
    from collectors.instruction_mix import _smem_bytes

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
            kind, extra = XBAR, (_smem_bytes(inst) * 32 if not op.startswith("shfl") else 128)
        elif op.startswith(("st.shared", "stmatrix")):
            kind, extra = STORE, _smem_bytes(inst) * 32
        elif op.startswith(_NO_DEST):
            kind = STORE
        else:
            kind = ALU
        out.append((kind, tuple(written), tuple(read), extra))
    return tuple(out)


def iteration_seconds(loop_nodes: tuple, lat: Latencies, warpgroups_in_lockstep: float = 1.0) -> float:
    """Steady-state seconds of one iteration for one warp (see the module docstring). `warpgroups_in_lockstep`:
    warp groups issuing the same wgmma groups at the same time (they share the SM's tensor pipe)."""
    clock = 1.0 / lat.clock_hz
    t = 0.0  # when the next instruction may issue
    ready: dict[str, float] = {}
    mufu_free = xbar_free = 0.0
    pending: list[tuple] = []  # (kind, n, k, flops) of the open group
    groups: list[float] = []  # completion time of committed groups not yet waited for, oldest first
    last_done = 0.0
    ends = []
    for _ in range(REPLAYS):
        for kind, written, read, extra in loop_nodes:
            start = t
            for r in read:
                start = max(start, ready.get(r, 0.0))
            if kind == WAIT:
                keep = extra
                retire = groups[:len(groups) - keep] if keep else groups
                done = max(retire, default=start)
                groups = groups[len(groups) - keep:] if keep else []
                t = max(start, done) + clock
                continue
            if kind == BAR:
                t = start + lat.bar_sync_s
                continue
            if kind == MBAR_WAIT:
                t = start + lat.mbarrier_wait_s
                continue
            if kind == COMMIT:
                if pending:
                    lat_s, rate_s = _group_time(pending, lat, warpgroups_in_lockstep)
                    done = max(start + lat_s, last_done + rate_s)
                    groups.append(done)
                    last_done = done
                    pending = []
                t = start + clock
                continue
            if kind == WGMMA:
                pending.append(extra)
                t = start + clock
                continue
            if kind == MUFU:
                start = max(start, mufu_free)
                mufu_free = start + lat.mufu_clocks * clock
                latency = lat.ex2_s
            elif kind == XBAR:
                start = max(start, xbar_free)
                xbar_free = start + extra / lat.smem_bytes_per_clock * clock
                latency = lat.xbar_s
            elif kind == STORE:
                if extra:
                    start = max(start, xbar_free)
                    xbar_free = start + extra / lat.smem_bytes_per_clock * clock
                latency = 0.0
            else:
                latency = lat.alu_s
            for w in written:
                ready[w] = start + latency
            t = start + clock
        ends.append(max([t] + list(ready.values())))
    return ends[-1] - ends[-2]


def wgmma_groups(loop_nodes: tuple) -> list[tuple]:
    """(kind, n, k_total, flops) of every wgmma group one iteration commits, in program order."""
    out, pending = [], []
    for kind, _, _, extra in loop_nodes:
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
