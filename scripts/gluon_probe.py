"""Device smoke check of the Gluon stages: correctness over a shape grid, then timing against cuDNN.

    python3 scripts/gluon_probe.py [--stages 1,2,3,4,5] [--variants 'pingpong=False;overlap=False'] [--time]

Each (stage, variant) runs in its own child process with a time limit (a kernel that deadlocks on an mbarrier
hangs its process, not the probe). Correctness is the toolkit's own rule (kernels/reference.py: the float64
reference and PyTorch's low-precision error budget). Timing: triton.testing.do_bench medians, cuDNN (SDPA's
CUDNN_ATTENTION backend) timed in the same process. This is a development probe; the figures that count come
from `perfmodel collect` / `perfmodel bench` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (B, H, S, D, causal, dtype, layout): odd S, both dtypes, causal, transposed views, B*H not a multiple of 132
SHAPES = [
    (2, 3, 1531, 64, True, "fp16", "bhsd"),
    (2, 3, 1531, 64, False, "fp16", "bhsd"),
    (1, 2, 257, 128, False, "bf16", "bhsd"),
    (1, 2, 257, 128, True, "bf16", "bhsd"),
    (2, 4, 777, 64, True, "bf16", "bshd"),
    (1, 133, 200, 128, True, "fp16", "bshd"),
    (1, 1, 1, 64, True, "fp16", "bhsd"),
    (3, 2, 65, 128, False, "fp16", "bhsd"),
    (4, 16, 2048, 128, True, "fp16", "bhsd"),
    (2, 16, 1024, 64, False, "bf16", "bhsd"),
]
TIMED = [(16, 16, 2048, 64, True), (16, 16, 1024, 64, False), (4, 16, 4096, 128, True), (8, 16, 2048, 128, False),
         (2, 16, 8192, 128, True), (1, 16, 16384, 64, True)]


def _parse_variant(text: str) -> dict:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, val = part.partition("=")
        out[key] = {"True": True, "False": False}.get(val, int(val) if val.lstrip("-").isdigit() else val)
    return out


def child(stage: int, variant: str, do_time: bool, fp8: bool = False) -> dict:
    import torch
    import triton

    import kernels
    from kernels.reference import compare, make_inputs

    info = kernels.get_stage(stage)
    mod = info.module()
    if variant:
        mod.PINNED_CONFIG = dataclasses.replace(mod.Config(), **_parse_variant(variant))
    dt = {"fp16": torch.float16, "bf16": torch.bfloat16}
    if fp8:  # every shape in e4m3 (stage 5 only); timing against cuDNN on the same values in fp16
        dt = {"fp16": torch.float8_e4m3fn, "bf16": torch.float8_e4m3fn}
    res = {"stage": info.name, "variant": variant, "checks": [], "times": []}
    for B, H, S, D, causal, dtype, layout in SHAPES:
        q, k, v = make_inputs(B, H, S, D, dt[dtype], device="cuda", seed=1, layout=layout)
        try:
            out = info.launcher(q, k, v, causal=causal)
            torch.cuda.synchronize()
            rep = compare(out, q, k, v, causal=causal)
            res["checks"].append([B, H, S, D, causal, dtype, layout, rep.within_budget, rep.max_abs_err,
                                  rep.budget_abs_err])
        except Exception as exc:  # noqa: BLE001 - a probe reports every failure
            res["checks"].append([B, H, S, D, causal, dtype, layout, False, f"{type(exc).__name__}: {exc}"[:300]])
    if do_time:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        for B, H, S, D, causal in TIMED:
            q, k, v = make_inputs(B, H, S, D, dt["fp16"], device="cuda", seed=2)
            flops = 4 * B * H * S * S * D / (2 if causal else 1)
            try:
                ms = triton.testing.do_bench(lambda: info.launcher(q, k, v, causal=causal), warmup=25, rep=200)
            except Exception as exc:  # noqa: BLE001 - e.g. a pinned variant too large for this head dim
                res["times"].append([B, H, S, D, causal, None, None, None, f"{type(exc).__name__}: {exc}"[:200]])
                continue
            q16, k16, v16 = (t.to(torch.float16) for t in (q, k, v))
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                ms_c = triton.testing.do_bench(
                    lambda: torch.nn.functional.scaled_dot_product_attention(q16, k16, v16, is_causal=causal),
                    warmup=25, rep=200)
            chosen = getattr(mod, "last_tuned_config", lambda: "")()
            res["times"].append([B, H, S, D, causal, round(flops / ms * 1e-9, 1), round(flops / ms_c * 1e-9, 1),
                                 round(ms_c / ms, 3), chosen])
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="1,2,3,4,5")
    ap.add_argument("--variants", default="", help="stage-5 variants, ';'-separated, each 'field=value,...'")
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--limit", type=int, default=120, help="seconds per (stage, variant)")
    ap.add_argument("--fp8", action="store_true", help="stage-5 variants also in fp8 (e4m3; cuDNN timed in fp16)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(int(args.child[0]), args.child[1], args.child[2] == "1",
                                           args.child[3] == "1")))
        return 0
    jobs = [(int(s), "", False) for s in args.stages.split(",") if s]
    jobs += [(5, v, False) for v in args.variants.split(";") if v]
    if args.fp8:
        jobs += [(5, v, True) for v in args.variants.split(";") if v]
    for stage, variant, fp8 in jobs:
        t0 = time.time()
        label = f"{variant}{' fp8' if fp8 else ''}"
        try:
            p = subprocess.run([sys.executable, __file__, "--child", str(stage), variant, "1" if args.time else "0",
                                "1" if fp8 else "0"],
                               capture_output=True, text=True, timeout=args.limit)
            lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                print(f"stage {stage} [{label}] rc={p.returncode}: {p.stderr[-1500:]}")
                continue
            res = json.loads(lines[-1][7:])
        except subprocess.TimeoutExpired:
            print(f"stage {stage} [{label}] TIMEOUT after {args.limit} s (deadlock?)")
            continue
        ok = sum(1 for c in res["checks"] if c[7] is True)
        print(f"stage {stage} [{label}] {ok}/{len(res['checks'])} correct, {time.time() - t0:.0f} s")
        for c in res["checks"]:
            if c[7] is not True:
                print("   FAIL", c)
        for t in res["times"]:
            print("   time B%d H%d S%d D%d causal=%s: %s TFLOP/s vs cuDNN %s (x%s) %s" % tuple(t))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
