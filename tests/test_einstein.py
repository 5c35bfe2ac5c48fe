"""The Einstein model file: the shipped one encodes the document; bad files fail in one sentence."""

import math

import pytest

from perfmodel.errors import UserError
from perfmodel.model import bound
from perfmodel.plan.einstein import ModelError, absolute_band, gain_factors, relative_band
from perfmodel.plan.einstein_file import default_model_path, load_model


@pytest.fixture(scope="module")
def model():
    return load_model()


def test_shipped_model_encodes_the_document(model):
    assert [c.key for c in model.constraints] == ["branching", "launch", "sync", "memory"]
    assert [s.impl for s in model.stages] == list(bound.STAGE_IMPLS)
    assert model.reference.tflops == 190.0
    gains = {c.id: (c.gain_low, c.gain_high) for c in model.constraints}
    assert gains == {1: (0.05, 0.10), 2: (0.30, 0.40), 3: (0.02, 0.03), 4: (0.20, 0.30)}
    assert {c.id: c.removed_by_stage for c in model.constraints} == {1: 5, 2: 3, 3: 2, 4: 4}
    assert [s.removes for s in model.stages] == [(), (), (3,), (2,), (4,), (1, 2, 3, 4)]
    launch = model.constraint(2)
    assert (launch.claim("per_seq_speedup_total"), launch.claim("launch_us_b32"), launch.claim("total_us_b32")) \
        == (6.0, 320.0, 800.0)
    assert all(c.evidence for c in model.constraints)
    assert "Already implemented" in model.constraint(1).status


def test_every_gate_of_the_document(model):
    gates = {g.id: g for g in model.gates}
    expect = {
        "stage1_allclose": ("==", 1.0), "stage1_max_err": ("<=", 0.06), "stage3_batching": (">=", 5.0),
        "stage3_tflops_b32": ("approx", 140.0), "stage4_memory_stalls": ("<", 0.40), "stage2_tflops": ("approx", 110.0),
        "stage4_tflops": ("approx", 180.0), "stage5_median_vs_fa3": (">=", 1.05),
        "stage5_correctness_20_configs": ("==", 1.0), "stage5_bitwise_1000": ("==", 1.0),
        "stretch_median_vs_fa3": (">=", 1.15),
    }
    for gid, (comparison, threshold) in expect.items():
        assert (gates[gid].comparison, gates[gid].threshold) == (comparison, threshold), gid
    assert gates["stretch_fp8"].measurable is False and gates["stretch_fp8"].kind == "stretch"
    assert "rtol=1e-3, atol=2e-3" in gates["stage1_allclose"].quote


def test_stage_tflops_gates_take_the_stage_targets(model):
    """Each stage TFLOP/s target is written once, in [[stages]]: the shipped TFLOP/s gates give no threshold."""
    import tomllib

    raw = {g["id"]: g for g in tomllib.loads(SHIPPED)["gates"]}
    tflops_gates = [g for g in model.gates if g.metric == "timings.tflops"]
    assert {g.id for g in tflops_gates} == {"stage2_tflops", "stage3_tflops_b32", "stage4_tflops", "stage5_tflops"}
    for g in tflops_gates:
        stage = model.stage(g.stage)
        assert "threshold" not in raw[g.id] and g.threshold_from == "stage target"
        assert g.threshold == stage.target_low_tflops
        assert g.threshold_high == (stage.target_high_tflops if g.comparison == "between" else None)
    gates = {g.id: g for g in model.gates}
    assert (gates["stage5_median_vs_fa3"].min_configs, gates["stage5_median_vs_fa3"].peers) == (20, ("fa3", "sdpa_cudnn"))
    assert gates["stage5_bitwise_1000"].repetitions == 1000
    assert (gates["stage3_batching"].suite, gates["stage3_batching"].B) == ("batching", 32)
    assert {g.id for g in model.gates if g.judged_by_person} == {"stage2_minimal_barriers", "stretch_fp8",
                                                                 "mvp_reproducibility", "stretch_multi_gpu"}


def test_absolute_band(model):
    assert absolute_band(model, 0) == (40.0, 60.0)
    assert absolute_band(model, 1) == (None, None)  # "Any"
    assert absolute_band(model, 5) == (210.0, 260.0)


def test_relative_band_multiplies_gains_cumulatively(model):
    assert relative_band(model, 0, 100.0) == (100.0, 100.0)
    assert relative_band(model, 1, 100.0) == (100.0, 100.0)  # "Architecture only"
    assert relative_band(model, 2, 100.0) == pytest.approx((102.0, 103.0))
    assert relative_band(model, 3, 100.0) == pytest.approx((102 * 1.3, 103 * 1.4))
    # stage 5 removes "All 4": each constraint counts once
    lo, hi = gain_factors(model, 5)
    assert lo == pytest.approx(1.05 * 1.02 * 1.30 * 1.20)
    assert hi == pytest.approx(1.10 * 1.03 * 1.40 * 1.30)
    with pytest.raises(UserError):
        relative_band(model, 2, -1.0)
    with pytest.raises(ModelError):
        absolute_band(model, 6)


