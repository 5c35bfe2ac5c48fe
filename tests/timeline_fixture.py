"""A SYNTHETIC Proton intra-kernel trace for the timeline tests (never shipped, never shown as measured).

Nothing here was measured. `SCHEDULE` is made up: a warp-specialized ping-pong kernel of stage 4's shape (layout:
consumer 0 = warps 0-3, consumer 1 = warps 4-7, a one-warp producer at warp 8; one warp per warp group recorded),
two programs on SMs 3 and 7, two work items each of three key blocks, with round phase durations so that the
tests can derive the figures by hand. `chrome_trace(SCHEDULE)` then writes it exactly as Triton 3.6's Proton
writes an instrumented launch, which is why this module exists: the format was derived from Proton's own source,
not from a captured file (third_party/proton/csrc/lib/Data/TraceData.cpp, `convertToTimelineTrace` and
`dumpCycleMetricTrace`; third_party/proton/common/lib/TraceDataIO/TraceWriter.cpp, `StreamChromeTraceWriter::
writeKernel`; the event field names, the cycle-metric fields and the Chrome colour names checked against the
strings in Triton 3.6.0's libproton.so):

- each recorded scope is a cycle metric (kernel, program, warp, SM, start and end cycle, the program's start and
  finalization times); per launch they are sorted by program, warp and start cycle, and every scope name gets one
  id in that order (a name declared twice in the kernel is one id here);
- the writer walks the SMs in ascending order (std::map), each SM's programs in program order, each program's
  warps, each warp's scopes by start;
- name = the scope's name, cat = the kernel, ph = "X", pid = "<kernel> Core<sm> CTA<program>", tid =
  "warp <w> (line <lane>)" with Proton's greedy lanes for overlapping (nested) scopes, cname = Proton's Chrome
  colour list cycled over the scope ids in the order the writer meets them;
- ts = float32(cycle + (program start ns - first program start ns) - program's first cycle) / 1000.0f and
  dur = float32(end - start) / 1000.0f (32-bit floats, printed as doubles);
- args = {"Finalization Time (ns)", "Frequency (MHz)": 1000.0, "call_stack": the launch's context frames, ROOT
  first, without the scope: ["ROOT", "<kernel>"] for a launch outside any proton.scope};
- nlohmann::json's dump: keys sorted, no spaces, one line and a newline. nlohmann prints a double with Grisu2,
  which may give more digits than Python's shortest repr for the same value; the parsed numbers are the same.

The committed copy is tests/data/synthetic-timeline/timeline/stage4-pingpong.chrome_trace (and its .meta.json);
`python -m tests.timeline_fixture` writes them again. A real trace, captured on the H200 by
`perfmodel collect --timeline` (the run folder's timeline/ holds it), goes under tests/data/<gpu>/timeline/, where tests/test_timeline_read.py reads every
trace it finds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collectors.timeline.read import WarpLayout

KERNEL = "_attn_fwd"
LAYOUT = WarpLayout(4, (4, 1))  # stage 4: consumer 0 (default, warps 0-3), consumer 1 (warps 4-7), producer (8)
CONSUMER_WARPS = (0, 4)
PRODUCER_WARP = 8
FIXTURE = Path(__file__).parent / "data" / "synthetic-timeline" / "timeline" / "stage4-pingpong.chrome_trace"
CHROME_COLOURS = ("cq_build_passed", "cq_build_failed", "thread_state_iowait", "thread_state_running",
                  "thread_state_runnable", "thread_state_unknown", "rail_response", "rail_idle", "rail_load",
                  "cq_build_attempt_passed", "cq_build_attempt_failed")
FREQ_MHZ = 1000.0

# ---- the made-up schedule (cycles) -----------------------------------------------------------------------------
# A consumer's steady-state key block (blocks 1 and 2 of a work item) lasts PERIOD cycles from its kv_wait:
#   kv_wait [0, 10)  turn_wait [10, 20)  mma_issue [20, 30)  qk [30, 70)  softmax [70, 150)  pv [150, 160)
#   rescale [160, 180)  then 20 untracked cycles.
# Block 0 of an item: kv_wait [0, 10), turn_wait [10, 20), qk (issue + wait) [20, 70), softmax [70, 150).
# After block 2 a last pv [0, 30) and the epilogue [40, 100) (from the end of block 2).
# Consumer 1 runs the same PERIOD // 2 later than consumer 0 (the ping-pong).
PERIOD = 200
BLOCKS = 3
ITEMS = 2
PROGRAMS = ((0, 3, 1_000_000, 5_000), (1, 7, 2_500_000, 5_400))  # (program, SM, its first cycle, start ns)
ITEM_CYCLES = 1_000  # a work item every this many cycles
FINALIZE_NS = (2_048, 1_536)
# Producer, per item from 150 cycles before consumer 0's first kv_wait: q_wait [0, 5) q_issue [5, 15) q_wait
# [15, 20) q_issue [20, 30) (one Q per consumer), then per block kv_wait [-40, -30) and kv_issue [-30, 0) relative
# to the issue's end, which is LOAD_LEAD cycles before consumer 0's kv_wait for the block ends (block 0: starts).
LOAD_LEAD = 40


@dataclass(frozen=True)
class Scope:
    program: int
    sm: int
    warp: int
    scope: str
    start_cycle: int  # absolute SM clock (before Proton subtracts the program's first cycle)
    end_cycle: int


def _scope(program, sm, warp, name, start, end) -> Scope:
    return Scope(program, sm, warp, name, int(start), int(end))


def consumer_item(program: int, sm: int, warp: int, t0: int) -> list[Scope]:
    """One consumer's scopes for one work item whose first kv_wait starts at t0 (see the schedule above)."""
    s = [_scope(program, sm, warp, "consumer.tile", t0 - 12, t0 + (BLOCKS - 1) * PERIOD + 180 + 110),
         _scope(program, sm, warp, "consumer.q_wait", t0 - 10, t0 - 2),
         _scope(program, sm, warp, "consumer.kv_wait", t0, t0 + 10),
         _scope(program, sm, warp, "consumer.turn_wait", t0 + 10, t0 + 20),
         _scope(program, sm, warp, "consumer.qk", t0 + 20, t0 + 70),
         _scope(program, sm, warp, "consumer.softmax", t0 + 70, t0 + 150)]
    for b in range(1, BLOCKS):
        t = t0 + b * PERIOD
        s += [_scope(program, sm, warp, "consumer.kv_wait", t, t + 10),
              _scope(program, sm, warp, "consumer.turn_wait", t + 10, t + 20),
              _scope(program, sm, warp, "consumer.mma_issue", t + 20, t + 30),
              _scope(program, sm, warp, "consumer.qk", t + 30, t + 70),
              _scope(program, sm, warp, "consumer.softmax", t + 70, t + 150),
              _scope(program, sm, warp, "consumer.pv", t + 150, t + 160),
              _scope(program, sm, warp, "consumer.rescale", t + 160, t + 180)]
    end = t0 + (BLOCKS - 1) * PERIOD + 180
    s += [_scope(program, sm, warp, "consumer.pv", end, end + 30),
          _scope(program, sm, warp, "consumer.epilogue", end + 40, end + 100)]
    return s


