"""Stage 5's search space: its config (one point of it), the register split of its consumer groups, the candidates
its tuner times per key, and the technique switches an ablation flips (kernels/__init__.py `Switch`).

Kept apart from the kernel (kernels/stage5_full.py, which re-exports every name here) because it is a different job:
which configs exist and which technique each field turns on, read by the tuner, the census and the ablation, while
the kernel file holds the Gluon code and its launcher.

Issue 26's levers (`dynamic`, `lean_softmax`, `lazy_rescale`, and BLOCK_M=192 under the dynamic schedule) are off
in `Config()`, the untuned default, which compiles to the same code as before them; the tuner's candidates include
them switched on. That is safe because the tuner keeps a candidate only when its output agrees with stage 0's
(kernels/tuner.py, MAX_REL_DIFF), and `perfmodel collect` checks the tuned case and every ablation variant against
the float64 reference with the error budget before timing it.

Registers of three consumer groups (BLOCK_M=192): 16 warps launch with 65536 / 512 = 128 registers a thread, and
setmaxnreg moves them to 160 a consumer thread and 24 for the producer (3 x 160 + 24 = 504 <= 4 x 128 per lane).
What a consumer thread keeps live per key block, in fp32 registers (a warp group of 128 threads owns 64 rows):
acc = 64 x HEAD_D / 128, S = 64 x BLOCK_N / 128, and P as the wgmma A operand = half of S (16-bit). With overlap
(S of block j+1 live beside P of block j) that is HEAD_D/2 + BLOCK_N/2 + BLOCK_N/4 before addresses, the row state
and the loop's indices (about 20-30 more). D=64, BLOCK_N=128: 32 + 64 + 32 = 128, which ptxas fits without overlap
and spills with it (80 to 364 bytes in the census); BLOCK_N=64: 80, fits both ways. D=128, BLOCK_N=128: 64 + 64 +
32 = 160, the whole budget before any overhead, and ptxas spills (16 to 32 bytes) even without overlap;
BLOCK_N=64: 64 + 32 + 16 = 112, fits with overlap. So the dynamic three-group candidates at D=128 take BLOCK_N=64
(the older BLOCK_N=128 one, without overlap, stays as it was measured).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import Switch
from ._gluon import PRODUCER_REGS, kernel_maxnreg


@dataclass(frozen=True)
class Config:
    """One point of stage 5's search space."""

    BLOCK_N: int = 128
    ring: int = 3
    masked_loop: bool = False
    persistent: bool = True
    pingpong: bool = True
    overlap: bool = True
    BLOCK_M: int = 128  # 64 query rows per consumer warp group with pingpong: 128 = two groups, 192 = three
    q_ring: int = 1  # Q buffers per consumer: 2 loads the next work item's Q while this one runs
    # issue 26's levers, off by default (the untuned config compiles to the code measured before them)
    dynamic: bool = False  # work items fetched from an atomic counter (kernels/_gluon.py `next_tile`)
    lean_softmax: bool = False  # row sums kept per lane, reduced once per work item; max and sum in 4 chains a lane
    lazy_rescale: bool = False  # O rescaled only when a row's max grows by more than 2**8 (RESCALE_LOG2)

    LEVERS = ("dynamic", "lean_softmax", "lazy_rescale")

    def __str__(self) -> str:
        # a lever is named only when on, so the reports (and variant ids) of the configs before them stay as they were
        return (f"BLOCK_M={self.BLOCK_M} BLOCK_N={self.BLOCK_N} ring={self.ring} masked_loop={self.masked_loop} "
                f"persistent={self.persistent} pingpong={self.pingpong} overlap={self.overlap} q_ring={self.q_ring}"
                + "".join(f" {name}=True" for name in self.LEVERS if getattr(self, name)))

    @property
    def consumers(self) -> int:
        """Consumer partitions: one warp group per 64 query rows with pingpong, else one 8-warp consumer."""
        return self.BLOCK_M // 64 if self.pingpong else 1


