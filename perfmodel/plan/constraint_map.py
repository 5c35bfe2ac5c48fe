"""Which measurements speak to which of the plan's four constraints: written down once, shown to the user.

The plan ("Einstein inversion", seed/einstein-triton-integration.md) names four FA3 constraints and claims a gain
for removing each. For every constraint this table says which part of a measured kernel's time it can at most
account for, so that the analysis can give an Amdahl bound: if a fraction f of the time (or of the warps' stall
cycles) is attributable to the constraint, removing it entirely speeds the kernel up by at most 1 / (1 - f).

Stall fractions come from Nsight Compute's WarpStateStats (the run's `stalls` table): the cycles a warp spends
stalled for a reason per issued instruction, over the sum for all reasons ("Warp Cycles Per Issued Instruction").
Such an f is an upper bound on the time share, because while one warp stalls another may issue; that is the
direction an Amdahl bound needs.

Why each mapping (NVIDIA Kernel Profiling Guide, "Warp Stall Reasons"):

1. Branching -> `branch_resolving`: warps waiting for a branch target to be computed and the warp's active mask
   to be updated; divergence shows up here. Evidence beside it: 100 - branch uniformity (% of branch targets not
   uniform across a warp's active threads). A kernel without branches reads uniformity 0: not applicable.
2. Launch -> time, not stalls: host launch time over kernel time (the run's `launch` table; counted as if fully
   exposed, which a busy stream would hide, so again an upper bound) plus the wave tail: with w waves per SM
   (ncu `waves_per_sm`, LaunchStats) the last partial wave leaves (ceil(w) - w) / ceil(w) of the SM-time idle,
   which a persistent grid can reclaim.
3. Sync -> `barrier` + `membar`: warps waiting at a CTA barrier (bar.sync, __syncthreads) and at a memory fence.
   Evidence beside it: the static bar.sync count of the compiled code (`census` table).
4. Memory -> `long_scoreboard` + `lg_throttle`: waiting for an L1TEX (global/local memory) result, and the
   local/global instruction queue being full. Evidence beside it: DRAM throughput (% of peak). Waits on TMA
   loads through mbarriers may appear under other reasons on Hopper; the table shows all reasons so a reader
   can check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConstraintEvidence:
    """How one constraint is measured: the stall reasons (or time terms) that make up its fraction f."""

    constraint_id: int
    name: str
    basis: str  # "stalls" or "time"
    stall_reasons: tuple[str, ...]
    evidence_metrics: tuple[str, ...]  # short metric names (collectors/ncu/metrics.py) shown beside the bound
    why: str


CONSTRAINT_EVIDENCE: dict[int, ConstraintEvidence] = {
    1: ConstraintEvidence(
        1, "branching", "stalls", ("branch_resolving",), ("branch_uniformity_pct",),
        "branch_resolving stalls: warps waiting for a branch target and active mask; "
        "100 - branch uniformity as evidence of divergence",
    ),
    2: ConstraintEvidence(
        2, "launch", "time", (), ("waves_per_sm",),
        "host launch time / kernel time (as if fully exposed) plus the idle share of the last partial wave",
    ),
    3: ConstraintEvidence(
        3, "sync", "stalls", ("barrier", "membar"), (),
        "barrier + membar stalls: warps waiting at CTA barriers and memory fences",
    ),
    4: ConstraintEvidence(
        4, "memory", "stalls", ("long_scoreboard", "lg_throttle"), ("dram_throughput_pct",),
        "long_scoreboard + lg_throttle stalls: warps waiting for global memory results or a full LSU queue",
    ),
}

# stall reason -> constraint id, for colouring stall charts by constraint.
REASON_TO_CONSTRAINT: dict[str, int] = {
    reason: ev.constraint_id for ev in CONSTRAINT_EVIDENCE.values() for reason in ev.stall_reasons
}


def mapping_rows() -> list[dict]:
    """The mapping as rows for a table in the report and the dashboard."""
    return [
        {
            "constraint": ev.constraint_id,
            "name": ev.name,
            "basis": ev.basis,
            "stall reasons": ", ".join(ev.stall_reasons) or "(time-based)",
            "evidence": ", ".join(ev.evidence_metrics) or "census bar_sync",
            "why": ev.why,
        }
        for ev in CONSTRAINT_EVIDENCE.values()
    ]


def amdahl_max_gain(fraction: float) -> float:
    """Most speed-up from removing a share `fraction` of the time entirely, as a gain (0.25 = +25%)."""
    if fraction != fraction:  # NaN: not measured
        return float("nan")
    if fraction >= 1.0:
        return float("inf")
    return 1.0 / (1.0 - max(fraction, 0.0)) - 1.0
