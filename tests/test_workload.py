"""Workload arithmetic against values worked out by hand (kernels/workload.py)."""

import math

import pytest

from kernels.suites import SEED, get_suite
from kernels.workload import AttentionConfig, ConfigError, parse_config


def test_seed_counts_by_hand():
    # 4·B·H·S²·D / 2 = 4·16·16·2048²·64 / 2
    assert SEED.flops == 137_438_953_472
    # B·H·S² / 2
    assert SEED.exps == 536_870_912
    # Q, K, V, O once: 4·B·H·S·D·2 bytes
    assert SEED.min_hbm_bytes == 268_435_456
    assert SEED.arithmetic_intensity == 512
    # one exponential per 4·D = 256 FLOPs at head dim 64 (ANCHORS)
    assert SEED.flops / SEED.exps == 256


def test_non_causal_doubles_work_not_bytes():
    full = SEED.with_(causal=False)
    assert full.flops == 2 * SEED.flops
    assert full.exps == 2 * SEED.exps
    assert full.min_hbm_bytes == SEED.min_hbm_bytes


def test_bytes_follow_dtype():
    assert SEED.with_(dtype="fp32").min_hbm_bytes == 2 * SEED.min_hbm_bytes
    # fp8: Q, K and V one byte an element, O in bf16 (two): 3·1 + 2 = 5 bytes where fp16 moves 4·2 = 8
    assert SEED.with_(dtype="fp8").min_hbm_bytes == SEED.min_hbm_bytes * 5 / 8
    assert SEED.with_(dtype="fp8").tensor_bytes == SEED.B * SEED.H * SEED.S * SEED.D * 5


def test_tiles_and_waves():
    # 2048/128 = 16 query tiles per (batch, head), times 16·16 heads
    assert SEED.tiles(128) == 4096
    assert SEED.waves(128, 132) == pytest.approx(4096 / 132)
    # B=1: 16·16 = 256 tiles over 132 SMs, the document's batching gate starts at ~2 waves
    b1 = SEED.with_(B=1)
    assert b1.tiles(128) == 256
    assert b1.waves(128, 132) == pytest.approx(1.939, abs=1e-3)
    assert b1.waves(128, 132, programs_per_sm=2) == pytest.approx(0.970, abs=1e-3)
    # a tail tile counts: S=130 needs two tiles of 128
    assert AttentionConfig(B=1, H=1, S=130, D=64).tiles(128) == 2


def test_tflops_at():
    assert SEED.tflops_at(1.0) == pytest.approx(137.438953472)
    assert SEED.tflops_at(0.36) == pytest.approx(381.77, abs=0.01)  # cuDNN's ~0.36 ms (ANCHORS)


def test_id_and_dict():
    assert SEED.id == "B16-H16-S2048-D64-causal-fp16"
    assert "/" not in SEED.id
    assert SEED.as_dict() == {"B": 16, "H": 16, "S": 2048, "D": 64, "causal": True, "dtype": "fp16"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B=16,H=16,S=2048,D=64,causal", SEED),
        (" b=16 , h=16, s=2048 ,d=64, causal ", SEED),  # case and spaces
        ("B=16,H=16,S=2048,D=64,causal=1", SEED),
        ("B=16,H=16,S=2048,D=64,causal,dtype=float16", SEED),  # torch's name is an alias
        ("B=16,H=16,S=2048,D=64", SEED.with_(causal=False)),  # not causal unless said
        ("B=16,H=16,S=2048,D=64,full", SEED.with_(causal=False)),
        ("B=16,H=16,S=2048,D=64,causal=false", SEED.with_(causal=False)),
        ("B=16,H=16,S=2048,D=64,causal,bf16", SEED.with_(dtype="bf16")),
        ("B=16,H=16,S=2048,D=64,causal,,", SEED),  # stray commas are ignored
    ],
)
def test_parse_config(text, expected):
    assert parse_config(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "B=16,H=16,S=2048",  # D missing
        "B=x,H=16,S=2048,D=64",
        "B=1.5,H=16,S=2048,D=64",
        "B=0,H=16,S=2048,D=64",
        "B=-1,H=16,S=2048,D=64",
        "B=1,H=1,S=128,D=1024",  # no kernel supports head dim > 512
        "B=1024,H=1024,S=65536,D=128",  # would not fit in memory
        "B=1,H=1,S=128,D=64,diagonal",
        "B=1,H=1,S=128,D=64,causal=maybe",
        "B=1,H=1,S=128,D=64,dtype=int8",
        "B=1,H=1,S=128,D=64,window=3",
    ],
)
def test_parse_config_rejects_nonsense_in_one_sentence(text):
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    message = str(e.value)
    assert message.endswith(".") and "\n" not in message


@pytest.mark.parametrize("kwargs", [{"B": True}, {"S": 2.0}, {"causal": "yes"}, {"dtype": "int4"}])
def test_config_validates_direct_construction(kwargs):
    base = dict(B=1, H=1, S=128, D=64)
    with pytest.raises(ConfigError):
        AttentionConfig(**{**base, **kwargs})


def test_tiles_rejects_bad_block():
    with pytest.raises(ConfigError):
        SEED.tiles(0)
    with pytest.raises(ConfigError):
        SEED.waves(128, 0)


def test_suites():
    assert get_suite("seed") == [SEED]
    assert [c.B for c in get_suite("batching")] == [1, 8, 32]
    grid = get_suite("fa3-grid")
    assert len(grid) == 24 and all(c.B * c.S == 16384 and c.H * c.D == 2048 for c in grid)
    assert all(c.dtype == "bf16" for c in get_suite("fa3-grid", dtype="bf16"))
    with pytest.raises(KeyError):
        get_suite("nope")
    assert math.isclose(sum(c.flops for c in get_suite("batching")), 41 * SEED.flops / 16)