def register_split(consumers: int) -> tuple[int, int]:
    """(warps of the whole program, registers a consumer thread gets) for `consumers` consumer partitions: the
    producer's warp group keeps PRODUCER_REGS, the consumer groups share the rest of the register file evenly (a
    single consumer is one 8-warp partition)."""
    groups = (2 if consumers == 1 else consumers) + 1
    per_group = kernel_maxnreg(4 * groups) * groups
    share = 2 if consumers == 1 else consumers
    return 4 * groups, min(256, (per_group - PRODUCER_REGS) // share // 8 * 8)


def candidate_configs(S: int, D: int, causal: bool) -> list[Config]:
    """The configs tuned for one key: stage 4's config, each technique switched off alone, the ring depths (K/V
    and Q) and key-block width around it, and issue 26's levers switched on (each alone on stage 4's config, the
    dynamic schedule with the lean softmax, and three consumer groups under the dynamic schedule). Sixteen to
    twenty per key (a Gluon candidate compiles in 1-3 s and times in 0.05 s)."""
    cands = [
        Config(),                          # stage 4: ping-pong, overlap, persistent, 3-deep ring
        Config(ring=2),
        Config(overlap=False),             # each wgmma waited at once
        Config(overlap=False, ring=2),
        Config(persistent=False),          # one program per work item
        Config(pingpong=False),            # one 8-warp consumer: no ping-pong
    ]
    if D == 64:
        cands.append(Config(ring=4))
        # three consumer groups (192 rows, 160 registers each): more warps to hide the exp2 latency at D=64
        cands.append(Config(BLOCK_M=192))
        cands.append(Config(BLOCK_M=192, overlap=False))
        cands.append(Config(BLOCK_M=192, ring=4, overlap=False))
        # the next work item's Q loaded during this one (2 x 8 KB more a consumer): short rows of key blocks
        cands.append(Config(q_ring=2))
        cands.append(Config(q_ring=2, ring=4))
        cands.append(Config(q_ring=2, overlap=False))  # (BLOCK_M=192 with q_ring=2 spills at 160 registers)
    else:
        cands.append(Config(BLOCK_N=64, ring=4))
        cands.append(Config(BLOCK_M=192, overlap=False, ring=2))  # 2 x 64 KB of K/V + 48 KB of Q
        cands.append(Config(q_ring=2, ring=2))  # 2 x 64 KB of K/V + 2 x 32 KB of Q
        cands.append(Config(q_ring=2, ring=2, overlap=False))
    # issue 26's levers (each checked like every candidate: see the module docstring)
    cands += [Config(dynamic=True), Config(lean_softmax=True), Config(lazy_rescale=True),
              Config(dynamic=True, lean_softmax=True)]
    if D == 64:  # three consumer groups under the dynamic schedule, in the register budget (module docstring)
        cands += [Config(BLOCK_M=192, overlap=False, dynamic=True),
                  Config(BLOCK_M=192, BLOCK_N=64, ring=4, dynamic=True),
                  Config(BLOCK_M=192, overlap=False, dynamic=True, lean_softmax=True)]
    else:  # D=128: only BLOCK_N=64 leaves three consumer groups room (module docstring)
        cands += [Config(BLOCK_M=192, BLOCK_N=64, dynamic=True), Config(BLOCK_M=192, BLOCK_N=64, overlap=False,
                                                                         dynamic=True)]
    return list(dict.fromkeys(cands))


# The techniques of stages 2-4 as fields of Config, and the plan constraint each removes (the plan's stage table
# and each constraint's "removal" text, perfmodel/data/einstein.toml). `perfmodel collect` measures each by
# ablation: the fastest correct candidate with it on against the fastest with it off, and the flip of the tuned
# config.
SWITCHES = (
    Switch("masked_loop", False, True, (3,),
           "masks only on the diagonal and tail key blocks; the steady-state blocks carry no mask (stage 2, the "
           "stage the plan credits with #3)"),
    Switch("persistent", True, False, (2,),
           "persistent grid of about one program per SM walking the work items, causal heaviest first (#2)"),
    Switch("pingpong", True, False, (4,),
           "two consumer warp groups in ping-pong: one's softmax under the other's wgmmas (stage 4, #4)"),
    Switch("overlap", True, False, (4,),
           "asynchronous wgmma: P·V of one key block in flight during the softmax of the next (stage 4, #4)"),
    # Issue 26's levers. None of them is the removal the plan names for any of its four constraints (predicated
    # masks; a persistent grid-stride loop; no __syncthreads; producer/consumer warp specialization), so they credit
    # none (`removes` is empty): their gains are in the run's `ablation` table, not in a constraint's evidence.
    Switch("dynamic", True, False, (),
           "dynamic longest-first tile scheduler: each program fetches its next work item from an atomic counter "
           "(causal heaviest first in each L2 section); load balance across SMs, which no plan constraint names "
           "(#2's removal is the persistent grid, the `persistent` switch)", (("persistent", True),)),
    Switch("lean_softmax", True, False, (),
           "softmax instruction work: row sums kept per lane and quad-reduced once per work item, the in-lane max "
           "and sum folded in 4 independent chains; no plan constraint"),
    Switch("lazy_rescale", True, False, (),
           "O rescaled only when a row's max grows by more than 2**8 (exact in real arithmetic; the decision is a "
           "warp-group reduction per key block); no plan constraint"),
    Switch("BLOCK_M", 192, 128, (),
           "three consumer warp groups (192 query rows a work item) instead of two; no plan constraint",
           (("pingpong", True),)),
)
# The plan constraints this kernel has no switch for, and why.
NOT_ABLATABLE = {
    1: "the diagonal and tail masks are a uniform branch per key block (masked_loop) plus predicated selects "
       "inside the masked blocks; no variant has divergent branches to switch off",
}
