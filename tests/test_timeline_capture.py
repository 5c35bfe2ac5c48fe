"""The Gluon stages built with Proton's intra-kernel scopes, compiled for sm_90 without a GPU
(collectors/timeline/capture.py), and the capture's plan.

- each stage declares the scopes of issue 24 per partition and per phase of a key-block iteration (producer: TMA
  issue and slot waits; consumers: the K/V wait, QKᵀ, softmax, P·V, O rescale, the ping-pong turn waits; the
  epilogue), and its instrumented build records them (the PTX reads the SM clock, the global timer and the SM id);
- the scopes compile away: the bare build's PTX (line info off) is byte-identical to that of the same kernels with
  every scope line deleted, and an instrumented compile does not leave its build in Triton's cache for the bare one;
- the partitions read from the compiled kernel (WarpLayout) give Triton's warp count, and one warp per warp group
  is recorded.
Compiling is the slow part (a few seconds a build); each build is made once per module.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from pathlib import Path

import pytest

from collectors.census import sm90
from collectors.census.sm90 import H100_SM_COUNT
from collectors.timeline.capture import (BYTES_PER_RECORD, MAX_BUFFER_BYTES, CapturePlan, compile_instrumented,
                                         records_per_warp)
from collectors.timeline.read import WarpLayout, warp_layout
from kernels.suites import SEED

ROOT = Path(__file__).resolve().parents[1]
GLUON = ["stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap", "stage5_full"]
# stage 5 at a config without the asynchronous overlap: its own key loop (the default compiles stage 4's)
STAGE5_SYNC = "S=2048 D=64: BLOCK_M=128 BLOCK_N=128 ring=3 masked_loop=False persistent=True pingpong=True " \
              "overlap=False q_ring=1 (tuned)"
# stage 5 without the ping-pong: one 8-warp consumer running stage 4's overlapped loop
STAGE5_ONE = "S=2048 D=64: BLOCK_M=128 BLOCK_N=128 ring=3 masked_loop=False persistent=True pingpong=False " \
             "overlap=True q_ring=1 (tuned)"
CASES = [(s, None) for s in GLUON] + [("stage5_full", STAGE5_SYNC), ("stage5_full", STAGE5_ONE)]
CASE_IDS = GLUON + ["stage5_full-sync", "stage5_full-one"]

# the phases each stage must record, by role (issue 24: producer TMA issue and slot waits; consumer QKᵀ, softmax,
# P·V, O rescale, turn-barrier waits; epilogue)
PRODUCER_SPLIT = {"tile", "q_issue", "k_wait", "k_issue", "v_wait", "v_issue"}  # stage 1: K and V handed over apart
PRODUCER = {"tile", "q_issue", "kv_wait", "kv_issue"}
CONSUMER = {"tile", "q_wait", "kv_wait", "qk", "mask", "softmax", "rescale", "pv", "epilogue"}
PHASES = {
    "stage1_warpspec": (PRODUCER_SPLIT, CONSUMER - {"kv_wait"} | {"k_wait", "v_wait"}),
    "stage2_reduced_sync": (PRODUCER, CONSUMER),
    "stage3_persistent": (PRODUCER | {"q_wait"}, CONSUMER),
    "stage4_overlap": (PRODUCER | {"q_wait"}, CONSUMER | {"turn_wait", "mma_issue"}),
    "stage5_full": (PRODUCER | {"q_wait"}, CONSUMER | {"turn_wait", "mma_issue"}),
    "stage5_full-sync": (PRODUCER | {"q_wait"}, CONSUMER | {"turn_wait"}),
    "stage5_full-one": (PRODUCER | {"q_wait"}, CONSUMER | {"mma_issue"}),  # no partner: no turn to wait for
}
SCOPE_LINE = re.compile(r'^\s*pl\.(?:enter|exit)_scope\("[^"]+"\)\s*$')


def _launch(stage: str, tuned: str | None, module=None):
    return sm90.capture(module or sm90.stage_module(stage), SEED, H100_SM_COUNT, tuned)[-1]


@pytest.fixture(scope="module")
def builds():
    """(bare CompiledKernel, its CapturePlan, instrumented CompiledKernel) per case, at the seed config."""
    out = {}
    for (stage, tuned), case in zip(CASES, CASE_IDS):
        launch = _launch(stage, tuned)
        bare, _ = sm90.compile_launch(launch)
        layout = warp_layout(bare.asm["ttgir"])
        plan = CapturePlan(layout, H100_SM_COUNT, 4096)
        out[case] = (bare, plan, compile_instrumented(launch, plan.mode()), launch)
    return out


def _recorded(compiled) -> dict[str, set[str]]:
    """role -> phases of the scopes an instrumented build records (its TTGIR's proton.record start ops)."""
    names = re.findall(r'proton\.record start "([^"]+)"', compiled.asm["ttgir"])
    out: dict[str, set[str]] = {}
    for n in names:
        role, _, phase = n.partition(".")
        out.setdefault(role, set()).add(phase)
    return out


@pytest.mark.parametrize("case", CASE_IDS)
def test_instrumented_build_records_every_phase(builds, case):
    bare, plan, inst, _ = builds[case]
    producer, consumer = PHASES[case]
    assert _recorded(inst) == {"producer": producer, "consumer": consumer}
    ptx = inst.asm["ptx"]
    # a record reads the SM clock; each program reads the global timer and its SM id once for the trace
    assert "%clock" in ptx and "%globaltimer" in ptx and "%smid" in ptx
    # the buffer Proton allocates per program: the plan's, plus its header and one word per warp
    assert plan.buffer_bytes < inst.metadata.profile_scratch_size <= plan.buffer_bytes + 1024


@pytest.mark.parametrize("case", CASE_IDS)
def test_bare_build_has_no_instrumentation(builds, case):
    bare, _, _, launch = builds[case]
    assert "%clock" not in bare.asm["ptx"] and "proton" not in bare.asm["ttgir"]
    assert bare.metadata.profile_scratch_size == 0
    # compiled again after the instrumented build (same arguments, Triton's cache warm): still the bare build
    again, _ = sm90.compile_launch(launch)
    assert again.hash == bare.hash and "%clock" not in again.asm["ptx"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_layout_matches_the_compiled_warps(builds, case):
    bare, plan, _, _ = builds[case]
    assert plan.layout.total_warps == bare.metadata.num_warps
    sampled = plan.sampled_warps
    if case.startswith(("stage1", "stage2", "stage3")) or case == "stage5_full-one":
        # one 8-warp consumer (two warp groups, warps 0 and 4 recorded) and the producer's warp 8
        assert plan.layout == WarpLayout(8, (1,)) and sampled == (0, 4, 8)
    elif case == "stage5_full-sync" or case in ("stage4_overlap", "stage5_full"):
        # two 4-warp consumers (0-3, 4-7) and the producer at 8
        assert plan.layout == WarpLayout(4, (4, 1)) and sampled == (0, 4, 8)


def test_three_consumer_groups_record_four_warps():
    """Stage 5 with BLOCK_M=192: three consumer warp groups and the producer's, 16 warps."""
    tuned = "S=2048 D=64: BLOCK_M=192 BLOCK_N=128 ring=3 masked_loop=False persistent=True pingpong=True " \
            "overlap=True q_ring=1 (tuned)"
    bare, _ = sm90.compile_launch(_launch("stage5_full", tuned))
    layout = warp_layout(bare.asm["ttgir"])
    assert layout == WarpLayout(4, (4, 4, 1)) and layout.total_warps == bare.metadata.num_warps == 16
    assert layout.sampled_warps() == (0, 4, 8, 12)
    assert [layout.partition_of(w) for w in (0, 3, 4, 8, 12, 13)] == [0, 0, 1, 2, 3, None]


# ---- the scopes compile away -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bare_package(tmp_path_factory):
    """The kernels package copied as `kernels_bare` with every scope line deleted; (module loader, lines deleted)."""
    root = tmp_path_factory.mktemp("bare")
    dst = root / "kernels_bare"
    shutil.copytree(ROOT / "kernels", dst, ignore=shutil.ignore_patterns("__pycache__"))
    deleted = 0
    for f in dst.glob("*.py"):
        lines = f.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not SCOPE_LINE.match(ln)]
        deleted += len(lines) - len(kept)
        f.write_text("".join(kept))
    sys.path.insert(0, str(root))
    try:
        yield (lambda stage: importlib.import_module(f"kernels_bare.{stage}")), deleted
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == "kernels_bare" or n.startswith("kernels_bare.")]:
            del sys.modules[name]


