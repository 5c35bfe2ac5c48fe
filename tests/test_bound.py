"""The bound of each stage and the predictions frame on cases worked out by hand."""

import math

import pytest

from kernels.hardware import GPUS, HardwareError, get_gpu
from kernels.suites import SEED, get_suite
from kernels.workload import AttentionConfig, ConfigError
from perfmodel.model import bound
from perfmodel.model.bound import predict_all, predict_stage, roofline_tflops
from perfmodel.plan.predictions import COLUMNS, predict

H100 = get_gpu("h100-sxm")


def test_bound_on_known_cases():
    # seed on H100: tensor 0.1389 ms > exp 0.1284 ms > HBM 0.0801 ms, so the bound is the tensor rate itself
    assert roofline_tflops(SEED, H100) == pytest.approx(989.4)
    # with a slower SFU the exponentials bind: 256 FLOPs per exp at D=64, so bound = 256 x exp rate
    slow_exp = H100.with_measured({"exp2_tops": 2.0})
    assert roofline_tflops(SEED, slow_exp) == pytest.approx(512.0)
    # memory binds when arithmetic intensity x bandwidth is below both: S=128 full -> AI = 4·S·D/(4·D·2) = 64
    short = AttentionConfig(B=64, H=16, S=128, D=64)
    assert short.arithmetic_intensity == 64
    assert roofline_tflops(short, H100) == pytest.approx(64 * 3.35)


def test_executed_causal_work_counts_diagonal_tiles():
    # 16 tiles of 128 rows walk 2, 4, ..., 32 key blocks of 64: 272 blocks = S²/2 x 17/16 score elements
    p = predict_stage(SEED, 0, H100)
    assert p.tensor_ms == pytest.approx(SEED.flops * 17 / 16 / 989.4e12 * 1e3)
    assert p.exp_ms == pytest.approx(SEED.exps * 17 / 16 / (H100.exp_tops * 1e12) * 1e3)
    assert p.hbm_ms == pytest.approx(SEED.min_hbm_bytes / 3.35e12 * 1e3)
    assert p.compute_ms == pytest.approx(p.tensor_ms + p.exp_ms)  # stage 0: softmax serialized with MMA
    assert predict_stage(SEED, 4, H100).compute_ms == pytest.approx(p.tensor_ms)  # overlapped: max


def test_wave_quantization_by_hand():
    # 133 equal tiles on 132 SMs: two rounds of work where 133/132 would do
    c = AttentionConfig(B=1, H=133, S=128, D=64)
    p = predict_stage(c, 0, H100)
    assert p.work_items == 133
    assert p.wave_ms == pytest.approx(p.compute_ms * (2 * 132 / 133 - 1))
    # 264 tiles fill exactly two waves: no tail
    assert predict_stage(c.with_(H=264), 0, H100).wave_ms == pytest.approx(0.0, abs=1e-12)


def test_persistent_heavy_first_shrinks_the_tail():
    for B in (1, 8, 32):
        c = SEED.with_(B=B)
        assert predict_stage(c, 3, H100).wave_ms < predict_stage(c, 0, H100).wave_ms


def test_launch_is_exposed_only_for_short_kernels():
    tiny = AttentionConfig(B=1, H=1, S=128, D=64)
    p = predict_stage(tiny, 0, H100)
    assert p.launch_ms > 0 and p.time_ms == pytest.approx(H100.launch_us * 1e-3)
    assert predict_stage(SEED, 0, H100).launch_ms == 0.0


def test_stage5_chooses_its_block():
    p = predict_stage(SEED, 5, H100)
    assert p.block_m in bound.STAGE5_BLOCK_M
    assert p.time_ms <= predict_stage(SEED, 5, H100, block_m=128).time_ms


CONFIGS = get_suite("fa3-grid") + get_suite("batching") + get_suite("tiny") + [SEED.with_(dtype="bf16"),
                                                                                SEED.with_(dtype="fp32")]


@pytest.mark.parametrize("gpu", list(GPUS))
def test_bound_caps_every_stage_and_terms_are_sane(gpu):
    spec = get_gpu(gpu)
    for c in CONFIGS:
        preds = predict_all(c, spec)
        for p in preds:
            assert p.tflops <= p.roofline_tflops * (1 + 1e-9), (c.id, p.stage)
            assert min(p.tensor_ms, p.exp_ms, p.hbm_ms) > 0
            assert min(p.wave_ms, p.launch_ms) >= 0
            assert p.time_ms == pytest.approx(p.compute_ms + p.wave_ms + p.launch_ms)
            assert p.compute_ms >= max(p.tensor_ms, p.exp_ms, p.hbm_ms) * (1 - 1e-12)
        t = [p.tflops for p in preds]
        # each technique can only add overlap or remove tail in this model: never slower than the stage before
        assert all(b >= a * (1 - 1e-9) for a, b in zip(t, t[1:])), c.id


def test_monotone_in_the_ceilings():
    base = predict_stage(SEED, 4, H100).tflops
    assert predict_stage(SEED, 4, H100.with_measured({"fp16_mma_tflops": 700})).tflops < base
    assert predict_stage(SEED, 0, H100.with_measured({"exp2_tops": 8.0})).tflops > predict_stage(SEED, 0, H100).tflops
    # more batch, fewer idle SMs: per-sequence time falls from B=1 to B=32
    per_seq = [predict_stage(SEED.with_(B=b), 0, H100).time_ms / b for b in (1, 8, 32)]
    assert per_seq[0] > per_seq[1] > per_seq[2]


def test_bad_arguments():
    with pytest.raises(ConfigError):
        predict_stage(SEED, 6, H100)
    with pytest.raises(ConfigError):
        predict_stage(SEED, 0, H100, block_m=0)
    with pytest.raises(HardwareError):
        predict_stage(SEED.with_(dtype="fp8"), 0, get_gpu("a100-sxm-80gb"))


def test_predictions_frame():
    frame = predict(SEED, H100)
    assert list(frame.columns) == COLUMNS
    assert list(frame["stage"]) == [0, 1, 2, 3, 4, 5]
    assert list(frame["removes"]) == ["", "", "3", "2", "4", "1,2,3,4"]
    assert frame["einstein_rel_low_tflops"].isna().all()
    assert math.isnan(frame.loc[1, "einstein_abs_low_tflops"])
    assert frame.loc[5, "einstein_abs_high_tflops"] == 260.0
    assert (frame["roofline_tflops"] >= frame["bound_tflops"]).all()
    with_base = predict(SEED, H100, baseline_tflops=320.0)
    assert with_base.loc[0, "einstein_rel_low_tflops"] == 320.0
    assert with_base.loc[2, "einstein_rel_high_tflops"] == pytest.approx(320.0 * 1.03)
