"""Proton's Chrome trace read into the `timeline` table (collectors/timeline/read.py).

The fixture tests/data/synthetic-timeline/timeline/stage4-pingpong.chrome_trace is SYNTHETIC (tests/timeline_fixture
.py made it, in Proton 3.6's exact format as derived from Proton's source): the reader must give back the schedule
it was written from, to the cycle. Every trace under tests/data/*/timeline/ (the synthetic one and the real ones
captured on the H200 by `perfmodel collect --timeline`) must read into a table that keeps the table's invariants.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.timeline.figures import figures
from collectors.timeline.read import (ITERATION_START_PHASES, PER_ITEM_PHASES, TIMELINE_COLUMNS, TraceUnreadable,
                                      WarpLayout, load_trace, phase_of, read_timeline, select_sms, spread_sms,
                                      trace_events, warp_layout)
from kernels.suites import SEED
from runstore.schema import TABLES, case_key, column_problem, columns
from tests import timeline_fixture as fx

DATA = Path(__file__).parent / "data"
TRACES = sorted(p for pattern in ("*/timeline/*.chrome_trace", "*/timeline/*.chrome_trace.gz")
                for p in DATA.glob(pattern))


@pytest.fixture(scope="module")
def tl():
    return read_timeline(fx.FIXTURE, fx.LAYOUT)


# ---- the synthetic fixture, to the cycle -----------------------------------------------------------------------
def test_fixture_is_the_generators_output():
    """The committed file is what tests/timeline_fixture.py writes (regenerate it after changing the schedule)."""
    assert fx.FIXTURE.read_text() == fx.chrome_trace(fx.SCHEDULE)


def test_reads_back_the_schedule(tl):
    first = {p: min(s.start_cycle for s in fx.SCHEDULE if s.program == p) for p, *_ in fx.PROGRAMS}
    want = pd.DataFrame([(s.program, s.sm, s.warp, s.scope, s.start_cycle - first[s.program],
                          s.end_cycle - first[s.program]) for s in fx.SCHEDULE],
                        columns=["program", "sm", "warp", "scope", "start_cycle", "end_cycle"])
    key = ["program", "warp", "start_cycle", "scope"]
    got = tl[want.columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_columns_and_context(tl):
    assert list(tl.columns) == TIMELINE_COLUMNS
    assert set(tl["kernel"]) == {fx.KERNEL}
    assert tl.groupby("program")["sm"].unique().map(list).to_dict() == {0: [3], 1: [7]}
    assert tl.groupby("program")["program_start_ns"].first().to_dict() == {0: 0, 1: 400}  # 5400 - 5000 ns
    assert tl.groupby("program")["finalize_ns"].first().to_dict() == {0: 2048, 1: 1536}
    assert tl.groupby("program")["start_cycle"].min().tolist() == [0, 0]
    assert tl.groupby("warp")["partition"].first().to_dict() == {0: 0, 4: 1, 8: 2}
    assert tl.groupby("warp")["role"].unique().map(list).to_dict() == {0: ["consumer"], 4: ["consumer"],
                                                                        8: ["producer"]}
    assert (tl["warp_group"] == tl["warp"] // 4).all()
    # the tile scopes hold their warp's other scopes: Proton puts them on lane 0, the rest on lane 1
    assert set(tl.loc[phase_of(tl["scope"]) == "tile", "lane"]) == {0} and set(tl["lane"]) == {0, 1}


def test_items_and_iterations(tl):
    assert tl["item"].notna().all()  # every scope of the fixture lies in a work item
    assert sorted(tl["item"].unique()) == [0, 1]
    phase = phase_of(tl["scope"])
    per_item = phase.isin(PER_ITEM_PHASES)
    assert tl.loc[per_item, "iteration"].isna().all()
    # three key blocks per work item: iterations 0, 1, 2, each opened by one K/V wait of each warp
    assert sorted(tl.loc[~per_item, "iteration"].unique()) == [0, 1, 2]
    starts = tl[phase.isin(ITERATION_START_PHASES)]
    assert (starts.groupby(["program", "warp", "item"]).size() == fx.BLOCKS).all()
    # consumer 0's last P·V (after the loop) closes iteration 2
    last_pv = tl[(tl["scope"] == "consumer.pv") & (tl["warp"] == 0)].groupby(["program", "item"])["iteration"].max()
    assert (last_pv == 2).all()


def test_without_a_layout_partitions_are_null():
    t = read_timeline(fx.FIXTURE)
    assert t["partition"].isna().all() and len(t) == len(fx.SCHEDULE)


def test_a_layout_that_is_not_the_kernels_is_refused():
    with pytest.raises(TraceUnreadable, match="padding warp"):
        read_timeline(fx.FIXTURE, WarpLayout(4, (1,)))  # warps 0-3 and 4: warp 8 would be padding


def test_times_are_exact_cycles_from_proton_float32():
    """Proton writes ts and dur as 32-bit floats of cycles / 1000; the reader recovers whole cycles."""
    ev = trace_events(load_trace(fx.FIXTURE))
    assert (ev["freq_mhz"] == 1000.0).all()
    cycles = ev["ts"] * ev["freq_mhz"]
    assert (np.abs(cycles - np.rint(cycles)) < 0.01).all()
    assert (np.abs(cycles - np.rint(cycles)) > 1e-9).any()  # as written they are not whole cycles


# ---- files that are not such traces ----------------------------------------------------------------------------
def _write(tmp_path, doc, name="t.chrome_trace") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_reads_a_gzip_copy(tmp_path):
    p = tmp_path / "t.chrome_trace.gz"
    p.write_bytes(gzip.compress(fx.FIXTURE.read_bytes()))
    assert len(read_timeline(p, fx.LAYOUT)) == len(fx.SCHEDULE)


@pytest.mark.parametrize("doc, message", [
    ("{not json", "is not JSON"),
    ({"events": []}, "no traceEvents"),
    ({"traceEvents": []}, "no scope events"),
    ({"traceEvents": [{"ph": "X", "name": "a", "pid": "k Core1 CTA0", "tid": "warp 0 (line 0)", "ts": 0.0,
                       "dur": 0.001}]}, "lacks Proton's fields"),
    ({"traceEvents": [{"ph": "X", "name": "a", "pid": "kernel 0", "tid": "warp 0 (line 0)", "ts": 0.0, "dur": 0.001,
                       "args": {"Frequency (MHz)": 1000.0, "Finalization Time (ns)": 0}}]}, "Core<sm> CTA<program>"),
])
def test_refuses_what_is_not_a_proton_trace(tmp_path, doc, message):
    with pytest.raises(TraceUnreadable, match=message):
        read_timeline(_write(tmp_path, doc))


def test_refuses_two_kernels_in_one_file(tmp_path):
    doc = load_trace(fx.FIXTURE)
    other = json.loads(fx.chrome_trace(fx.SCHEDULE, kernel="_other_kernel"))
    doc["traceEvents"] += other["traceEvents"]
    with pytest.raises(TraceUnreadable, match="2 kernels"):
        read_timeline(doc)


def test_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(TraceUnreadable, match="cannot read"):
        load_trace(tmp_path / "absent.chrome_trace")


# ---- the kernel's partitions -----------------------------------------------------------------------------------
TTGIR = """module attributes {"ttg.num-warps" = 4 : i32, ttg.target = "cuda:90"} {
    ttg.warp_specialize(%a) attributes {requestedRegisters = array<i32: 240, 24>}
    default { ttg.warp_yield }
    partition0(%x: i32) num_warps(4) { ttg.warp_return }
    partition1(%y: i32) num_warps(1) { ttg.warp_return }
}"""


def test_warp_layout_from_ttgir():
    lay = warp_layout(TTGIR)
    assert lay == WarpLayout(4, (4, 1)) and lay.starts == (0, 4, 8) and lay.total_warps == 12
    assert warp_layout('module attributes {"ttg.num-warps" = 8 : i32} {}') == WarpLayout(8)
    with pytest.raises(TraceUnreadable, match="2 ttg.warp_specialize"):
        warp_layout(TTGIR.replace("ttg.warp_specialize(%a)", "ttg.warp_specialize(%a) ttg.warp_specialize(%b)"))
    with pytest.raises(TraceUnreadable, match="num-warps"):
        warp_layout("module {}")


def test_workers_start_largest_first():
    """Triton 3.6 gives the largest worker partitions the lowest warps (AllocateWarpGroups), ties in order."""
    lay = WarpLayout(4, (1, 4, 4))
    assert lay.starts == (0, 12, 4, 8) and lay.total_warps == 16
    assert lay.sampled_warps() == (0, 4, 8, 12)
    assert WarpLayout.from_dict(lay.as_dict()) == lay


# ---- smaller copies --------------------------------------------------------------------------------------------
def test_spread_sms():
    assert spread_sms(range(132), 4) == [0, 44, 87, 131]
    assert spread_sms([5, 1, 3], 10) == [1, 3, 5] and spread_sms([5, 1, 3], 0) == [1, 3, 5]


def test_select_sms_keeps_whole_programs():
    doc = load_trace(fx.FIXTURE)
    kept = select_sms(doc, [7])
    assert kept["displayTimeUnit"] == "ns"
    t = read_timeline(kept, fx.LAYOUT)
    assert set(t["sm"]) == {7} and len(t) == sum(s.sm == 7 for s in fx.SCHEDULE)


# ---- the table in the run store --------------------------------------------------------------------------------
def test_schema_documents_the_table(tl):
    assert TABLES["timeline"]["case"]
    frame = tl.assign(**case_key("stage4_overlap", SEED), run_id="r")[columns("timeline")]
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert column_problem("timeline", table.column_names, table.schema.types) is None


# ---- every trace in tests/data --------------------------------------------------------------------------------
def _layout_beside(path: Path) -> WarpLayout | None:
    meta = path.with_name(path.name.split(".chrome_trace")[0] + ".meta.json")
    if not meta.is_file():
        return None
    layout = json.loads(meta.read_text()).get("layout")
    return WarpLayout.from_dict(layout) if layout else None


@pytest.mark.parametrize("path", TRACES, ids=[str(p.relative_to(DATA)) for p in TRACES])
def test_every_committed_trace_reads(path):
    layout = _layout_beside(path)
    t = read_timeline(path, layout)
    assert list(t.columns) == TIMELINE_COLUMNS and len(t)
    assert (t["start_cycle"] >= 0).all() and (t["end_cycle"] >= t["start_cycle"]).all()
    assert (t.groupby("program")["start_cycle"].min() == 0).all()
    assert (t.groupby("program")["sm"].nunique() == 1).all()
    named = t[t["role"] != ""]
    assert (named.groupby(["program", "warp"])["role"].nunique() == 1).all()
    if layout is not None:
        assert t["partition"].notna().all()
    # every recorded warp of a program walks the same key blocks: as many K/V waits as the producer issued loads
    phase = phase_of(t["scope"])
    for program, p in t.groupby("program"):
        ph = phase_of(p["scope"])
        issues = p[(p["role"] == "producer") & ph.isin({"kv_issue", "k_issue"})].groupby("warp").size()
        waits = p[(p["role"] == "consumer") & ph.isin({"kv_wait", "k_wait"})].groupby("warp").size()
        if len(issues) and len(waits):
            assert set(waits) == {int(issues.iloc[0])}, program
    f = figures(t)
    shares = f[f["unit"] == "share"]
    assert ((shares[["median", "p20", "p80"]] >= -1e-9) & (shares[["median", "p20", "p80"]] <= 1 + 1e-9)).all(axis=None)
    assert (f["n"] > 0).all() and not phase.empty
