"""GPU ceilings: the datasheet figures every layer reads, and measured figures that replace them.

The only place hardware limits live. One frozen `GpuSpec` per GPU, in one table (`GPUS`): SM count, clocks,
tensor-core, exponential and fp32 rates, HBM bandwidth and size, L2, shared memory, registers and threads per SM,
host launch cost. It sits on the ground floor beside kernels/workload.py and imports neither torch nor triton, so the
launchers (kernels/_launch.py, kernels/_gluon.py), the census (collectors/census.py), the timing code and the bound
(perfmodel/bound.py) all read the same figures. Every figure cites its source beside it. Sources:

- [H100-WP]  NVIDIA H100 Tensor Core GPU Architecture whitepaper (WP-10792-001), Table 3 "Comparison of NVIDIA
             A100 and H100 Data Center GPUs" (SXM5 and PCIe columns: SMs, TFLOP/s, L2, shared memory, registers).
- [H100-DS]  NVIDIA H100 Tensor Core GPU datasheet (SXM and PCIe columns: TFLOP/s "with sparsity", HBM bandwidth).
- [H200-DS]  NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column).
- [A100-WP]  NVIDIA A100 Tensor Core GPU Architecture whitepaper (V1.0), Table 1 and the SM section.
- [A100-DS]  NVIDIA A100 80GB datasheet (A100 80GB SXM column: 2,039 GB/s).
- [CUDA-PG]  CUDA C++ Programming Guide, "Arithmetic Instructions" throughput table: 16 results per clock per SM
             for 32-bit reciprocal / rsqrt / log2 / exp2 / sin / cos (the MUFU, or SFU) on compute capability
             8.0 and 9.0.
- [CUDA-CC]  CUDA C++ Programming Guide, "Technical Specifications per Compute Capability" (9.0: 64K 32-bit
             registers, 228 KB shared memory and 2048 resident threads per SM, 227 KB per block, 1 KB reserved
             by the driver per resident block).
- [SM-ISSUE] [H100-WP] and [A100-WP], the SM diagrams: four processing blocks (partitions) per SM, each with one
             warp scheduler dispatching one warp instruction per clock, 32 FP32 lanes, 16 INT32 lanes, one tensor
             core and 4 SFUs (so 128 FP32 and 16 SFU results per clock per SM); `schedulers_per_sm` = 4.
- [CUDA-SMEM] CUDA C++ Programming Guide, "Shared Memory" (compute capability 5.x and later, which 8.0 and 9.0
             follow): 32 banks, each 32 bits wide and delivering 32 bits per clock, i.e. 128 bytes per clock per SM;
             `smem_bytes_per_clk` = 128. (No latency figure of an mbarrier round trip or of a wgmma is in these
             sources; the predictive model leaves those terms out rather than guess them.)
- [ANCHORS]  ../shared/ANCHORS.md, figures measured on the lent H100 SXM (2026-11-24).
- [RUNS]     torch.cuda.get_device_properties on the lent GPUs, recorded in every GPU run's run.json
             (`environment.l2_bytes`): 52,428,800 bytes (50 MiB) on the H100 SXM, 62,914,560 (60 MiB) on the H200;
             `environment.gpu_memory_gb` (total_memory / 1e9): 85.02 on the H100 SXM, 150.11 on the H200.

Conventions. Tensor TFLOP/s are DENSE: the datasheets print "with sparsity" figures, which are exactly twice the
dense ones; we halve them. Two clocks hide in NVIDIA's figures: the tensor TFLOP/s are computed at a lower clock
than the fp32 ones (H100 SXM: 989.4e12 / (132 SMs x 4096 dense fp16 FLOP/clk/SM) = 1830 MHz, while
66.9e12 / (132 x 128 lanes x 2) = 1980 MHz, the maximum boost clock). `boost_clock_mhz` is that maximum boost
clock; `exp_tops` = 16 MUFU results/clk/SM [CUDA-PG] x SMs x boost clock. On the H100 SXM that gives 4.18 T/s,
which the 4.16 T exp2/s measured on the lent H100 [ANCHORS] confirms; at the tensor clock (1830 MHz) it would be
the 3.9 T/s often quoted.

Measured ceilings (the run store's `ceilings` table, collectors/schema.py) replace datasheet figures through
`GpuSpec.with_measured`; the spec then records which fields are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from kernels.workload import ConfigError

class HardwareError(ConfigError):
    """A GPU or a rate the table does not have; the message is one sentence (the CLI exits 2 on it)."""


# run-store ceiling name (collectors/schema.py, table `ceilings`) -> GpuSpec field it replaces
CEILING_FIELDS: dict[str, str] = {
    "fp16_mma_tflops": "fp16_tflops",
    "bf16_mma_tflops": "bf16_tflops",
    "hbm_tbps": "hbm_tbps",
    "exp2_tops": "exp_tops",
    "launch_us": "launch_us",
}

# Host cost of one Triton launch: 10.5 to 11.7 us measured for a Triton JIT launch on the lent H100 SXM host
# [ANCHORS]; we use the midpoint. It is a property of the host and of Triton's Python launch path, not of the GPU,
# and it is the only measurement we have, so every entry uses it. Replace it with a measured `launch_us` ceiling.
_TRITON_LAUNCH_US = 11.1


@dataclass(frozen=True)
class GpuSpec:
    """Ceilings of one GPU. Units are in the names; `measured` names the fields that came from a measurement."""

    key: str
    name: str
    sm_count: int
    boost_clock_mhz: float
    fp16_tflops: float  # dense tensor-core fp16 (fp32 accumulate)
    bf16_tflops: float  # dense tensor-core bf16
    fp8_tflops: float | None  # dense tensor-core fp8; None where the GPU has no fp8 tensor cores
    tf32_tflops: float  # dense tensor-core tf32 (what Triton's tl.dot uses for fp32 inputs by default)
    fp32_tflops: float  # non-tensor fp32 FMA
    exp_tops: float  # SFU exponentials (ex2.approx) per second / 1e12
    hbm_tbps: float  # DRAM bandwidth, TB/s (1e12 bytes/s)
    l2_mb: float  # MiB (2**20 bytes), as torch's L2_cache_size reports it
    memory_gib: float  # device memory programs can allocate, GiB (2**30 bytes), as torch's total_memory reports it
    smem_per_sm_kb: float  # largest shared-memory carve-out per SM (KiB)
    smem_per_program_kb: float  # largest shared memory one program (CTA) may use (KiB)
    smem_reserved_per_program_kb: float  # what the driver reserves per resident program (KiB)
    regs_per_sm: int  # 32-bit registers per SM
    threads_per_sm: int  # resident threads per SM
    launch_us: float  # host cost of one kernel launch (us)
    schedulers_per_sm: int = 4  # warp schedulers per SM, one warp instruction a clock each [SM-ISSUE] (H100, A100)
    smem_bytes_per_clk: int = 128  # shared memory per SM: 32 banks x 4 bytes a clock [CUDA-SMEM] (cc 8.0, 9.0)
    measured: frozenset[str] = field(default_factory=frozenset)
    # Micro-benchmarks a run measured (collectors/microbench.py: latencies and per-shape rates no datasheet
    # gives), sorted (name, value) pairs; empty for the datasheet. `micro_source` says which run they came from.
    micro: tuple = ()
    micro_source: str = ""

    def micro_value(self, name: str) -> float | None:
        """A measured micro-benchmark figure by its run-store name, or None."""
        return dict(self.micro).get(name)

    def mma_tflops(self, dtype: str) -> float:
        """Dense tensor-core TFLOP/s for inputs of `dtype` (fp16, bf16, fp8, fp32 -> tf32)."""
        rates = {"fp16": self.fp16_tflops, "bf16": self.bf16_tflops, "fp8": self.fp8_tflops, "fp32": self.tf32_tflops}
        if dtype not in rates:
            raise HardwareError(f"no tensor-core rate for dtype {dtype!r}; known: {', '.join(rates)}.")
        rate = rates[dtype]
        if rate is None:
            raise HardwareError(f"{self.name} has no {dtype} tensor cores.")
        return rate

    @property
    def l2_bytes(self) -> int:
        return int(self.l2_mb * 2**20)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    @property
    def ridge_flop_per_byte(self) -> float:
        """Arithmetic intensity at which dense fp16 tensor time equals HBM time (the roofline's ridge point)."""
        return self.fp16_tflops / self.hbm_tbps

    def with_micro(self, micro: dict[str, float], source: str) -> "GpuSpec":
        """A copy carrying measured micro-benchmarks (names as collectors/microbench.py writes them; positive
        finite values only, others dropped) and the sentence saying where they came from."""
        good = {k: float(v) for k, v in micro.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0}
        return replace(self, micro=tuple(sorted(good.items())), micro_source=source if good else "")

    def with_measured(self, ceilings: dict[str, float]) -> "GpuSpec":
        """A copy with measured ceilings (run-store names, see `CEILING_FIELDS`) in place of datasheet figures.

        A value that is None or NaN was not measured and leaves the datasheet figure in place.
        """
        changes: dict[str, float] = {}
        for name, value in ceilings.items():
            if name not in CEILING_FIELDS:
                raise HardwareError(f"unknown ceiling {name!r}; known ceilings: {', '.join(CEILING_FIELDS)}.")
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise HardwareError(f"measured ceiling {name} must be a positive number, got {value!r}.")
            changes[CEILING_FIELDS[name]] = float(value)
        if not changes:
            return self
        return replace(self, **changes, measured=self.measured | frozenset(changes))

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["measured"] = sorted(self.measured)
        out["micro"] = dict(self.micro)
        return out


GPUS: dict[str, GpuSpec] = {
    "h100-sxm": GpuSpec(
        key="h100-sxm",
        name="NVIDIA H100 SXM5 80GB",
        sm_count=132,  # [H100-WP] Table 3, H100 SXM5
        boost_clock_mhz=1980.0,  # max boost: 66.9 fp32 TFLOP/s [H100-WP] / (132 SMs x 128 lanes x 2 FLOP)
        fp16_tflops=989.4,  # [H100-WP] Table 3 (1978.9 with sparsity); [H100-DS] 1,979 with sparsity
        bf16_tflops=989.4,  # [H100-WP] Table 3; [H100-DS] 1,979 with sparsity
        fp8_tflops=1978.9,  # [H100-WP] Table 3; [H100-DS] 3,958 with sparsity
        tf32_tflops=494.7,  # [H100-WP] Table 3; [H100-DS] 989 with sparsity
        fp32_tflops=66.9,  # [H100-WP] Table 3; [H100-DS] 67
        exp_tops=16 * 132 * 1980e6 / 1e12,  # 4.18: [CUDA-PG] 16/clk/SM x 132 x 1980 MHz; 4.16 measured [ANCHORS]
        hbm_tbps=3.35,  # [H100-DS] 3.35 TB/s HBM3
        l2_mb=50.0,  # [H100-WP] Table 3; [RUNS] 52,428,800 bytes on the lent H100
        memory_gib=85.02e9 / 2**30,  # 79.2: [RUNS] 85.02 GB on the lent H100, of its 80 GB (GiB) HBM3 [H100-DS]
        smem_per_sm_kb=228.0,  # [H100-WP] "configurable up to 228 KB" of the 256 KB L1/shared per SM
        smem_per_program_kb=227.0,  # [CUDA-CC] 9.0: 227 KB per block
        smem_reserved_per_program_kb=1.0,  # [CUDA-CC] 1 KB reserved per resident block
        regs_per_sm=65536,  # [H100-WP] Table 3: register file 256 KB per SM = 65,536 x 32-bit
        threads_per_sm=2048,  # [CUDA-CC] 9.0 and 8.0: 2048 resident threads per SM
        launch_us=_TRITON_LAUNCH_US,  # [ANCHORS] 10.5-11.7 us Triton launch, midpoint
    ),
    "h100-pcie": GpuSpec(
        key="h100-pcie",
        name="NVIDIA H100 PCIe 80GB",
        sm_count=114,  # [H100-WP] Table 3, H100 PCIe
        boost_clock_mhz=1755.0,  # max boost: 51.2 fp32 TFLOP/s [H100-WP] / (114 SMs x 128 lanes x 2 FLOP)
        fp16_tflops=756.0,  # [H100-WP] Table 3 (1513 with sparsity); [H100-DS] 1,513 with sparsity
        bf16_tflops=756.0,  # [H100-WP] Table 3; [H100-DS] 1,513 with sparsity
        fp8_tflops=1513.0,  # [H100-WP] Table 3; [H100-DS] 3,026 with sparsity
        tf32_tflops=378.0,  # [H100-WP] Table 3; [H100-DS] 756 with sparsity
        fp32_tflops=51.2,  # [H100-WP] Table 3; [H100-DS] 51
        exp_tops=16 * 114 * 1755e6 / 1e12,  # 3.20: [CUDA-PG] 16/clk/SM x 114 x 1755 MHz
        hbm_tbps=2.0,  # [H100-DS] 2 TB/s HBM2e (PCIe column)
        l2_mb=50.0,  # [H100-WP] Table 3
        memory_gib=80.0,  # [H100-DS] 80 GB (GiB; programs see a little less, 79.2 on the lent H100 SXM [RUNS])
        smem_per_sm_kb=228.0,  # [H100-WP] "configurable up to 228 KB"
        smem_per_program_kb=227.0,  # [CUDA-CC] 9.0: 227 KB per block
        smem_reserved_per_program_kb=1.0,  # [CUDA-CC] 1 KB reserved per resident block
        regs_per_sm=65536,  # [H100-WP] Table 3: 256 KB per SM
        threads_per_sm=2048,  # [CUDA-CC] 9.0 and 8.0: 2048 resident threads per SM
        launch_us=_TRITON_LAUNCH_US,  # [ANCHORS] measured on the H100 SXM host (host-side cost, see above)
    ),
    "h200-sxm": GpuSpec(
        key="h200-sxm",
        name="NVIDIA H200 SXM 141GB",
        sm_count=132,  # the H200 is the GH100 of the H100 SXM5 with HBM3e [H200-DS]; 132 SMs as [H100-WP]
        boost_clock_mhz=1980.0,  # same chip and fp32 rate as the H100 SXM5 (67 TFLOP/s [H200-DS])
        fp16_tflops=989.4,  # [H200-DS] 1,979 with sparsity
        bf16_tflops=989.4,  # [H200-DS] 1,979 with sparsity
        fp8_tflops=1978.9,  # [H200-DS] 3,958 with sparsity
        tf32_tflops=494.7,  # [H200-DS] 989 with sparsity
        fp32_tflops=66.9,  # [H200-DS] 67
        exp_tops=16 * 132 * 1980e6 / 1e12,  # 4.18: [CUDA-PG] 16/clk/SM x 132 x 1980 MHz
        hbm_tbps=4.8,  # [H200-DS] 4.8 TB/s HBM3e
        l2_mb=60.0,  # [RUNS] 62,914,560 bytes on the lent H200 (the H200 datasheet gives no L2 size)
        memory_gib=150.11e9 / 2**30,  # 139.8: [RUNS] 150.11 GB on the lent H200, of its 141 GB HBM3e [H200-DS]
        smem_per_sm_kb=228.0,  # [H100-WP] (same SM)
        smem_per_program_kb=227.0,  # [CUDA-CC] 9.0: 227 KB per block
        smem_reserved_per_program_kb=1.0,  # [CUDA-CC] 1 KB reserved per resident block
        regs_per_sm=65536,  # [H100-WP] (same SM)
        threads_per_sm=2048,  # [CUDA-CC] 9.0 and 8.0: 2048 resident threads per SM
        launch_us=_TRITON_LAUNCH_US,  # [ANCHORS] measured on the H100 SXM host (host-side cost, see above)
    ),
    "a100-sxm-80gb": GpuSpec(
        key="a100-sxm-80gb",
        name="NVIDIA A100 SXM4 80GB",
        sm_count=108,  # [A100-WP] Table 1
        boost_clock_mhz=1410.0,  # [A100-WP] Table 1, GPU boost clock
        fp16_tflops=312.0,  # [A100-WP] Table 1 (624 with sparsity)
        bf16_tflops=312.0,  # [A100-WP] Table 1 (624 with sparsity)
        fp8_tflops=None,  # Ampere has no fp8 tensor cores [A100-WP]
        tf32_tflops=156.0,  # [A100-WP] Table 1 (312 with sparsity)
        fp32_tflops=19.5,  # [A100-WP] Table 1
        exp_tops=16 * 108 * 1410e6 / 1e12,  # 2.44: [CUDA-PG] 16/clk/SM (cc 8.0) x 108 x 1410 MHz
        hbm_tbps=2.039,  # [A100-DS] 2,039 GB/s (80GB SXM)
        l2_mb=40.0,  # [A100-WP] Table 1
        memory_gib=80.0,  # [A100-DS] 80 GB (GiB; programs see a little less, as on the H100 SXM [RUNS])
        smem_per_sm_kb=164.0,  # [A100-WP] "configurable up to 164 KB" of the 192 KB L1/shared per SM
        smem_per_program_kb=163.0,  # [CUDA-CC] 8.0: 163 KB per block
        smem_reserved_per_program_kb=1.0,  # [CUDA-CC] 1 KB reserved per resident block
        regs_per_sm=65536,  # [A100-WP] Table 1: register file 256 KB per SM
        threads_per_sm=2048,  # [CUDA-CC] 9.0 and 8.0: 2048 resident threads per SM
        launch_us=_TRITON_LAUNCH_US,  # [ANCHORS] measured on the H100 SXM host (host-side cost, see above)
    ),
}

DEFAULT_GPU = "h100-sxm"


def _resolve_device_name(text: str) -> str | None:
    """Map a torch device name (torch.cuda.get_device_name) to a table key, or None."""
    t = text.lower().replace("_", " ").replace("-", " ")
    if "gh200" in t or "nvl" in t:
        return None  # Grace Hopper and NVL parts have other clocks and memory: not in the table
    if "h200" in t:
        return "h200-sxm"
    if "h100" in t:
        if "pcie" in t:
            return "h100-pcie"
        if "hbm3" in t or "sxm" in t or t.strip() in ("nvidia h100", "h100"):
            return "h100-sxm"  # torch names the SXM5 part "NVIDIA H100 80GB HBM3"
        return None
    if "a100" in t and "sxm" in t and "80" in t:
        return "a100-sxm-80gb"  # torch: "NVIDIA A100-SXM4-80GB"
    return None


def get_gpu(key_or_device_name: str) -> GpuSpec:
    """The spec for a table key ("h100-sxm") or a torch device name ("NVIDIA H100 80GB HBM3")."""
    text = str(key_or_device_name or "").strip()
    if text.lower() in GPUS:
        return GPUS[text.lower()]
    key = _resolve_device_name(text)
    if key is None:
        raise HardwareError(f"unknown GPU {text!r}; known GPUs: {', '.join(GPUS)}.")
    return GPUS[key]
