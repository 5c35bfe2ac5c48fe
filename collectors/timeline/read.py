"""Proton's intra-kernel trace, the extraction step: the Chrome trace Triton 3.6's Proton writes for an instrumented
kernel, read into the run store's `timeline` table (runstore/schema.py documents its columns).

What Proton writes (Triton 3.6, `proton.start(..., data="trace", backend="instrumentation")`: each launch's
buffer is parsed into one cycle metric per closed scope, which `proton.finalize()` converts and writes,
third_party/proton/csrc/lib/Data/TraceData.cpp `convertToTimelineTrace` and
third_party/proton/common/lib/TraceDataIO/TraceWriter.cpp `StreamChromeTraceWriter::writeKernel`, whose strings
are in the wheel's libproton.so): one JSON object on one line,

    {"displayTimeUnit": "ns", "traceEvents": [event, ...]}

and one event per closed scope of every recorded warp of every program (CTA):

    name   the scope's name as the kernel declared it (`pl.enter_scope("consumer.softmax")`)
    cat    the kernel's name
    ph     "X" (a complete event)
    pid    "<kernel> Core<sm> CTA<program>": the SM (%smid) the program ran on and its linear program id
    tid    "warp <warp> (line <lane>)": the recording warp of the program, and a display lane (overlapping scopes
           of one warp, i.e. nested ones, go to separate lanes)
    ts     (cycle - the program's first recorded cycle + its start in global time - the launch's first program's
           start, in ns) / freq
    dur    (end cycle - start cycle) / freq
    args   {"Finalization Time (ns)": time the program spent copying its buffer out, "Frequency (MHz)": freq,
            "call_stack": the launch's context frames}
    cname  a Chrome colour per scope name

freq is 1000.0: ts and dur are microseconds at a 1 GHz clock, i.e. cycles / 1000, written as 32-bit floats (to the
nearest cycle for the first ~16 ms after the launch's first program, two cycles to 33 ms, ...). Within one program
every time is the SM's own clock (%clock with %clock_hi), so differences are exact cycles; between programs the
offset is the global timer's nanoseconds, which are not cycles. The table therefore keeps cycles relative to each
program's first event (`start_cycle`, `end_cycle`) and the program's start in ns separately (`program_start_ns`).

One trace file must hold one launch of one kernel (collectors/timeline/capture.py records exactly one): Proton
names the programs of two launches of the same kernel alike, and they could not be told apart.

Which partition of a warp-specialized kernel a warp belongs to is not in the trace: it follows from the compiled
kernel (`WarpLayout`, read from its TTGIR). Each scope's role is the prefix of its name ("producer.kv_wait" ->
producer), the convention of this toolkit's Gluon stages (kernels/stage1_warpspec.py ... stage5_full.py).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Columns of the `timeline` table this module fills (runstore/schema.py TABLES["timeline"], in that order; the
# case key columns run_id, impl, config_id, B.. are the caller's).
TIMELINE_COLUMNS = ["kernel", "sm", "program", "warp", "warp_group", "partition", "role", "scope", "item",
                    "iteration", "start_cycle", "end_cycle", "program_start_ns", "finalize_ns", "lane"]

# Phases (the part of a scope name after the role) that hold one work item: the n-th `tile` of a warp is its n-th
# work item.
TILE_PHASE = "tile"
# Phases that start a key-block iteration of the loop: the wait for the block's K (and V) slot.
ITERATION_START_PHASES = frozenset({"kv_wait", "k_wait"})
# Phases that happen once per work item, outside the key-block loop.
PER_ITEM_PHASES = frozenset({TILE_PHASE, "q_wait", "q_issue", "epilogue"})

_PID = re.compile(r"^(?P<kernel>.*) Core(?P<sm>\d+) CTA(?P<program>\d+)$")
_TID = re.compile(r"^warp (?P<warp>\d+) \(line (?P<lane>\d+)\)$")
WARPS_PER_GROUP = 4


class TraceUnreadable(ValueError):
    """A file is not a Proton intra-kernel Chrome trace this reader knows; the message is one sentence."""


# ---- where each warp sits: the compiled kernel's partitions ----------------------------------------------------
@dataclass(frozen=True)
class WarpLayout:
    """The warps of a warp-specialized kernel by partition: partition 0 (the default one) is warps
    0 .. default_warps - 1; the worker partitions, in the order `gl.warp_specialize` lists them, get their start
    warps as Triton 3.6 allocates them (lib/Conversion/TritonGPUToLLVM/AllocateWarpGroups.cpp: from default_warps
    on, the largest partitions first, ties in declaration order), and Triton pads the workers with idle warps to
    whole warp groups."""

    default_warps: int
    worker_warps: tuple[int, ...] = ()

    def __post_init__(self):
        if self.default_warps < 1 or any(n < 1 for n in self.worker_warps):
            raise ValueError(f"a partition has at least one warp, got {self.default_warps} and {self.worker_warps}.")

    @property
    def starts(self) -> tuple[int, ...]:
        """First warp of each partition, partition 0 first."""
        order = sorted(range(len(self.worker_warps)), key=lambda i: -self.worker_warps[i])  # stable: ties in order
        starts = [0] * len(self.worker_warps)
        at = self.default_warps
        for i in order:
            starts[i] = at
            at += self.worker_warps[i]
        return (0, *starts)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.default_warps, *self.worker_warps)

    @property
    def total_warps(self) -> int:
        """Warps per program as launched: the workers are padded to whole warp groups (`ttg.total-num-warps`)."""
        return self.default_warps + -(-sum(self.worker_warps) // WARPS_PER_GROUP) * WARPS_PER_GROUP

    def partition_of(self, warp: int) -> int | None:
        for p, (start, size) in enumerate(zip(self.starts, self.sizes)):
            if start <= warp < start + size:
                return p
        return None  # a padding warp

    def sampled_warps(self) -> tuple[int, ...]:
        """One warp per warp group of every partition (its first): what the capture asks Proton to record. The
        warps of a warp group issue their wgmmas together and are re-aligned at every hand-off (Gluon brackets
        each mbarrier operation with a barrier of the partition), so one warp shows the group's phases."""
        warps = set()
        for start, size in zip(self.starts, self.sizes):
            warps.update(range(start, start + size, WARPS_PER_GROUP))
        return tuple(sorted(warps))

    def as_dict(self) -> dict:
        return {"default_warps": self.default_warps, "worker_warps": list(self.worker_warps)}

    @classmethod
    def from_dict(cls, d: dict) -> WarpLayout:
        return cls(int(d["default_warps"]), tuple(int(n) for n in d.get("worker_warps", ())))


