"""kernels.peers: the registry, the shared signature, and availability reasons (never silent skips)."""

from __future__ import annotations

import importlib.util
import inspect

import pytest
import torch

from kernels import peers
from kernels.peers import BASELINE_PEER, PEERS, get_peer

HAS_CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


def test_registry_names_and_order():
    assert list(PEERS) == ["sdpa_flash", "sdpa_cudnn", "sdpa_efficient", "flex", "triton_tl", "fa3"]
    assert BASELINE_PEER in PEERS
    for name, peer in PEERS.items():
        assert peer.name == name and peer.description and callable(peer.launcher)


@pytest.mark.parametrize("name", list(PEERS))
def test_stage_signature(name):
    params = inspect.signature(PEERS[name].launcher).parameters
    assert list(params) == ["q", "k", "v", "causal", "sm_scale"]
    assert params["causal"].default is False and params["sm_scale"].default is None


@pytest.mark.parametrize("name", list(PEERS))
def test_available_returns_flag_and_reason(name):
    ok, reason = PEERS[name].available()
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok == (reason == "")
    if not HAS_CUDA:
        assert not ok and "CUDA" in reason


def test_fa3_reason_when_not_installed(monkeypatch):
    # With a GPU present but the package absent, the reason names the missing package.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "flash_attn_interface" else real_find_spec(name, *a))
    ok, reason = PEERS["fa3"].available()
    assert not ok and "flash_attn_interface" in reason and "not installed" in reason


def test_get_peer():
    assert get_peer("sdpa_cudnn") is PEERS["sdpa_cudnn"]
    with pytest.raises(KeyError, match="known peers"):
        get_peer("fa4")


def test_shape_check_before_any_backend():
    q = torch.zeros(1, 2, 8, 64)
    with pytest.raises(ValueError, match="one shape"):
        peers.sdpa_flash(q, q[:, :1], q)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("name", list(PEERS))
def test_peer_matches_reference_on_gpu(name, causal):
    from kernels.reference import compare, make_inputs

    ok, reason = PEERS[name].available()
    if not ok:
        pytest.skip(f"{name} unavailable: {reason}")
    # S=257: a tail past a 256-row tile; [B, S, H, D] views exercise the transposed layout.
    q, k, v = make_inputs(2, 3, 257, 64, torch.float16, device="cuda", seed=0, layout="bshd")
    out = PEERS[name].launcher(q, k, v, causal=causal)
    assert out.shape == q.shape
    assert compare(out, q, k, v, causal).within_budget