SHIPPED = default_model_path().read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "old, new, words",
    [
        ('key = "sync"\n', "", "missing the key 'key'"),
        ("tflops = 190.0", 'tflops = "fast"', "must be a number"),
        ("gain_high = 0.03", "gain_high = 0.01", "larger than gain_high"),
        ("target_low_tflops = 210.0", "target_low_tflops = 300.0", "larger than target_high_tflops"),
        ("removes = [3]", "removes = [7]", "constraint #7"),
        ("removes = [3]", 'removes = ["sync"]', "constraint ids"),
        ('id = 4\nkey = "memory"', 'id = 3\nkey = "memory"', "unique"),
        ("index = 5", "index = 6", "stage indices"),
        ("index = 2", "index = 1", "stage indices"),
        ("removed_by_stage = 3", "removed_by_stage = 4", "does not name it"),
        ('comparison = "<="', 'comparison = "=<"', "comparison must be one of"),
        ("\nschema_version = 1\n", "\nschema_version = 2\n", "version"),
        ("target_high_tflops = 110.0", "", "without its partner"),
        ("measurable = true", "measurable = 1", "true or false"),
        # the gate schema: every figure a gate is judged by is in the file, and a misspelt key is not ignored
        ("min_configs = 20", "min_config = 20", "unknown key 'min_config'"),
        ('suite = "seed"', 'suite = "seeds"', "suite must be one of"),
        ('suite = "seed"\n', "", "missing the key 'suite'"),
        ("B = 32", "B = 16", "no config with B=16"),
        ("min_configs = 20", "min_configs = 30", "more than the 24"),
        ('peers = ["fa3", "sdpa_cudnn"]\n', "", "missing the key 'peers'"),
        ('peers = ["fa3", "sdpa_cudnn"]', "peers = []", "peers must be a non-empty list"),
        ("threshold = 0.06\n", "threshold = 0.06\nrepetitions = 5\n", "only a determinism.bitwise_identical"),
        ("threshold = 5.0\n", "", "missing the key 'threshold'"),
        ('id = "stage2_tflops"\nstage = 2', 'id = "stage2_tflops"\nstage = 1', "stage 1 has no target_low_tflops"),
        ("rel_tol = 0.10", "rel_tol = 1.5", "rel_tol must be a fraction"),
    ],
)
def test_bad_model_files_fail_in_one_sentence(tmp_path, old, new, words):
    assert old in SHIPPED
    path = tmp_path / "model.toml"
    path.write_text(SHIPPED.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ModelError) as e:
        load_model(path)
    message = str(e.value)
    assert words in message
    assert message.endswith(".") and "\n" not in message


def test_missing_and_non_toml_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.toml")
    with pytest.raises(ModelError, match="not a file"):
        load_model(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stages]\nindex = 0\n", encoding="utf-8")
    with pytest.raises(ModelError, match="not valid TOML"):
        load_model(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match="UTF-8"):
        load_model(binary)


def test_a_smaller_user_model_loads(tmp_path):
    text = """
schema_version = 1
[document]
title = "mine"
[reference]
name = "FA3"
tflops = 371.0
quote = "paper"
config = "B=8,H=32,S=2048,D=64,causal"
gpu = "h100-sxm"
[[constraints]]
id = 1
key = "overlap"
name = "softmax/MMA overlap"
fa3_claim = "-"
removal = "ping-pong"
gain_low = 0.1
gain_high = 0.2
gain_quote = "+10-20%"
status = "planned"
removed_by_stage = 1
[[stages]]
index = 0
impl = "stage0_baseline"
label = "base"
target_low_tflops = 300.0
target_high_tflops = 330.0
removes = []
[[stages]]
index = 1
impl = "stage4_overlap"
label = "overlap"
removes = [1]
"""
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    m = load_model(path)
    assert len(m.stages) == 2 and m.gates == ()
    assert relative_band(m, 1, 300.0) == pytest.approx((330.0, 360.0))
    assert absolute_band(m, 1) == (None, None)
    assert not math.isnan(m.reference.tflops)


def test_model_check_names_a_gate_threshold_beside_its_stage_target(tmp_path):
    from kernels.hardware import get_gpu
    from perfmodel.plan.modelcheck import check_model

    path = tmp_path / "two-figures.toml"
    path.write_text(SHIPPED.replace('rel_tol = 0.10\nsuite = "seed"', 'threshold = 120.0\nrel_tol = 0.10\nsuite = "seed"', 1),
                    encoding="utf-8")
    subjects = {f.subject: f for f in check_model(load_model(path), get_gpu("h100-sxm"))}
    assert "gate stage2_tflops" in subjects and "120 TFLOP/s" in subjects["gate stage2_tflops"].message
    assert not any(f.subject.startswith("gate stage") and "TFLOP/s while" in f.message
                   for f in check_model(load_model(), get_gpu("h100-sxm")))
