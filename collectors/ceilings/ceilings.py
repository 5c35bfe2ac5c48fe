"""This GPU's ceilings, measured in the same run as the kernels (rows of the `ceilings` table).

The models use these instead of datasheet figures when a run has them, because the lent H100 is noisy and
below its datasheet (ANCHORS.md: cuBLAS fp16 644-761 TFLOP/s against 989 dense; copies at 3.0 TB/s against
3.35). Each row says how it was measured:

- `fp16_mma_tflops`, `bf16_mma_tflops`: torch.matmul of two 8192 x 8192 matrices (cuBLAS), 2·8192³ FLOPs per
  call, median of triton.testing.do_bench.
- `hbm_tbps`: a device-to-device copy of 1 GiB (`Tensor.copy_`), counting the bytes read plus the bytes written
  (2 GiB per call) over the do_bench median; 1 GiB is 20x the H100's 50 MB L2, so the copy streams from HBM.
- `exp2_tops`: a Triton kernel in which every element runs a dependent chain of `tl.math.exp2`, over
  SMs x 64Ki elements (132 x 65536 on the H100, as ANCHORS.md measured 4.16 T exp2/s); each thread holds several
  independent chains so the special-function unit, not latency, is the limit. Exponentials per second as Triton
  emits them (ex2.approx plus its range handling), which is what the attention kernels pay.
- `launch_us`: host wall time of launching an empty Triton kernel while the GPU is busy
  (collectors.timing.measure.host_launch_us), the floor every Triton launch pays.

After them, the micro-benchmarks of collectors/ceilings/microbench.py (wgmma latency and rate at the stages' tile
shapes, exp2 and FMA latency, FMA rate, shared memory, bar.sync, an mbarrier round trip, TMA latency and rate from L2),
rows of the same table.

Without a GPU every row is `not_measured` with the reason; nothing is filled in.
"""

from __future__ import annotations

import triton
import triton.language as tl

from collectors.timing.failures import one_line
from collectors.timing.measure import cuda_available, host_launch_us
from kernels.workload import torch_dtype

MATMUL_N = 8192
COPY_BYTES = 1 << 30
EXP2_ELEMENTS_PER_SM = 65536
EXP2_CHAIN = 256  # dependent exp2 per element: long enough that loads and stores are a small share of the time
EXP2_BLOCK = 1024  # elements per program: 4 warps x 32 threads x 8 independent chains per thread
CEILING_NAMES = ("fp16_mma_tflops", "bf16_mma_tflops", "hbm_tbps", "exp2_tops", "launch_us")


@triton.jit
def _exp2_chain(X, Y, N_CHAIN: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs)
    # Unrolled (static_range): the kernel is straight-line code with no branch at all, so its Nsight Compute
    # profile (the `probe_exp2` case of every ncu session) also shows how a branch-free kernel reads in the
    # branch metrics (uniformity 0 = not applicable, ANCHORS.md).
    for _ in tl.static_range(N_CHAIN):
        # exp2(-x) maps [0, inf) into (0, 1]: the chain never overflows and each step needs the previous one.
        x = tl.math.exp2(-x)
    tl.store(Y + offs, x)


@triton.jit
def _empty(X):
    pass


def _row(name: str, value, unit: str, how: str, status: str = "ok", error: str | None = None) -> dict:
    return {"name": name, "value": value, "unit": unit, "how": how, "status": status, "error": error}


HOW = {
    "fp16_mma_tflops": ("TFLOP/s", f"torch.matmul {MATMUL_N}^3 fp16 (cuBLAS), 2*N^3 FLOPs / do_bench median"),
    "bf16_mma_tflops": ("TFLOP/s", f"torch.matmul {MATMUL_N}^3 bf16 (cuBLAS), 2*N^3 FLOPs / do_bench median"),
    "hbm_tbps": ("TB/s", f"Tensor.copy_ of {COPY_BYTES >> 20} MiB device to device, bytes read + written / "
                         "do_bench median"),
    "exp2_tops": ("T exp2/s", f"Triton kernel, {EXP2_CHAIN} dependent tl.math.exp2 per element over "
                              f"SMs x {EXP2_ELEMENTS_PER_SM} elements / do_bench median"),
    "launch_us": ("us", "host wall time of one empty Triton kernel launch with the GPU busy "
                        "(collectors.timing.measure.host_launch_us, median of 50)"),
}


