"""The hardware table: lookup, internal consistency of the datasheet figures, measured overrides."""

import math

import pytest

from kernels.hardware import CEILING_FIELDS, GPUS, HardwareError, get_gpu


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
    with pytest.raises(HardwareError) as e:
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


@pytest.mark.parametrize("run, key", [("20261124-173318-custom-nvidia-h100-80gb-hbm3", "h100-sxm"),
                                      ("20261202-053909-seed-nvidia-h200", "h200-sxm")])
def test_the_memory_is_what_the_lent_gpu_reported(run, key):
    """The memory a program can allocate, as torch reported it in the bundled runs (total_memory / 1e9, 2 places)."""
    import json
    from pathlib import Path

    meta = json.loads((Path(__file__).resolve().parents[1] / "perfmodel" / "bundled" / run / "run.json").read_text())
    assert GPUS[key].memory_bytes == pytest.approx(meta["environment"]["gpu_memory_gb"] * 1e9, abs=1)


def test_mma_rates():
    h100, a100 = get_gpu("h100-sxm"), get_gpu("a100-sxm-80gb")
    assert h100.mma_tflops("fp16") == 989.4
    assert h100.mma_tflops("fp8") == pytest.approx(2 * h100.mma_tflops("fp16"), rel=1e-3)
    assert h100.mma_tflops("fp32") == h100.tf32_tflops
    with pytest.raises(HardwareError):
        a100.mma_tflops("fp8")
    with pytest.raises(HardwareError):
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
    with pytest.raises(HardwareError):
        get_gpu("h100-sxm").with_measured(ceilings)


def test_the_table_is_on_the_ground_floor_without_torch_or_triton():
    import subprocess
    import sys

    code = ("import sys, kernels.hardware; "
            "print(sorted(m for m in ('torch', 'triton', 'perfmodel', 'collectors', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_census_and_launch_code_read_the_table():
    # the one table of hardware limits: the census's occupancy limits and the launchers' fallbacks are its figures
    from collectors.census import sm90
    from collectors.timing import measure as timing
    from kernels import _launch

    h100 = GPUS["h100-sxm"]
    assert sm90.H100_SM_COUNT == h100.sm_count == 132
    assert sm90.SM90_REGS_PER_SM == h100.regs_per_sm
    assert sm90.SM90_SHARED_PER_SM == h100.smem_per_sm_kb * 1024
    assert sm90.SM90_THREADS_PER_SM == h100.threads_per_sm
    assert sm90.SM90_SHARED_RESERVED_PER_PROGRAM == h100.smem_reserved_per_program_kb * 1024
    assert _launch.L2_BUDGET_BYTES == h100.l2_bytes * _launch.L2_SHARE
    assert timing.H100_L2_BYTES == h100.l2_bytes == 52428800  # what torch reports on the lent H100 (run.json)
    assert GPUS["h200-sxm"].l2_bytes == 62914560  # ... and on the lent H200


def test_no_second_copy_of_the_hardware_figures():
    # the literals the table owns appear as assignments nowhere else in the code
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*([A-Z0-9_]+)\s*=\s*(132|65536|228 \* 1024|50 \* 1024 \* 1024|25 \* 2\*\*20|1980)\b", re.M)
    # problem sizes per SM of the micro-benchmarks (collectors/ceilings/ceilings.py, collectors/ceilings/microbench.py),
    # not limits
    not_limits = {"EXP2_ELEMENTS_PER_SM", "FMA_THREADS_PER_SM"}
    offenders = [f"{p.relative_to(root)}: {m.group(1)}" for d in ("kernels", "collectors", "perfmodel", "app")
                 for p in (root / d).rglob("*.py") if p.name != "hardware.py"
                 for m in pattern.finditer(p.read_text()) if m.group(1) not in not_limits]
    assert offenders == []
