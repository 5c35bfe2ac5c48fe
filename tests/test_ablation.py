"""The ablation: stage 5's switches are real compiled variants, the phase's tables have their documented shape
under the CPU interpreter, gains and their intervals come from the samples, and the analysis leads with the
ablation, labels the stage chain and reports a constraint without a switch as not ablatable."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import kernels
from collectors.sweep import ablation as A
from collectors.timing.measure import Timing
from kernels.workload import AttentionConfig
from perfmodel.cli import main
from perfmodel.reports import ablation as PA
from runstore.reader import load_run
from runstore.schema import columns
from runstore.writer import RunWriter

STAGE5 = kernels.get_stage("stage5_full")
NONCAUSAL = AttentionConfig(B=1, H=2, S=128, D=64, causal=False, dtype="fp16")
# the smallest causal tail case: S < BLOCK_N, one masked block
TAIL = AttentionConfig(B=1, H=1, S=17, D=64, causal=True, dtype="fp16")


# ---- the declaration ----------------------------------------------------------------------------------------
def test_stage5_declares_its_switches_and_what_it_cannot_switch():
    names = [s.name for s in STAGE5.switches()]
    assert names == ["masked_loop", "persistent", "pingpong", "overlap", "dynamic", "lean_softmax", "lazy_rescale",
                     "BLOCK_M"]
    fields = set(STAGE5.module().Config.__dataclass_fields__)
    assert set(names) <= fields
    for sw in STAGE5.switches():
        # stages 2-4's techniques each remove a plan constraint; issue 26's levers match none and say so
        assert (sw.removes and all(c in (1, 2, 3, 4) for c in sw.removes)) or "no plan constraint" in sw.technique
        assert sw.on != sw.off
    assert 1 in STAGE5.not_ablatable() and "select" in STAGE5.not_ablatable()[1]
    # every stage 2-5 technique is a switch of stage 5
    adds = {name for s in kernels.STAGES for name in s.adds}
    assert adds == set(names)


def test_stages_without_switches_declare_none():
    assert kernels.get_stage("stage0_baseline").switches() == ()


def test_flip_and_no_effect():
    cfg = STAGE5.module().Config(masked_loop=True)
    masked = next(s for s in STAGE5.switches() if s.name == "masked_loop")
    assert masked.no_effect(cfg) is None and not masked.is_on(cfg)
    assert masked.flipped(cfg).masked_loop is False
    variants = A.plan_variants(STAGE5, NONCAUSAL, cfg)
    texts = [str(v.config) for v in variants]
    assert len(texts) == len(set(texts))  # each kernel config once
    assert str(masked.flipped(cfg)) in texts
    assert {v.role for v in variants} <= {"candidate", "flip"}


def test_variant_ids_are_stable_and_distinct():
    variants = STAGE5.variants(NONCAUSAL)
    ids = [A.variant_id("stage5_full", v) for v in variants]
    assert len(set(ids)) == len(ids)
    assert ids == [A.variant_id("stage5_full", v) for v in STAGE5.variants(NONCAUSAL)]
    assert all("/" not in A.variant_label("stage5_full", i) and "@" not in A.variant_label("stage5_full", i)
               for i in ids)


# ---- switch variants are real compiled variants (sm_90, no GPU needed) --------------------------------------
@pytest.fixture(scope="module")
def variant_census():
    from collectors.census.census import census

    def of(cfg_kernel, config=NONCAUSAL):
        return census("stage5_full", config, tuned_config=str(cfg_kernel))

    return of


def test_each_switch_changes_the_compiled_kernel(variant_census):
    base = STAGE5.module().Config()
    big = NONCAUSAL.with_(B=16, H=16, S=2048)  # more work items than SMs, so persistence changes the grid
    for sw in STAGE5.switches():
        a, b = variant_census(base, big), variant_census(sw.flipped(base), big)
        assert a.status == "ok" and b.status == "ok", (sw.name, a.error, b.error)
        # persistence changes the grid (one program per SM instead of one per work item), the others the code
        assert a.ptx != b.ptx or a.grid_programs != b.grid_programs, f"{sw.name}: on and off are the same kernel"


def test_switches_show_their_technique_in_the_code(variant_census):
    import re

    from collectors.census.ptx import math_loops

    Config = STAGE5.module().Config
    big = NONCAUSAL.with_(B=16, H=16, S=2048)
    on, off = variant_census(Config(), big), variant_census(Config(persistent=False), big)
    assert on.grid_programs == 132 and off.grid_programs == big.tiles(128)
    pp_on, pp_off = variant_census(Config()), variant_census(Config(pingpong=False))
    assert len(math_loops(pp_on.loops)) == 2 and len(math_loops(pp_off.loops)) == 1  # one key loop per consumer
    wait1 = re.compile(r"wgmma\.wait_group\.sync\.aligned\s+1;")
    ov_on, ov_off = variant_census(Config()), variant_census(Config(overlap=False))
    assert wait1.search(ov_on.ptx) and not wait1.search(ov_off.ptx)  # P·V left in flight across the softmax


# ---- gains from samples -------------------------------------------------------------------------------------
def _timed(cfg, median_ms: float, seed: int) -> A.Variant:
    rng = np.random.default_rng(seed)
    samples = (median_ms * (1 + 0.01 * rng.standard_normal(200))).tolist()
    return A.Variant(cfg, "candidate", status="ok", timing=Timing.from_samples(samples))


def test_best_with_vs_best_without_and_the_flip():
    Config = STAGE5.module().Config
    fast_pp = Config()
    slow_pp = Config(ring=2)
    single = Config(ring=2, pingpong=False)
    wrong = A.Variant(Config(pingpong=False), "candidate", status="wrong", error="max abs error 1")
    variants = [_timed(fast_pp, 1.0, 1), _timed(slow_pp, 1.3, 2), _timed(single, 1.2, 3), wrong]
    rows = pd.DataFrame(A.gain_rows(STAGE5, NONCAUSAL, variants, tuned=slow_pp, timed=True))
    pp_best = rows[(rows["switch"] == "pingpong") & (rows["measure"] == "best")].iloc[0]
    assert pp_best["status"] == "ok"
    assert pp_best["gain"] == pytest.approx(1.2 / 1.0 - 1, abs=0.01)  # t_off / t_on - 1, fastest of each side
    assert pp_best["gain_ci_low"] < pp_best["gain"] < pp_best["gain_ci_high"]
    assert pp_best["n_on"] == 2 and pp_best["n_off"] == 1  # the wrong variant is not counted, nor timed
    assert pp_best["on_variant"] == str(fast_pp) and pp_best["off_variant"] == str(single)
    pp_flip = rows[(rows["switch"] == "pingpong") & (rows["measure"] == "flip")].iloc[0]
    assert pp_flip["status"] == "ok" and pp_flip["gain"] == pytest.approx(1.2 / 1.3 - 1, abs=0.01)
    # no variant with the mask in every block (masked_loop=True, the technique off): not measured, with the
    # reason, never a number
    ml = rows[(rows["switch"] == "masked_loop") & (rows["measure"] == "best")].iloc[0]
    assert ml["status"] == "not_measured" and math.isnan(ml["gain"]) and "masked_loop=True" in ml["error"]
    assert set(rows.columns) >= set(columns("ablation")) - {"run_id"}


def test_untimed_ablation_records_why():
    rows = A.gain_rows(STAGE5, NONCAUSAL, [], tuned=None, timed=False, why_not_timed="--interpret: no GPU")
    assert rows and all(r["status"] == "not_measured" and r["error"] for r in rows)
    assert all(math.isnan(r["gain"]) for r in rows)


# ---- the phase under the interpreter ------------------------------------------------------------------------
@pytest.mark.interpreter
def test_collect_interpret_ablation_tables(tmp_path):
    code = main(["collect", "--interpret", "--stages", "stage5_full", "--refs", "none", "--config",
                 "B=1,H=1,S=17,D=64,causal", "--no-ncu", "--determinism", "1", "--out", str(tmp_path)])
    assert code == 0
    (path,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(path)
    assert run.meta["ablation"]["stage5_full"]["not_ablatable"]["1"]
    assert [s["name"] for s in run.meta["ablation"]["stage5_full"]["switches"]][0] == "masked_loop"
    assert "ablation" in run.meta["phases_s"]
    # stage 5 is a Gluon kernel: no interpreter, so the case and its variants are not measured, and say why
    c = run.table("correctness")
    assert list(c["status"]) == ["not_measured"] and "Gluon" in c["error"].iloc[0]
    assert len(run.table("ablation_variants")) == 0
    a = run.table("ablation")
    assert len(a) == 2 * len(STAGE5.switches())
    assert set(a["status"]) == {"not_measured"} and a["gain"].isna().all()
    assert a["error"].str.contains("could not run here").all()
    # resume: the ablation is done and is not redone
    assert main(["collect", "--resume", str(path)]) == 0
    assert len(load_run(path).table("ablation")) == len(a)


# ---- analysis -----------------------------------------------------------------------------------------------
def _synthetic_ablation_run(tmp_path) -> object:
    """A run with timings of stages 3 and 4 (4 slower beyond noise) and an ablation of stage 5 at one config."""
    cfg = AttentionConfig(B=16, H=16, S=2048, D=64, causal=True, dtype="fp16")
    key = {"config_id": cfg.id, **cfg.as_dict()}
    w = RunWriter(tmp_path / "r", {"suite": "custom", "mode": "gpu", "environment": {"gpu_name": "NVIDIA H200"},
                                   "ablation": {"stage5_full": A.declared(STAGE5)}})
    rows = []
    for impl, ms in (("stage3_persistent", 0.50), ("stage4_overlap", 0.60)):
        rows.append({"impl": impl, **key, "status": "ok", "time_ms": ms, "time_ms_p20": ms * 0.99,
                     "time_ms_p80": ms * 1.01, "tflops": cfg.tflops_at(ms)})
    w.append("timings", rows)
    w.append("correctness", [{"impl": r["impl"], **key, "status": "ok"} for r in rows])
    Config = STAGE5.module().Config
    on, off = Config(overlap=True), Config(overlap=False)
    gains = A.gain_rows(STAGE5, cfg, [_timed(on, 0.6, 5), _timed(off, 0.5, 6)], tuned=off, timed=True)
    w.append("ablation", gains)
    w.finish("complete")
    return load_run(w.path), cfg


def test_constraint_evidence_leads_with_the_ablation(tmp_path):
    run, cfg = _synthetic_ablation_run(tmp_path)
    ev = PA.constraint_evidence(run)
    assert set(ev["constraint"]) == {1, 2, 3, 4}
    one = ev[ev["constraint"] == 1].iloc[0]
    assert one["ablation_status"] == "not_ablatable" and "select" in one["reason"] and math.isnan(one["ablation_gain"])
    overlap = ev[(ev["constraint"] == 4) & (ev["switch"] == "overlap")].iloc[0]
    assert overlap["ablation_gain"] == pytest.approx(0.5 / 0.6 - 1, abs=0.01)
    assert overlap["ablation_ci_high"] < 0 and "costs time" in overlap["verdict"]
    assert "below the plan's claim" in overlap["verdict"]
    assert (ev[ev["constraint"] == 4]["stage_chain"].str.contains("stage4_overlap vs stage3_persistent")).all()


def test_stage_regression_is_flagged_with_the_ablation_that_explains_it(tmp_path):
    run, cfg = _synthetic_ablation_run(tmp_path)
    reg = PA.stage_regressions(run)
    assert list(reg["impl"]) == ["stage4_overlap"] and reg["slowdown"].iloc[0] == pytest.approx(0.2)
    assert "overlap" in reg["explained_by"].iloc[0] and "p20–p80 of the repetitions" in reg["interval"].iloc[0]


def test_report_shows_the_ablation_first(tmp_path):
    from perfmodel.reports.reporting import build_report

    run, _ = _synthetic_ablation_run(tmp_path)
    md = build_report(run, fmt="md")
    section = md[md.index("## Constraints"):]
    assert section.index("Ablation: what each technique is worth alone") < section.index("Stage chain")
    assert "fair measure" in section and "not ablatable" in section
    assert "the check the plan forgot" in md


# ---- a user's kernel that declares a switch -----------------------------------------------------------------
# The README's protocol: a keyword argument with a default, and `attention.switches` saying what it switches. A
# Triton kernel, so the interpreter child runs it and the census compiles it.
USER_KERNEL = '''
import torch
import triton
import triton.language as tl

CALLS = []  # the switch value of every call, for the tests


@triton.jit
def _copy(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst + offs, tl.load(src + offs, mask=offs < n), mask=offs < n)


def _sdpa(q, k, v, causal, sm_scale):
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal,
                                                            scale=sm_scale).to(q.dtype).contiguous()


def attention(q, k, v, causal=False, sm_scale=None, *, wide=True):
    CALLS.append(wide)
    ref = _sdpa(q, k, v, causal, sm_scale)
    out = torch.empty_like(ref)
    block = 1024 if wide else 64
    _copy[(triton.cdiv(ref.numel(), block),)](ref, out, ref.numel(), BLOCK=block)
    return out


attention.switches = {"wide": {"on": True, "off": False, "removes": [2], "technique": "1024 elements a program"}}
attention.not_ablatable = {1: "a copy has no branch"}


def plain(q, k, v, causal=False, sm_scale=None, *, wide=True):
    """The same switch without Triton, for the in-process tests (no interpreter needed)."""
    CALLS.append(wide)
    return _sdpa(q, k, v, causal, sm_scale)


plain.switches, plain.not_ablatable = attention.switches, attention.not_ablatable


def wrong_when_narrow(q, k, v, causal=False, sm_scale=None, *, wide=True):
    return _sdpa(q, k, v, causal, sm_scale) * (1 if wide else 2)


wrong_when_narrow.switches = attention.switches
'''
SMALL = AttentionConfig(B=1, H=2, S=33, D=64, causal=True, dtype="fp16")


@pytest.fixture
def user_kernel(tmp_path, monkeypatch):
    """Registers a function of USER_KERNEL under its own name; returns (Impl, the file's module)."""
    import sys

    from kernels import lookup, user_kernels

    monkeypatch.setenv(user_kernels.ENV_VAR, "{}")  # restored after the test
    path = tmp_path / "switched.py"
    path.write_text(USER_KERNEL)

    def register(function: str):
        user_kernels.register(function, f"{path}:{function}")
        impl = lookup.get(function)
        return impl, sys.modules[impl.launcher.function().__module__]

    return register


def test_a_user_kernel_declares_its_switches_like_a_stage(user_kernel):
    impl, module = user_kernel("plain")
    (wide,) = impl.switches()
    assert (wide.name, wide.on, wide.off, wide.removes) == ("wide", True, False, (2,))
    assert impl.not_ablatable() == {1: "a copy has no branch"}
    variants = impl.variants(SMALL)
    assert [str(v) for v in variants] == ["wide=True", "wide=False"]  # the defaults (what the sweep times) first
    assert impl.config_from_report(None) == variants[0] and impl.config_from_report("wide=False") == variants[1]
    q = torch.zeros(1, 1, 8, 64)
    with impl.pinned("wide=False") as got:
        assert got == variants[1]
        impl.launcher(q, q, q)
    impl.launcher(q, q, q)
    assert module.CALLS == [False, True]  # the pinned variant is a keyword argument, and only inside the block
    assert A.declared(impl)["switches"][0]["removes"] == [2]


@pytest.fixture
def fake_gpu(monkeypatch):
    """measure_on_gpu on the CPU: inputs made on the CPU, no synchronization, and a timer whose samples say 1 ms
    with the technique on and 1.25 ms with it off (read from the kernel's last call)."""
    from collectors.timing import bench, measure as timing

    made = bench.make_input_sets
    monkeypatch.setattr(bench, "make_input_sets", lambda config, n, device="cuda", seed=0: made(config, n, "cpu", seed))
    monkeypatch.setattr(timing, "l2_bytes", lambda: 50 << 20)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    state = {}

    def fake_time_call(fn, n_inputs, warmup_ms, rep_ms):
        fn(0)
        return _timed(None, 1.0 if state["calls"][-1] else 1.25, seed=len(state["calls"])).timing

    monkeypatch.setattr(timing, "time_call", fake_time_call)
    monkeypatch.setattr(timing, "time_gpu", lambda *a: (fake_time_call(*a), None))  # as if captured in a graph
    return state


def test_the_ablation_times_a_user_kernel_with_its_switch_on_and_off(user_kernel, fake_gpu):
    impl, module = user_kernel("plain")
    fake_gpu["calls"] = module.CALLS
    tuned = impl.config_from_report(None)
    variants = A.plan_variants(impl, SMALL, tuned)
    A.measure_on_gpu(impl, SMALL, variants, warmup_ms=1, rep_ms=1)
    assert [v.status for v in variants] == ["ok", "ok"]
    assert all(v.correctness.within_budget for v in variants)  # each variant checked against the reference
    rows = pd.DataFrame(A.gain_rows(impl, SMALL, variants, tuned, timed=True)).set_index("measure")
    for measure in ("best", "flip"):
        assert rows.loc[measure, "status"] == "ok" and rows.loc[measure, "impl"] == "plain"
        assert rows.loc[measure, "gain"] == pytest.approx(0.25, abs=0.01)  # t_off / t_on - 1
        assert rows.loc[measure, "constraints"] == "2"
    v = pd.DataFrame(A.variant_rows(impl, SMALL, variants, tuned))
    assert list(v["wide"]) == [True, False] and list(v["tuned"]) == [True, False]
    assert list(v["label"]) == [A.variant_label("plain", A.variant_id("plain", c)) for c in impl.variants(SMALL)]


def test_a_wrong_user_variant_is_recorded_and_not_timed(user_kernel, fake_gpu):
    impl, _ = user_kernel("wrong_when_narrow")
    fake_gpu["calls"] = [True]
    tuned = impl.config_from_report(None)
    variants = A.plan_variants(impl, SMALL, tuned)
    A.measure_on_gpu(impl, SMALL, variants, warmup_ms=1, rep_ms=1)
    assert [v.status for v in variants] == ["ok", "wrong"] and variants[1].timing is None
    assert "exceeds the budget" in variants[1].error
    rows = pd.DataFrame(A.gain_rows(impl, SMALL, variants, tuned, timed=True))
    assert set(rows["status"]) == {"not_measured"} and rows["gain"].isna().all()


def test_collect_interpret_ablates_a_user_triton_kernel(user_kernel, tmp_path):
    from collectors.census.census import census

    spec = f"{tmp_path / 'switched.py'}:attention"
    code = main(["collect", "--interpret", "--impl", f"mine={spec}", "--stages", "none", "--refs", "none",
                 "--config", "B=1,H=2,S=33,D=64,causal", "--no-ncu", "--determinism", "1", "--out",
                 str(tmp_path / "runs")])
    assert code == 0
    (path,) = (tmp_path / "runs").iterdir()
    run = load_run(path)
    assert run.meta["ablation"]["mine"]["switches"][0]["name"] == "wide"
    assert run.meta["ablation"]["mine"]["not_ablatable"] == {"1": "a copy has no branch"}
    # both variants ran in the interpreter child, each checked against the reference
    v = run.table("ablation_variants")
    assert list(v["variant"]) == ["wide=True", "wide=False"] and list(v["status"]) == ["ok", "ok"]
    assert v["within_budget"].all()
    a = run.table("ablation")
    assert list(a["measure"]) == ["best", "flip"] and set(a["status"]) == {"not_measured"}
    assert a["error"].str.contains("--interpret").all()
    assert list(run.table("census")["status"]) == ["ok"]
    # the census compiles the variant a run names: the narrow blocks need more programs
    narrow = census("mine", SMALL, tuned_config="wide=False")
    assert narrow.status == "ok" and narrow.grid_programs > run.table("census")["grid_programs"].iloc[0]