def test_the_kernels_declare_scopes(bare_package):
    _, deleted = bare_package
    assert deleted >= 100  # every phase of every stage opens and closes a scope


@pytest.mark.parametrize("case", CASE_IDS)
def test_bare_ptx_is_identical_without_the_scopes(bare_package, case, monkeypatch):
    load, _ = bare_package
    stage, tuned = CASES[CASE_IDS.index(case)]
    monkeypatch.setenv("TRITON_DISABLE_LINE_INFO", "1")  # the .loc lines name source lines, which the copy moved
    stripped = load(stage)
    launch_mod = sys.modules["kernels_bare._launch"]
    # as collectors.census.sm90.capture does for kernels._launch
    monkeypatch.setattr(launch_mod, "interpreting", lambda: True)
    monkeypatch.setattr(launch_mod, "sm_count", lambda device: H100_SM_COUNT)
    ptx = [sm90.compile_launch(_launch(stage, tuned, module))[0].asm["ptx"]
           for module in (sm90.stage_module(stage), stripped)]
    assert ".loc" not in ptx[0]
    assert ptx[0] == ptx[1]


# ---- the plan --------------------------------------------------------------------------------------------------
def test_records_bound_covers_the_busiest_program():
    # seed config, 128-row tiles on 132 programs: 4096 work items, at most 32 a program, 16 key blocks of 128
    assert records_per_warp(SEED, 132, 128, 128) == 2 * 32 * (12 + 16 * 10)
    # one program per work item: one work item each
    assert records_per_warp(SEED, SEED.tiles(128), 128, 128) == 2 * (12 + 16 * 10)