def warp_layout(ttgir: str) -> WarpLayout:
    """The WarpLayout of a kernel from its TTGIR (`CompiledKernel.asm["ttgir"]`): the module's `ttg.num-warps` and
    the `num_warps(n)` of each partition of its `ttg.warp_specialize`. A kernel without one is all partition 0."""
    m = re.search(r'"ttg\.num-warps"\s*=\s*(\d+)', ttgir)
    if not m:
        raise TraceUnreadable("the TTGIR names no ttg.num-warps, so it is not a compiled Triton kernel.")
    n_ops = ttgir.count("ttg.warp_specialize(")
    if n_ops > 1:
        raise TraceUnreadable(f"the kernel has {n_ops} ttg.warp_specialize regions; a layout of one is supported.")
    workers = tuple(int(n) for n in re.findall(r"\bnum_warps\((\d+)\)", ttgir)) if n_ops else ()
    return WarpLayout(int(m.group(1)), workers)


# ---- reading the file ------------------------------------------------------------------------------------------
def load_trace(path: str | Path) -> dict:
    """The JSON document of a trace file (Proton's `.chrome_trace`, or a gzip-compressed copy)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        doc = json.loads(raw)
    except OSError as exc:
        raise TraceUnreadable(f"cannot read {path} ({exc.strerror or exc}).") from None
    except (ValueError, EOFError) as exc:
        raise TraceUnreadable(f"{path} is not JSON ({str(exc).splitlines()[0][:120]}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        raise TraceUnreadable(f"{path} has no traceEvents list, so it is not a Chrome trace.")
    return doc


def trace_events(doc: dict) -> pd.DataFrame:
    """The complete ("X") events of a Proton trace document, one row each: name, kernel, sm, program, warp, lane,
    ts, dur (as written), freq_mhz, finalize_ns."""
    events = [e for e in doc["traceEvents"] if isinstance(e, dict) and e.get("ph") == "X"]
    if not events:
        return pd.DataFrame(columns=["name", "kernel", "sm", "program", "warp", "lane", "ts", "dur", "freq_mhz",
                                     "finalize_ns"])
    try:
        raw = pd.DataFrame({
            "name": [e["name"] for e in events],
            "pid": [e["pid"] for e in events],
            "tid": [e["tid"] for e in events],
            "ts": np.array([e["ts"] for e in events], dtype=float),
            "dur": np.array([e["dur"] for e in events], dtype=float),
            "freq_mhz": np.array([e["args"]["Frequency (MHz)"] for e in events], dtype=float),
            "finalize_ns": np.array([e["args"]["Finalization Time (ns)"] for e in events], dtype=np.int64),
        })
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceUnreadable(f"an event lacks Proton's fields ({type(exc).__name__}: {exc}); this is not a Proton "
                              "intra-kernel trace.") from None
    pids = pd.Series(raw["pid"].unique())
    pid_parts = pids.str.extract(_PID)
    if pid_parts.isna().any(axis=None):
        bad = pids[pid_parts.isna().any(axis=1)].iloc[0]
        raise TraceUnreadable(f"event pid {bad!r} is not Proton's '<kernel> Core<sm> CTA<program>'.")
    tids = pd.Series(raw["tid"].unique())
    tid_parts = tids.str.extract(_TID)
    if tid_parts.isna().any(axis=None):
        bad = tids[tid_parts.isna().any(axis=1)].iloc[0]
        raise TraceUnreadable(f"event tid {bad!r} is not Proton's 'warp <warp> (line <lane>)'.")
    pid_parts.index, tid_parts.index = pids, tids
    out = pd.DataFrame({
        "name": raw["name"],
        "kernel": raw["pid"].map(pid_parts["kernel"]),
        "sm": raw["pid"].map(pid_parts["sm"]).astype(np.int64),
        "program": raw["pid"].map(pid_parts["program"]).astype(np.int64),
        "warp": raw["tid"].map(tid_parts["warp"]).astype(np.int64),
        "lane": raw["tid"].map(tid_parts["lane"]).astype(np.int64),
        "ts": raw["ts"], "dur": raw["dur"], "freq_mhz": raw["freq_mhz"], "finalize_ns": raw["finalize_ns"],
    })
    return out


def read_timeline(trace: str | Path | dict, layout: WarpLayout | None = None) -> pd.DataFrame:
    """The `timeline` table of one Proton trace (a path or a loaded document): one row per recorded scope, columns
    TIMELINE_COLUMNS, sorted by program, warp and start. `layout` (the kernel's WarpLayout) fills `partition`;
    without it the column is null. Raises TraceUnreadable when the file is not such a trace, holds more than one
    kernel, or contradicts the layout."""
    doc = load_trace(trace) if not isinstance(trace, dict) else trace
    ev = trace_events(doc)
    if ev.empty:
        raise TraceUnreadable("the trace holds no scope events (was the kernel built with Proton's scopes?).")
    kernels = ev["kernel"].unique()
    if len(kernels) > 1:
        raise TraceUnreadable(f"the trace holds {len(kernels)} kernels ({', '.join(map(str, kernels[:3]))}); "
                              "one trace file must hold one launch of one kernel.")
    ticks = np.rint(ev["ts"].to_numpy() * ev["freq_mhz"].to_numpy()).astype(np.int64)
    dur = np.rint(ev["dur"].to_numpy() * ev["freq_mhz"].to_numpy()).astype(np.int64)
    if (dur < 0).any():
        raise TraceUnreadable("an event has a negative duration, so the trace is damaged.")
    origin = pd.Series(ticks).groupby(ev["program"].to_numpy()).transform("min").to_numpy()
    role_phase = ev["name"].str.partition(".")
    has_role = role_phase[1] == "."
    tl = pd.DataFrame({
        "kernel": ev["kernel"].astype(str),
        "sm": ev["sm"],
        "program": ev["program"],
        "warp": ev["warp"],
        "warp_group": ev["warp"] // WARPS_PER_GROUP,
        "partition": pd.array([pd.NA] * len(ev), dtype="Int64"),
        "role": role_phase[0].where(has_role, ""),
        "scope": ev["name"].astype(str),
        "start_cycle": ticks - origin,
        "end_cycle": ticks - origin + dur,
        "program_start_ns": origin,
        "finalize_ns": ev["finalize_ns"],
        "lane": ev["lane"],
    })
    if layout is not None:
        partition = {int(w): layout.partition_of(int(w)) for w in tl["warp"].unique()}
        tl["partition"] = pd.array(tl["warp"].map(partition).to_numpy(dtype=float, na_value=np.nan), dtype="Int64")
        problem = _layout_problem(tl, layout)
        if problem:
            raise TraceUnreadable(problem)
    phase = role_phase[2].where(has_role, ev["name"])
    tl = tl.assign(_phase=phase.to_numpy())
    tl = tl.sort_values(["program", "warp", "start_cycle", "end_cycle"], ascending=[True, True, True, False],
                        kind="stable").reset_index(drop=True)
    tl["item"] = _items(tl)
    tl["iteration"] = _iterations(tl)
    return tl[TIMELINE_COLUMNS]


def _layout_problem(tl: pd.DataFrame, layout: WarpLayout) -> str | None:
    """Why the trace contradicts the layout (a padding warp recorded scopes, or one partition's warps recorded
    scopes of different roles), or None."""
    idle = tl.loc[tl["partition"].isna(), "warp"]
    if len(idle):
        return (f"warp {int(idle.iloc[0])} recorded scopes but the kernel's layout ({layout.as_dict()}) makes it a "
                "padding warp; the layout is not this kernel's.")
    named = tl[tl["role"] != ""]
    roles = named.groupby("partition")["role"].unique()
    for p, rs in roles.items():
        if len(rs) > 1:
            return (f"partition {p} of the layout ({layout.as_dict()}) recorded scopes of roles "
                    f"{', '.join(sorted(rs))}; the layout is not this kernel's.")
    return None


def _items(tl: pd.DataFrame) -> pd.arrays.IntegerArray:
    """Work item of each event: the index of the warp's `<role>.tile` scope that contains its start (tl sorted by
    program, warp, start, longer first), null outside every tile."""
    is_tile = (tl["_phase"] == TILE_PHASE).to_numpy()
    keys = [tl["program"], tl["warp"]]
    n = pd.Series(is_tile.astype(np.int64)).groupby(keys).cumsum().to_numpy() - 1
    tile_end = pd.Series(np.where(is_tile, tl["end_cycle"].to_numpy(), np.nan)).groupby(keys).ffill().to_numpy()
    inside = (n >= 0) & (tl["start_cycle"].to_numpy() <= tile_end)
    return pd.array(np.where(inside, n, np.nan), dtype="Int64")


def _iterations(tl: pd.DataFrame) -> pd.arrays.IntegerArray:
    """Key-block iteration of each event within its work item: the number of iteration-starting waits (kv_wait,
    k_wait) of the warp at or before its start, minus one; null for per-item phases, outside items, and before the
    item's first iteration."""
    if not len(tl):
        return pd.array([], "Int64")
    starts = tl["_phase"].isin(ITERATION_START_PHASES).to_numpy()
    item = tl["item"].astype("float64").to_numpy()
    keys = [tl["program"], tl["warp"], pd.Series(np.nan_to_num(item, nan=-1.0))]
    n = pd.Series(starts.astype(np.int64)).groupby(keys).cumsum().to_numpy() - 1
    valid = (n >= 0) & ~np.isnan(item) & ~tl["_phase"].isin(PER_ITEM_PHASES).to_numpy()
    return pd.array(np.where(valid, n, np.nan), dtype="Int64")


def phase_of(scope: pd.Series) -> pd.Series:
    """The phase part of scope names ("consumer.kv_wait" -> "kv_wait"; a name without a role is its own phase)."""
    parts = scope.str.partition(".")
    return parts[2].where(parts[1] == ".", scope)


# ---- a smaller copy for viewing --------------------------------------------------------------------------------
def spread_sms(sms, n: int) -> list[int]:
    """`n` of the SM ids `sms`, evenly spread over their sorted order (all of them when n <= 0 or n >= len)."""
    ids = sorted({int(s) for s in sms})
    if n <= 0 or n >= len(ids):
        return ids
    picks = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return [ids[i] for i in sorted(set(picks.tolist()))]


def select_sms(doc: dict, sms) -> dict:
    """A copy of a Proton trace document with only the events of programs that ran on the SMs `sms` (the other
    entries of the document as they are), for a trace small enough to keep and open in Perfetto."""
    keep = {int(s) for s in sms}

    def wanted(e) -> bool:
        m = _PID.match(str(e.get("pid", ""))) if isinstance(e, dict) else None
        return m is not None and int(m.group("sm")) in keep

    return {**doc, "traceEvents": [e for e in doc["traceEvents"] if wanted(e)]}
