"""Proton timelines, the transformation step: figures with their spread, from a `timeline` table
(collectors/timeline/read.py) of one instrumented launch.

Every figure is computed per sample (a program's warp, or one work item) and summarized over the samples by its
median and its 20th and 80th percentiles, so a figure always says how much it varies across the SMs and work
items. `figures(timeline)` returns one tidy frame, one row per (figure, partition, phase):

    figure     what is measured (below)
    partition  "<role><k>": the k-th partition of that role, in the kernel's partition order ("producer0",
               "consumer0", "consumer1", ...); by warp group where the timeline has no partitions
    phase      the scope phase or phase kind the row is about ("" where the figure has none)
    sample     what one sample is: "program" (one recorded warp over its whole program) or "work_item" (one warp
               over one work item)
    n          samples summarized
    median, p20, p80   over the samples
    unit       "share" (0..1) or "cycles" (SM clock cycles)

The figures:

    time_share         share of a warp's recorded span (first scope start to last scope end in its program) spent in
                       each phase kind (`phase` = wait | mma | issue | compute | untracked): wait = hand-off waits
                       (`*_wait`: K/V slots, Q, the ping-pong turn), mma = wgmma issue and waits (qk, pv,
                       mma_issue), issue = TMA issue (`*_issue`), compute = mask, softmax, rescale, epilogue and other
                       named phases, untracked = time between scopes
    busy_share         1 - the wait share of the same samples: the partition's time not spent waiting on another
    phase_cycles       cycles per key-block iteration of each per-iteration phase (a work item's total for the
                       phase / its iterations), and per work item of each per-item phase (q_wait, epilogue, ...)
    iteration_cycles   cycles per key-block iteration: (end of the work item's last in-loop scope - start of its
                       first iteration) / iterations
    load_hidden_share  per consumer work item, 1 - (time the consumer waited for K/V after the producer had issued
                       them) / (time from the producer's issue to the consumer's release from the wait), over the
                       item's blocks: 1 = every load had landed before the consumer needed it. The n-th issue of the
                       producer's `X_issue` is paired with the n-th `X_wait` of each consumer (X = kv, k, v), as
                       both walk the same ring of slots in the same order
    load_under_mma_share  share of those issue-to-release windows during which some consumer of the program had
                       wgmma work in flight (below)
    pingpong_share     kernels with two or more consumer partitions: share of a consumer's softmax time during which
                       another consumer partition had wgmma work in flight: the overlap the ping-pong is for

A consumer has wgmma work in flight during its qk and pv scopes (a wgmma issued and waited for in the same scope)
and from the start of an mma_issue scope (QKᵀ of one block issued with P·V of the one before, asynchronously) to the
end of the pv scope that waits for it.

`overhead_pct(bare_ms, instrumented_ms)` compares the kernel's time instrumented and bare (timed by the same method:
collectors/timeline/capture.py `timed_pair`) and `overhead_refusal` refuses a timeline whose instrumentation slowed
the kernel by more than OVERHEAD_LIMIT_PCT: its phases are then not the bare kernel's.

Scopes are placed by issue order: a scope's start and end are clock reads, and the compiler may move independent
instructions across them, so a short phase's cycles are approximate; waits and wgmma waits are exact, since
nothing can move past a wait that its result depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from collectors.timeline.read import ITERATION_START_PHASES, PER_ITEM_PHASES, TILE_PHASE, phase_of

FIGURE_COLUMNS = ["figure", "partition", "phase", "sample", "n", "median", "p20", "p80", "unit"]
QUANTILES = (0.2, 0.8)
# A timeline is refused when instrumenting the kernel made it slower than this (percent of the bare time): the
# issue's threshold (24: "a timeline refused with its reason above 10% overhead").
OVERHEAD_LIMIT_PCT = 10.0

WAIT, MMA, ISSUE, COMPUTE, UNTRACKED, CONTAINER = "wait", "mma", "issue", "compute", "untracked", "container"
PHASE_KINDS = {
    "kv_wait": WAIT, "k_wait": WAIT, "v_wait": WAIT, "q_wait": WAIT, "turn_wait": WAIT,
    "qk": MMA, "pv": MMA, "mma_issue": MMA,
    "kv_issue": ISSUE, "k_issue": ISSUE, "v_issue": ISSUE, "q_issue": ISSUE,
    "mask": COMPUTE, "softmax": COMPUTE, "rescale": COMPUTE, "epilogue": COMPUTE,
    TILE_PHASE: CONTAINER,
}
KIND_ORDER = (WAIT, MMA, ISSUE, COMPUTE, UNTRACKED)
# Loads: the producer's issue phase and the consumers' wait phase for the same operand.
LOAD_PAIRS = (("kv_issue", "kv_wait"), ("k_issue", "k_wait"), ("v_issue", "v_wait"))


def phase_kind(phase: str) -> str:
    """The kind of a phase (PHASE_KINDS; an unknown `*_wait` is a wait, any other unknown phase compute)."""
    return PHASE_KINDS.get(phase, WAIT if phase.endswith("_wait") else COMPUTE)


# ---- interval arithmetic ---------------------------------------------------------------------------------------
def _union(starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals [start, end) as sorted disjoint intervals."""
    s, e = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    keep = e > s
    s, e = s[keep], e[keep]
    if not s.size:
        return s, e
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > e[:-1]  # a gap before it: a new disjoint interval starts here
    last = np.r_[np.flatnonzero(new)[1:] - 1, s.size - 1]  # each one's last member holds its running max end
    return s[new], e[last]