def test_plan_sizes_a_power_of_two_per_warp():
    plan = CapturePlan(WarpLayout(4, (4, 1)), 132, 3000)
    assert plan.segment_bytes == 32768 >= 3000 * BYTES_PER_RECORD
    assert plan.buffer_bytes == 3 * 32768 and plan.total_bytes == 132 * 3 * 32768
    mode = plan.mode()
    assert mode.buffer_size == plan.buffer_bytes and mode.sampling_options == "0,4,8"
    assert "buffer_type=BUFFER_TYPE.GLOBAL" in str(mode) and "optimizations=time_shift" in str(mode)
    assert plan.problem() is None


def test_plan_refuses_a_buffer_past_the_limit():
    plan = CapturePlan(WarpLayout(8, (1,)), 100_000, 10_000)
    assert plan.total_bytes > MAX_BUFFER_BYTES
    assert "GiB of profile buffer" in plan.problem()


def test_a_bare_launch_plans_its_capture(monkeypatch):
    """What the device script does first, on the stub driver (tests/stub_cuda_driver.py: the JIT compiles for sm_90,
    nothing runs): the stage's launch is recorded with its compiled kernel, which plans the capture."""
    import torch
    from stub_cuda_driver import stub_cuda_driver

    from collectors.timeline.capture import jit_launches, plan_capture
    from kernels import _launch, stage4_overlap
    from kernels.workload import AttentionConfig

    monkeypatch.setattr(_launch, "interpreting", lambda: True)  # CPU tensors pass the input check
    monkeypatch.setattr(stage4_overlap, "interpreting", lambda: False)
    monkeypatch.setattr(stage4_overlap, "sm_count", lambda device: H100_SM_COUNT)
    config = AttentionConfig(B=2, H=4, S=1024, D=64, causal=True)
    q, k, v = (torch.randn(config.B, config.H, config.S, config.D).half() for _ in range(3))
    stage4_overlap.FAST.clear()
    try:
        with stub_cuda_driver(), jit_launches() as launches:
            stage4_overlap.attention(q, k, v, causal=True)
    finally:
        stage4_overlap.FAST.clear()
    (launch,) = launches
    assert launch.fn.__name__ == "_attn_fwd" and launch.kwargs["BLOCK_M"] == 128
    plan = plan_capture(launch, config)
    # 64 work items of 128 rows on a persistent grid of min(64, 132) programs: one each, 8 key blocks of 128
    assert plan.layout == WarpLayout(4, (4, 1)) and plan.programs == 64
    assert plan.records_per_warp == records_per_warp(config, 64, 128, 128) == 2 * (12 + 8 * 10)
    assert plan.segment_bytes == 2048 and plan.buffer_bytes == 3 * 2048


def test_protons_warnings_are_counted():
    """The lines Proton's parser prints (CircularLayoutParser.cpp) when a warp's buffer overflowed or its records
    did not pair: a capture with any is refused by the device script."""
    from collectors.timeline.capture import _DROPPED, _PARSE_PROBLEM

    log = ("Warning (cta3, warp8): first 12 events are dropped due to insufficient buffer size (512/524)\n"
           "Warning (cta7, warp0): first 3 events are dropped due to insufficient buffer size (512/515)\n"
           "[PROTON] Scope mismatch: start after start at 1024\n")
    assert sum(int(n) for n in _DROPPED.findall(log)) == 15
    assert len(_PARSE_PROBLEM.findall(log)) == 1