def producer_item(program: int, sm: int, t0: int) -> list[Scope]:
    """The producer's scopes for the work item whose consumer-0 kv_wait of block 0 starts at t0."""
    w = PRODUCER_WARP
    q0 = t0 - 150
    s = [_scope(program, sm, w, "producer.tile", q0 - 2, t0 + (BLOCKS - 1) * PERIOD + 10 - LOAD_LEAD + 1),
         _scope(program, sm, w, "producer.q_wait", q0, q0 + 5),
         _scope(program, sm, w, "producer.q_issue", q0 + 5, q0 + 15),
         _scope(program, sm, w, "producer.q_wait", q0 + 15, q0 + 20),
         _scope(program, sm, w, "producer.q_issue", q0 + 20, q0 + 30)]
    for b in range(BLOCKS):
        # issue end: LOAD_LEAD before consumer 0's kv_wait of this block ends (block 0: before it starts)
        issue_end = t0 - LOAD_LEAD if b == 0 else t0 + b * PERIOD + 10 - LOAD_LEAD
        s += [_scope(program, sm, w, "producer.kv_wait", issue_end - 40, issue_end - 30),
              _scope(program, sm, w, "producer.kv_issue", issue_end - 30, issue_end)]
    return s


def schedule() -> list[Scope]:
    """Every scope of the synthetic launch."""
    out = []
    for program, sm, first_cycle, _ in PROGRAMS:
        for t in range(ITEMS):
            t0 = first_cycle + 200 + t * ITEM_CYCLES
            out += producer_item(program, sm, t0)
            for c, warp in enumerate(CONSUMER_WARPS):
                out += consumer_item(program, sm, warp, t0 + c * PERIOD // 2)
    return out


SCHEDULE = schedule()


# ---- Proton's writer, emulated ---------------------------------------------------------------------------------
def _lanes(events: list[Scope]) -> list[int]:
    """Proton's assignLineIds: events sorted by start, each on the first lane where it overlaps nothing."""
    order = sorted(range(len(events)), key=lambda i: events[i].start_cycle)
    lanes: list[list[tuple[int, int]]] = []
    out = [0] * len(events)
    for i in order:
        s, e = events[i].start_cycle, events[i].end_cycle
        for k, lane in enumerate(lanes):
            if all(not (s < ie and e > is_) for is_, ie in lane):
                break
        else:
            k = len(lanes)
            lanes.append([])
        lanes[k].append((s, e))
        out[i] = k
    return out


def _f32_div(cycles: int) -> float:
    return float(np.float32(np.float32(cycles) / np.float32(FREQ_MHZ)))


def chrome_trace(scopes: list[Scope], kernel: str = KERNEL) -> str:
    """The Chrome trace Proton 3.6 writes for these scopes (see the module docstring)."""
    starts_ns = {p: ns for p, _, _, ns in PROGRAMS}
    finalize = {p: f for (p, *_), f in zip(PROGRAMS, FINALIZE_NS)}
    first_ns = min(starts_ns.values())
    ordered = sorted(scopes, key=lambda s: (s.program, s.warp, s.start_cycle))  # convertToTimelineTrace's sort
    ids: dict[str, int] = {}
    for s in ordered:
        ids.setdefault(s.scope, len(ids))
    colours: dict[int, str] = {}
    events = []
    for sm, program in sorted({(s.sm, s.program) for s in scopes}):
        mine = [s for s in ordered if s.program == program]
        first_cycle = min(s.start_cycle for s in mine)
        adjust = (starts_ns[program] - first_ns) - first_cycle
        for warp in sorted({s.warp for s in mine}):
            trace = [s for s in mine if s.warp == warp]
            for s, lane in zip(trace, _lanes(trace)):
                colours.setdefault(ids[s.scope], CHROME_COLOURS[len(colours) % len(CHROME_COLOURS)])
                events.append({
                    "cname": colours[ids[s.scope]], "name": s.scope, "cat": kernel, "ph": "X",
                    "pid": f"{kernel} Core{sm} CTA{program}", "tid": f"warp {warp} (line {lane})",
                    "ts": _f32_div(s.start_cycle + adjust), "dur": _f32_div(s.end_cycle - s.start_cycle),
                    "args": {"Finalization Time (ns)": finalize[program], "Frequency (MHz)": FREQ_MHZ,
                             "call_stack": ["ROOT", kernel]},
                })
    return json.dumps({"displayTimeUnit": "ns", "traceEvents": events}, sort_keys=True, separators=(",", ":")) + "\n"


def meta() -> dict:
    """The sidecar the timeline phase (collectors/sweep/timeline_phase.py) writes beside a trace: what kernel, layout and capture it holds."""
    return {"synthetic": True, "kernel": KERNEL, "impl": "stage4_overlap", "layout": LAYOUT.as_dict(),
            "sampled_warps": list(LAYOUT.sampled_warps()),
            "note": "made up by tests/timeline_fixture.py in Proton 3.6's format; not a measurement"}


def write(path: Path = FIXTURE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chrome_trace(SCHEDULE))
    path.with_name(path.name.replace(".chrome_trace", ".meta.json")).write_text(json.dumps(meta(), indent=1) + "\n")


if __name__ == "__main__":
    write()