def _covered(t, us, ue) -> np.ndarray:
    """Length of the union (us, ue: sorted, disjoint) that lies before each time t."""
    t = np.asarray(t, dtype=np.int64)
    if not us.size:
        return np.zeros(t.shape, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(ue - us)])
    i = np.searchsorted(us, t, side="right")  # intervals starting at or before t
    last = np.clip(i - 1, 0, None)
    inside = np.minimum(t, ue[last]) - us[last]
    return np.where(i > 0, cum[last] + inside, 0)


def _overlap(starts, ends, us, ue) -> np.ndarray:
    """Length of each interval [start, end) covered by the union (us, ue)."""
    return _covered(ends, us, ue) - _covered(starts, us, ue)


def _summary(values) -> tuple[int, float, float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return 0, np.nan, np.nan, np.nan
    lo, hi = np.quantile(v, QUANTILES)
    return int(v.size), float(np.median(v)), float(lo), float(hi)


def _row(figure: str, partition: str, phase: str, sample: str, values, unit: str) -> dict:
    n, med, lo, hi = _summary(values)
    return {"figure": figure, "partition": partition, "phase": phase, "sample": sample, "n": n, "median": med,
            "p20": lo, "p80": hi, "unit": unit}


# ---- the timeline with what the figures need -------------------------------------------------------------------
def _prepared(tl: pd.DataFrame) -> pd.DataFrame:
    """The timeline with phase, kind, duration and a partition label per row, sorted by program, warp and start."""
    d = tl.sort_values(["program", "warp", "start_cycle", "end_cycle"], ascending=[True, True, True, False],
                       kind="stable").reset_index(drop=True)
    d = d.assign(phase=phase_of(d["scope"]), dur=(d["end_cycle"] - d["start_cycle"]).astype(np.int64))
    d["kind"] = d["phase"].map(phase_kind)
    key = d["partition"].astype("float64").where(d["partition"].notna(), d["warp_group"].astype("float64"))
    d["_part"] = key.to_numpy()
    labels = {}
    roles = d[d["role"] != ""].groupby("_part")["role"].first()
    for role, parts in roles.groupby(roles):
        for k, p in enumerate(sorted(parts.index)):
            labels[p] = f"{role}{k}"
    unnamed = sorted(set(d["_part"]) - set(labels))
    for p in unnamed:
        labels[p] = f"partition{int(p)}"
    d["label"] = d["_part"].map(labels)
    return d


def figures(tl: pd.DataFrame) -> pd.DataFrame:
    """Every figure of the module docstring for one launch's timeline, one row per (figure, partition, phase)."""
    if tl.empty:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    d = _prepared(tl)
    rows = [*time_shares(d), *phase_cycles(d), *load_hiding(d), *pingpong(d)]
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)


