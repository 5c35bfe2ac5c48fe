"""Stall reasons per partition (collectors/timeline/stalls.py): the instruction listing and loops read from the
committed H200 report (tests/data/h200/profile.ncu-rep.gz, which holds stage 0 without per-instruction stall
sampling), the stages' partition lines read from their source, and the mapping on a small listing built here."""

from __future__ import annotations

import gzip
import inspect
import shutil
from pathlib import Path

import pandas as pd
import pytest

from collectors.timeline.stalls import (IDLE, OTHER, SETUP, instruction_places, partition_lines, role_of, sass_loops,
                                        stall_samples, stalls_by_partition)

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "tests" / "data" / "h200" / "profile.ncu-rep.gz"


@pytest.fixture(scope="module")
def action(tmp_path_factory):
    ncu_report = pytest.importorskip("ncu_report")
    path = tmp_path_factory.mktemp("ncu") / "profile.ncu-rep"
    with gzip.open(REPORT, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return ncu_report.load_report(str(path)).range_by_idx(0).action_by_idx(0)


def test_listing_of_a_real_report(action):
    from collectors.timeline.stalls import sass_listing

    listing = sass_listing(action)
    assert len(listing) > 1000 and listing["pc"].is_monotonic_increasing
    assert (listing["offset"] % 16 == 0).all()  # Hopper SASS: 16 bytes an instruction
    assert listing["file"].str.endswith("stage0_baseline.py").mean() > 0.5 and (listing["line"] > 0).all()
    loops = sass_loops(listing)
    key = loops[loops["key"]]
    assert len(key) == 1  # stage 0's key loop: the one backward branch around its wgmmas
    first, last = key.iloc[0]["first_pc"], key.iloc[0]["last_pc"]
    body = listing[(listing["pc"] >= first) & (listing["pc"] <= last)]
    assert body["sass"].str.contains("HGMMA").any() and body["sass"].iloc[-1].endswith(f"BRA {hex(first)}")


def test_a_report_without_per_instruction_sampling_has_no_samples(action):
    assert stall_samples(action).empty


def _line(fn, text: str) -> int:
    """The line of `fn`'s source file holding `text` inside `fn` (a Gluon JIT function's Python function)."""
    lines, start = inspect.getsourcelines(getattr(fn, "fn", fn))
    return start + next(i for i, ln in enumerate(lines) if text in ln)


def test_partition_lines_of_stage4():
    from kernels import _gluon, stage4_overlap as s4

    lines = partition_lines(s4.__file__)
    roles = lines.groupby([lines["file"].map(lambda f: Path(f).name), "line"])["role"].agg(set)
    k_copy = _line(s4._produce_tile, "tma.async_copy_global_to_shared(desc_k")
    assert roles[("stage4_overlap.py", k_copy)] == {"producer"}
    assert roles[("stage4_overlap.py", _line(s4._overlapped_blocks, "softmax_block"))] == {"consumer"}
    assert roles[("_gluon.py", _line(_gluon.work_item, "bh = first"))] == {"producer", "consumer"}
    assert roles[("stage4_overlap.py", _line(s4._attn_fwd, "gl.warp_specialize(["))] == {IDLE}
    assert roles[("stage4_overlap.py", _line(s4._attn_fwd, "mbarrier.init(turn"))] == {SETUP}


def test_partition_lines_follow_imported_partitions():
    """Stage 5's producer partition runs stage 4's per-item function: its lines are found in stage4_overlap.py."""
    from kernels import stage4_overlap as s4, stage5_full as s5

    lines = partition_lines(s5.__file__)
    s4_lines = lines[lines["file"].str.endswith("stage4_overlap.py")]
    assert _line(s4._produce_tile, "load_v_block(") in set(s4_lines.loc[s4_lines["role"] == "producer", "line"])
    assert _line(s4._overlapped_blocks, "softmax_block") in set(s4_lines.loc[s4_lines["role"] == "consumer", "line"])


def test_role_names():
    assert [role_of(n) for n in ("_producer", "_consumer", "_load_partition")] == ["producer", "consumer", "load"]


def test_samples_mapped_to_roles_and_places():
    """A made-up listing: setup, a producer key loop (TMA), a consumer key loop (wgmma) with an mbarrier spin loop
    and a Triton helper line inside, and the warp_specialize exit barrier."""
    base = 0x1000
    code = [("S2R R0, SR_TID.X", "k.py", 10),  # setup
            ("UTMALDG.4D [UR8], [UR4]", "k.py", 20),  # producer loop: 0x1010 .. 0x1020
            ("@P0 BRA 0x1010", "k.py", 21),
            ("SYNCS.PHASECHK.TRANS64 P1, [UR6], R3", "k.py", 30),  # consumer loop: 0x1030 .. 0x1070
            ("@!P1 BRA 0x1030", "k.py", 30),  # the spin loop of an mbarrier wait
            ("HGMMA.64x128x16.F32 R24, gdesc[UR4], RZ", "k.py", 31),
            ("FMNMX R5, R4, R6, !PT", "standard.py", 180),  # a Triton helper inlined in the loop
            ("@P2 BRA 0x1030", "k.py", 32),
            ("BAR.SYNC.DEFER_BLOCKING 0x0", "k.py", 40),  # the warp_specialize call's exit barrier
            ("EXIT", "k.py", 40)]
    listing = pd.DataFrame([(base + 16 * i, s, f, ln, 1.0) for i, (s, f, ln) in enumerate(code)],
                           columns=["pc", "sass", "file", "line", "executed"])
    lines = pd.DataFrame([("k.py", 10, SETUP), ("k.py", 20, "producer"), ("k.py", 21, "producer"),
                          ("k.py", 30, "consumer"), ("k.py", 31, "consumer"), ("k.py", 32, "consumer"),
                          ("k.py", 40, IDLE)], columns=["file", "line", "role"])
    loops = sass_loops(listing)
    assert loops[loops["key"]][["first_pc", "last_pc"]].values.tolist() == [[0x1010, 0x1020], [0x1030, 0x1070]]
    places = instruction_places(listing, lines)
    assert places["role"].tolist() == [SETUP, "producer", "producer", "consumer", "consumer", "consumer",
                                       "consumer", "consumer", IDLE, IDLE]
    assert places["in_loop"].tolist() == [False, True, True, True, True, True, True, True, False, False]
    samples = pd.DataFrame({"pc": [0x1030, 0x1050, 0x1060, 0x1080, 0x1080, 0x1010, 0x2000],
                            "reason": ["long_scoreboard", "math_pipe_throttle", "short_scoreboard", "barrier",
                                       "barrier", "wait", "barrier"],
                            "samples": [10.0, 20.0, 5.0, 30.0, 5.0, 10.0, 20.0]})
    out = stalls_by_partition(samples, places).set_index(["role", "place", "reason"])["samples"]
    assert out[("consumer", "in_loop", "math_pipe_throttle")] == 20
    assert out[(IDLE, IDLE, "barrier")] == 35  # the parked warps' barrier, apart from any loop's
    assert out[("producer", "in_loop", "wait")] == 10
    assert out[(OTHER, "outside_loop", "barrier")] == 20  # a PC the listing does not hold
    frac = stalls_by_partition(samples, places)["fraction"]
    assert frac.sum() == pytest.approx(1.0)
