"""The Gluon stages' cached host path (issue 23, kernels/_fastlaunch.py), on the CPU: Triton's JIT compiles for
sm_90 and runs its whole Python launch path over CPU tensors, with the driver's calls replaced by a recorder
(tests/stub_cuda_driver.py). A repeated call must launch exactly what the full path launched; any change the full
path would see (pointer, shape, stride, dtype, causal, scale, pinned config) must take the full path again."""

from __future__ import annotations

import importlib

import pytest
import torch

from kernels import _launch
from stub_cuda_driver import stub_cuda_driver

GLUON_STAGES = ("stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap", "stage5_full")
SHAPE = (1, 2, 256, 64)  # two query tiles a head: the smallest shape every stage launches as on a GPU


@pytest.fixture(params=GLUON_STAGES)
def stage(request, monkeypatch):
    """The stage module on CPU tensors: its input check believes it runs under the interpreter (so CPU tensors
    pass, at the same cost), the stage itself does not (so it launches), as collectors/census/census.py does."""
    module = importlib.import_module(f"kernels.{request.param}")
    monkeypatch.setattr(_launch, "interpreting", lambda: True)
    monkeypatch.setattr(module, "interpreting", lambda: False)
    if hasattr(module, "PINNED_CONFIG"):  # stage 5 tunes on a GPU: pin it to its census default (stage 4's)
        monkeypatch.setattr(module, "PINNED_CONFIG", module.CENSUS_CONFIG(None))
    module.FAST.clear()
    with stub_cuda_driver() as launches:
        yield module, launches
    module.FAST.clear()


def _inputs(dtype=torch.float16, shape=SHAPE):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g).to(dtype) for _ in range(3)]


# Positions of Triton 3.6's C launch arguments (backends/nvidia/driver.py, _BASE_ARGS_FORMAT "iiiKKppOOOOOO") that
# are not compared: the stream, and the launch metadata and enter/exit hooks, which the full path passes as a
# LazyDict and two empty HookChains and the fast path as None (the launcher calls a hook only when it is not None,
# and an empty chain calls nothing; test_a_launch_hook_sees_every_launch covers a chain that is not empty).
NOT_COMPARED = (3, 10, 11, 12)


def _comparable(args, o):
    """A C launch's arguments with the output tensor (a fresh one per call) named, not compared."""
    return [("out", a.shape, a.dtype) if a is o else ("tensor", a.data_ptr(), a.shape) if torch.is_tensor(a)
            else a for i, a in enumerate(args) if i not in NOT_COMPARED]


def test_a_repeated_call_launches_what_the_full_path_launched(stage):
    module, launches = stage
    q, k, v = _inputs()
    outs = []
    for _ in range(3):
        outs.append(module.attention(q, k, v, causal=True))
    assert module.FAST.hits == 2 and len(module.FAST) == 1 and module.FAST.refused is None
    assert len(launches) == 3
    full, *fast = [_comparable(args, o) for (_, args), o in zip(launches, outs)]
    assert all(f == full for f in fast)
    assert all(o.shape == q.shape and o.dtype == q.dtype for o in outs)
    assert len({o.data_ptr() for o in outs}) == 3  # a fresh output each call


@pytest.mark.parametrize("change", ["pointer", "shape", "stride", "dtype", "causal", "sm_scale"])
def test_a_changed_input_takes_the_full_path_again(stage, change):
    module, launches = stage
    q, k, v = _inputs()
    module.attention(q, k, v, causal=True)
    if change == "pointer":
        q = q.clone()
    elif change == "shape":
        q, k, v = _inputs(shape=(1, 2, 384, 64))
    elif change == "stride":  # the same values as a [B, S, H, D] tensor viewed as [B, H, S, D]
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
    elif change == "dtype":
        q, k, v = _inputs(dtype=torch.bfloat16)
    module.attention(q, k, v, causal=change != "causal", sm_scale=0.1 if change == "sm_scale" else None)
    assert module.FAST.hits == 0 and len(module.FAST) == 2
    module.attention(q, k, v, causal=change != "causal", sm_scale=0.1 if change == "sm_scale" else None)
    assert module.FAST.hits == 1


def test_the_full_paths_checks_still_refuse_what_they_refused(stage):
    module, _ = stage
    q, k, v = _inputs()
    module.attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match="causal must be True or False"):
        module.attention(q, k, v, causal=1)  # equal to True, but the checks refuse an int
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        module.attention(q.tolist(), k, v, causal=True)


def test_a_launch_hook_sees_every_launch(stage):
    from triton import knobs

    module, launches = stage
    q, k, v = _inputs()
    module.attention(q, k, v, causal=True)
    seen = []
    knobs.runtime.launch_enter_hook.add(seen.append)
    try:
        module.attention(q, k, v, causal=True)
    finally:
        knobs.runtime.launch_enter_hook.remove(seen.append)
    assert module.FAST.hits == 0 and len(seen) == 1 and len(launches) == 2


def test_stage5_keys_on_its_pinned_config_and_records_it(monkeypatch):
    from kernels import stage5_full as s5

    monkeypatch.setattr(_launch, "interpreting", lambda: True)
    monkeypatch.setattr(s5, "interpreting", lambda: False)
    s5.FAST.clear()
    q, k, v = _inputs()
    with stub_cuda_driver():
        for ring in (3, 2, 3):
            monkeypatch.setattr(s5, "PINNED_CONFIG", s5.Config(ring=ring))
            s5.attention(q, k, v, causal=True)
            assert f"ring={ring}" in s5.last_tuned_config() and "(pinned)" in s5.last_tuned_config()
    assert len(s5.FAST) == 2 and s5.FAST.hits == 1
    s5.FAST.clear()


def test_the_cache_is_bounded():
    from kernels._fastlaunch import LaunchCache

    cache = LaunchCache(maxsize=2)
    for key in "abc":
        cache.put((key,), object())
    assert len(cache) == 2 and cache.get(("a",)) is None and cache.get(("c",)) is not None


# ---- on the GPU ---------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("name", GLUON_STAGES)
@pytest.mark.parametrize("causal", [True, False])
def test_gpu_the_prepared_launch_computes_what_the_full_path_computed(name, causal):
    """Bitwise: the same kernel on the same inputs gives the same output (each stage is deterministic: the
    determinism table of every run), whether launched by the JIT, by the prepared state, or replayed from a CUDA
    graph the prepared state was captured in; a new input pointer takes the full path and is right too."""
    from kernels.reference import attention_reference

    module = importlib.import_module(f"kernels.{name}")
    module.FAST.clear()
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(2, 4, 1000, 64, device="cuda", generator=g, dtype=torch.float16) for _ in range(3))
    full = module.attention(q, k, v, causal=causal)
    fast = module.attention(q, k, v, causal=causal)
    assert module.FAST.hits == 1 and module.FAST.refused is None
    assert torch.equal(full, fast)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = module.attention(q, k, v, causal=causal)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(full, captured)
    q2 = q.clone()
    again = module.attention(q2, k, v, causal=causal)
    assert torch.equal(full, again)
    ref = attention_reference(q.double(), k.double(), v.double(), causal=causal)
    assert (fast.double() - ref).abs().max().item() < 2e-2
