"""The model's partition replays kept on disk (perfmodel/model/replay_cache.py): a hit is the replay's own number, a
damaged entry is replayed again, and a change to the replay's code is a different entry."""

from __future__ import annotations

import json

import pytest

from perfmodel.model import critical_path, replay_cache
from perfmodel.model.critical_path import ALU, Latencies

LAT = Latencies(clock_hz=1.98e9, alu_s=4 / 1.98e9, ex2_s=18 / 1.98e9, xbar_s=30 / 1.98e9, bar_sync_s=20 / 1.98e9,
                mbarrier_wait_s=10 / 1.98e9, mufu_clocks=2.0, smem_bytes_per_clock=32.0,
                wgmma_group_s=lambda kind, n, k, flops: (1e-7, flops / 1e13))
MADE = (("wgmma_ss_n64_k16_latency_ns", 100.0), 132)
# two warps, each a chain of dependent ALU ops
LOOP = tuple((ALU, (f"%r{i + 1}",), (f"%r{i}",), 0) for i in range(6))
STREAMS = [(LOOP, 0), (LOOP, 1)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFMODEL_CACHE_DIR", str(tmp_path))


def test_a_hit_is_the_replays_number_without_replaying(monkeypatch):
    want = critical_path.partition_seconds(STREAMS, LAT)
    assert replay_cache.partition_seconds(STREAMS, LAT, MADE) == want  # computed and kept
    monkeypatch.setattr(critical_path, "partition_seconds", lambda *a: pytest.fail("replayed on a hit"))
    assert replay_cache.partition_seconds(STREAMS, LAT, MADE) == want  # the float round-trips exactly


def test_a_damaged_entry_is_replayed_again(tmp_path):
    want = replay_cache.partition_seconds(STREAMS, LAT, MADE)
    (entry,) = (tmp_path / "replays").glob("*.json")
    entry.write_text("{not json")
    assert replay_cache.partition_seconds(STREAMS, LAT, MADE) == want
    assert json.loads(entry.read_text())["seconds"] == want  # rewritten whole
    entry.write_text(json.dumps({"key": "someone else's", "seconds": 1.0}))
    assert replay_cache.partition_seconds(STREAMS, LAT, MADE) == want


def test_the_key_names_the_streams_the_latencies_what_they_were_made_from_and_the_code(monkeypatch):
    """Not the latencies' function itself (its repr is an address): what it was made from."""
    key = replay_cache.replay_key(STREAMS, LAT, MADE)
    assert replay_cache.replay_key(STREAMS, Latencies(**{**LAT.__dict__, "wgmma_group_s": print}), MADE) == key
    assert replay_cache.replay_key([(LOOP, 0)], LAT, MADE) != key
    assert replay_cache.replay_key(STREAMS, Latencies(**{**LAT.__dict__, "alu_s": 5 / 1.98e9}), MADE) != key
    assert replay_cache.replay_key(STREAMS, LAT, (("wgmma_ss_n64_k16_latency_ns", 90.0), 132)) != key
    monkeypatch.setattr(replay_cache, "_replay_source", lambda: "edited")
    assert replay_cache.replay_key(STREAMS, LAT, MADE) != key


def test_a_cache_that_cannot_be_written_costs_only_the_replay(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("PERFMODEL_CACHE_DIR", str(blocked))  # a file where the folder would be
    assert replay_cache.partition_seconds(STREAMS, LAT, MADE) == critical_path.partition_seconds(STREAMS, LAT)