def not_measured(reason: str) -> list[dict]:
    """Every ceiling and micro-benchmark row as not measured, with `reason`."""
    from collectors.ceilings.microbench import names

    rows = [_row(n, None, HOW[n][0], HOW[n][1], "not_measured", reason) for n in CEILING_NAMES]
    return rows + [_row(n, None, unit, how, "not_measured", reason) for n, unit, how in names()]


def _median_ms(fn, warmup_ms: float = 25, rep_ms: float = 200) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))


def matmul_tflops(dtype_name: str) -> float:
    import torch

    dtype = torch_dtype(dtype_name)
    a = torch.randn(MATMUL_N, MATMUL_N, device="cuda", dtype=dtype)
    b = torch.randn(MATMUL_N, MATMUL_N, device="cuda", dtype=dtype)
    ms = _median_ms(lambda: torch.matmul(a, b))
    del a, b
    return 2.0 * MATMUL_N**3 / (ms * 1e-3) / 1e12


def copy_tbps() -> float:
    import torch

    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device="cuda")
    src.fill_(1)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src))
    del src, dst
    return 2.0 * COPY_BYTES / (ms * 1e-3) / 1e12


def _exp2_call():
    """(call, number of exponentials per call): the exp2 microbenchmark over SMs x 64Ki elements, checked once."""
    import torch

    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    n = sms * EXP2_ELEMENTS_PER_SM
    x = torch.rand(n, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    grid = (triton.cdiv(n, EXP2_BLOCK),)

    def call():
        _exp2_chain[grid](x, y, N_CHAIN=EXP2_CHAIN, BLOCK=EXP2_BLOCK)

    call()
    torch.cuda.synchronize()
    if not bool(torch.isfinite(y).all().item()):
        raise RuntimeError("the exp2 chain produced non-finite values")
    return call, n * EXP2_CHAIN


def exp2_tops() -> float:
    call, n_exp = _exp2_call()
    ms = _median_ms(call)
    return n_exp / (ms * 1e-3) / 1e12


# Microbenchmarks the ncu session profiles beside the attention cases (impl name -> builder of a no-argument
# call), under the range "<impl>:probe": their counters show what the ceiling kernels do on this GPU.
PROBES = {"probe_exp2": lambda: _exp2_call()[0]}


def launch_us() -> float:
    import torch

    x = torch.empty(1, device="cuda")
    return host_launch_us(lambda: _empty[(1,)](x))


def measure_ceilings(progress=None) -> list[dict]:
    """Measure every ceiling on the current GPU; a ceiling that fails is `failed` with its one-line reason."""
    if not cuda_available():
        return not_measured("no CUDA GPU is available")
    measures = {
        "fp16_mma_tflops": lambda: matmul_tflops("fp16"),
        "bf16_mma_tflops": lambda: matmul_tflops("bf16"),
        "hbm_tbps": copy_tbps,
        "exp2_tops": exp2_tops,
        "launch_us": launch_us,
    }
    rows = []
    for name in CEILING_NAMES:
        unit, how = HOW[name]
        if progress is not None:
            progress(f"ceiling {name}")
        try:
            rows.append(_row(name, float(measures[name]()), unit, how))
        except Exception as exc:
            rows.append(_row(name, None, unit, how, "failed", one_line(exc)))
    from collectors.ceilings import microbench

    return rows + microbench.measure(_row, lambda fn: _median_ms(fn, warmup_ms=10, rep_ms=100), progress)


def main() -> int:
    """`python -m collectors.ceilings.ceilings`: measure every ceiling and micro-benchmark on this GPU, print them."""
    for r in measure_ceilings(progress=lambda text: print(f"... {text}", flush=True)):
        value = f"{r['value']:.4g}" if r["value"] is not None else r["status"]
        print(f"{r['name']:32s} {value:>10s} {r['unit']:8s} {r['error'] or ''}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
