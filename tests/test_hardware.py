"""The hardware table: lookup, internal consistency of the datasheet figures, measured overrides."""

import math

import pytest

from perfmodel.errors import UserError
from perfmodel.hardware import CEILING_FIELDS, GPUS, get_gpu


@pytest.mark.parametrize(
    "name, key",
    [
        ("h100-sxm", "h100-sxm"),
        ("H100-SXM", "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),  # what torch.cuda.get_device_name says on the SXM5 part
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200-sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm-80gb"),
        ("a100-sxm-80gb", "a100-sxm-80gb"),
    ],
)
def test_get_gpu(name, key):
    assert get_gpu(name).key == key


@pytest.mark.parametrize("name", ["NVIDIA A100-PCIE-40GB", "NVIDIA GH200 480GB", "NVIDIA H100 NVL", "tpu-v5", ""])
def test_unknown_gpu_lists_known_ones(name):
    with pytest.raises(UserError) as e:
        get_gpu(name)
    assert all(k in str(e.value) for k in GPUS)


@pytest.mark.parametrize("spec", GPUS.values(), ids=list(GPUS))
def test_figures_are_consistent(spec):
    # fp32 non-tensor rate = SMs x FP32 lanes x 2 FLOP x boost clock (128 lanes on Hopper, 64 on A100)
    lanes = 64 if spec.key.startswith("a100") else 128
    assert spec.fp32_tflops == pytest.approx(spec.sm_count * lanes * 2 * spec.boost_clock_mhz * 1e6 / 1e12, rel=0.01)
    # dense fp16 tensor rate implies a clock no higher than the boost clock (4096 FLOP/clk/SM Hopper, 2048 A100)
    per_clk = 2048 if spec.key.startswith("a100") else 4096
    assert spec.fp16_tflops * 1e12 / (spec.sm_count * per_clk) <= spec.boost_clock_mhz * 1e6 * 1.001
    # the SFU: 16 exponentials per clock per SM
    assert spec.exp_tops == pytest.approx(16 * spec.sm_count * spec.boost_clock_mhz * 1e6 / 1e12)
    assert spec.bf16_tflops == spec.fp16_tflops
    assert spec.tf32_tflops == pytest.approx(spec.fp16_tflops / 2, rel=0.01)
    assert spec.regs_per_sm == 65536 and spec.measured == frozenset()
    for value in (spec.hbm_tbps, spec.l2_mb, spec.smem_per_sm_kb, spec.launch_us):
        assert value > 0


def test_h100_exp_rate_matches_the_measurement():
    # ANCHORS: 4.16 T exp2/s measured on the lent H100 SXM
    assert get_gpu("h100-sxm").exp_tops == pytest.approx(4.16, rel=0.01)
    # ANCHORS: at head dim 64 exp time ~ matmul time; ridge point ~295 FLOP/B
    assert get_gpu("h100-sxm").ridge_flop_per_byte == pytest.approx(295, abs=1)


def test_mma_rates():
    h100, a100 = get_gpu("h100-sxm"), get_gpu("a100-sxm-80gb")
    assert h100.mma_tflops("fp16") == 989.4
    assert h100.mma_tflops("fp8") == pytest.approx(2 * h100.mma_tflops("fp16"), rel=1e-3)
    assert h100.mma_tflops("fp32") == h100.tf32_tflops
    with pytest.raises(UserError):
        a100.mma_tflops("fp8")
    with pytest.raises(UserError):
        h100.mma_tflops("int8")


def test_with_measured_overrides_and_records():
    h100 = get_gpu("h100-sxm")
    m = h100.with_measured({"fp16_mma_tflops": 700.0, "exp2_tops": 4.16, "hbm_tbps": 3.0, "launch_us": 11.0,
                            "bf16_mma_tflops": float("nan")})
    assert (m.fp16_tflops, m.exp_tops, m.hbm_tbps, m.launch_us) == (700.0, 4.16, 3.0, 11.0)
    assert m.bf16_tflops == h100.bf16_tflops  # NaN = not measured: datasheet kept
    assert m.measured == {"fp16_tflops", "exp_tops", "hbm_tbps", "launch_us"}
    assert h100.fp16_tflops == 989.4  # the table entry is untouched
    assert h100.with_measured({}) is h100
    assert set(CEILING_FIELDS) == {"fp16_mma_tflops", "bf16_mma_tflops", "hbm_tbps", "exp2_tops", "launch_us"}


@pytest.mark.parametrize("ceilings", [{"tensor_pflops": 1.0}, {"hbm_tbps": -1.0}, {"hbm_tbps": "fast"},
                                      {"hbm_tbps": math.inf}])
def test_with_measured_rejects_bad_ceilings(ceilings):
    with pytest.raises(UserError):
        get_gpu("h100-sxm").with_measured(ceilings)