def time_shares(d: pd.DataFrame) -> list[dict]:
    """time_share per phase kind and busy_share, one sample per (program, recorded warp)."""
    flat = d[d["kind"] != CONTAINER]
    if flat.empty:
        return []
    g = flat.groupby(["label", "program", "warp"])
    span = (g["end_cycle"].max() - g["start_cycle"].min()).astype(float)
    by_kind = flat.groupby(["label", "program", "warp", "kind"])["dur"].sum().unstack("kind", fill_value=0)
    by_kind = by_kind.reindex(columns=[k for k in KIND_ORDER if k != UNTRACKED], fill_value=0).astype(float)
    span = span.where(span > 0)
    shares = by_kind.div(span, axis=0)
    shares[UNTRACKED] = (1.0 - shares.sum(axis=1)).clip(lower=0.0)
    rows = []
    for label, part in shares.groupby(level="label"):
        for kind in KIND_ORDER:
            if kind in (MMA, ISSUE, COMPUTE) and not (part[kind] > 0).any():
                continue  # a partition that issues no wgmma (no TMA, no computation) gets no row of that kind
            rows.append(_row("time_share", label, kind, "program", part[kind], "share"))
        rows.append(_row("busy_share", label, "", "program", 1.0 - part[WAIT], "share"))
    return rows


def _in_loop(d: pd.DataFrame) -> pd.Series:
    return d["iteration"].notna() & ~d["phase"].isin(PER_ITEM_PHASES)


def phase_cycles(d: pd.DataFrame) -> list[dict]:
    """phase_cycles per (partition, phase) and iteration_cycles per partition, one sample per (warp, work item)."""
    items = d[d["item"].notna() & (d["kind"] != CONTAINER)]
    if items.empty:
        return []
    keys = ["label", "program", "warp", "item"]
    loop = items[_in_loop(items)]
    n_iter = loop.groupby(keys)["iteration"].max() + 1
    rows = []
    per_item = items[~_in_loop(items)].groupby([*keys, "phase"])["dur"].sum()
    per_iter = loop.groupby([*keys, "phase"])["dur"].sum()
    if len(per_iter):
        per_iter = per_iter.div(n_iter.reindex(per_iter.index.droplevel("phase")).to_numpy())
    for table in (per_iter, per_item):
        for (label, phase), values in table.groupby(level=["label", "phase"]):
            rows.append(_row("phase_cycles", label, phase, "work_item", values, "cycles"))
    if not loop.empty:
        first = loop[loop["phase"].isin(ITERATION_START_PHASES)].groupby(keys)["start_cycle"].min()
        last = loop.groupby(keys)["end_cycle"].max()
        per = ((last - first) / n_iter).dropna()
        for label, values in per.groupby(level="label"):
            rows.append(_row("iteration_cycles", label, "", "work_item", values, "cycles"))
    rows.sort(key=lambda r: (r["figure"], r["partition"], r["phase"]))
    return rows


@dataclass(frozen=True)
class _Warp:
    """One recorded warp of one program, its events in start order as arrays."""

    label: str
    role: str
    warp: int
    start: np.ndarray
    end: np.ndarray
    phase: np.ndarray  # object array of phase names
    item: np.ndarray  # float, NaN outside a work item

    def of(self, phase: str) -> np.ndarray:
        return np.flatnonzero(self.phase == phase)


def _programs(d: pd.DataFrame):
    """Each program's recorded warps (d as _prepared sorts it), as lists of _Warp."""
    prog, warp = d["program"].to_numpy(), d["warp"].to_numpy()
    start, end = d["start_cycle"].to_numpy(), d["end_cycle"].to_numpy()
    phase, label, role = (d[c].to_numpy(dtype=object) for c in ("phase", "label", "role"))
    item = d["item"].astype("float64").to_numpy()
    cut = np.flatnonzero((np.diff(prog) != 0) | (np.diff(warp) != 0)) + 1
    warps: list[_Warp] = []
    for a, b in zip(np.r_[0, cut], np.r_[cut, len(d)]):
        if warps and prog[a] != prog[a - 1]:
            yield warps
            warps = []
        warps.append(_Warp(label[a], role[a], int(warp[a]), start[a:b], end[a:b], phase[a:b], item[a:b]))
    if warps:
        yield warps


def _mma_intervals(w: _Warp) -> tuple[np.ndarray, np.ndarray]:
    """Intervals during which one warp had wgmma work in flight."""
    sync = (w.phase == "qk") | (w.phase == "pv")
    starts, ends = [w.start[sync]], [w.end[sync]]
    issue = w.of("mma_issue")
    if issue.size:
        pv = w.of("pv")
        nxt = np.searchsorted(pv, issue, side="right")
        ok = nxt < pv.size
        starts.append(w.start[issue[ok]])
        ends.append(w.end[pv[nxt[ok]]])
    return np.concatenate(starts), np.concatenate(ends)


def _union_of(warps: list[_Warp]) -> tuple[np.ndarray, np.ndarray]:
    flights = [_mma_intervals(w) for w in warps]
    if not flights:
        return _union([], [])
    return _union(np.concatenate([f[0] for f in flights]), np.concatenate([f[1] for f in flights]))


def _per_item(item: np.ndarray, num: np.ndarray, den: np.ndarray) -> list[float]:
    """sum(num) / sum(den) per work item (items with den > 0)."""
    keep = ~np.isnan(item)
    if not keep.any():
        return []
    items, inverse = np.unique(item[keep], return_inverse=True)
    n = np.bincount(inverse, weights=num[keep], minlength=items.size)
    m = np.bincount(inverse, weights=den[keep], minlength=items.size)
    return (n[m > 0] / m[m > 0]).tolist()


def load_hiding(d: pd.DataFrame) -> list[dict]:
    """load_hidden_share and load_under_mma_share, one sample per consumer (warp, work item)."""
    if not ((d["role"] == "producer").any() and (d["role"] == "consumer").any()):
        return []
    hidden: dict[str, list] = {}
    under: dict[str, list] = {}
    for warps in _programs(d):
        producers = [w for w in warps if w.role == "producer"]
        consumers = [w for w in warps if w.role == "consumer"]
        if not producers or not consumers:
            continue
        prod = producers[0]  # the producer partition's first recorded warp
        us, ue = _union_of(consumers)
        for w in consumers:
            issue_end, waits = [], []
            for issue_phase, wait_phase in LOAD_PAIRS:
                iss, wt = prod.of(issue_phase), w.of(wait_phase)
                n = min(iss.size, wt.size)
                issue_end.append(prod.end[iss[:n]])
                waits.append(wt[:n])
            issue_end, waits = np.concatenate(issue_end), np.concatenate(waits)
            if not waits.size:
                continue
            wait_start, wait_end = w.start[waits], w.end[waits]
            flight = np.clip(wait_end - issue_end, 0, None).astype(float)
            exposed = np.clip(wait_end - np.maximum(wait_start, issue_end), 0, None).astype(float)
            covered = _overlap(issue_end, np.maximum(issue_end, wait_end), us, ue).astype(float)
            item = w.item[waits]
            hidden.setdefault(w.label, []).extend(1.0 - np.asarray(_per_item(item, exposed, flight)))
            under.setdefault(w.label, []).extend(_per_item(item, covered, flight))
    rows = [_row("load_hidden_share", label, "", "work_item", v, "share") for label, v in sorted(hidden.items())]
    rows += [_row("load_under_mma_share", label, "", "work_item", v, "share") for label, v in sorted(under.items())]
    return rows


def pingpong(d: pd.DataFrame) -> list[dict]:
    """pingpong_share per consumer partition, one sample per (warp, work item); none with fewer than two consumer
    partitions."""
    if d.loc[d["role"] == "consumer", "label"].nunique() < 2:
        return []
    shares: dict[str, list] = {}
    for warps in _programs(d):
        consumers = [w for w in warps if w.role == "consumer"]
        for w in consumers:
            others = [o for o in consumers if o.label != w.label]
            soft = w.of("softmax")
            if not others or not soft.size:
                continue
            us, ue = _union_of(others)
            ov = _overlap(w.start[soft], w.end[soft], us, ue).astype(float)
            shares.setdefault(w.label, []).extend(
                _per_item(w.item[soft], ov, (w.end[soft] - w.start[soft]).astype(float)))
    return [_row("pingpong_share", label, "softmax", "work_item", v, "share") for label, v in sorted(shares.items())]


# ---- instrumentation overhead ----------------------------------------------------------------------------------
def overhead_pct(bare_ms: float, instrumented_ms: float) -> float:
    """(instrumented - bare) / bare x 100."""
    if not bare_ms > 0:
        raise ValueError(f"the bare time must be positive, got {bare_ms!r}.")
    return (instrumented_ms - bare_ms) / bare_ms * 100.0


def overhead_refusal(pct: float, limit_pct: float = OVERHEAD_LIMIT_PCT) -> str | None:
    """Why a timeline is refused for its instrumentation overhead (one sentence), or None when it is within limit."""
    if not np.isfinite(pct):
        return "the instrumentation overhead could not be measured, so the timeline cannot be shown to be the bare " \
               "kernel's."
    if pct > limit_pct:
        return (f"the instrumented kernel took {pct:.1f}% longer than the bare one (limit {limit_pct:g}%), so its "
                "phases are not the bare kernel's.")
    return None
