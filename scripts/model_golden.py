"""Write the golden predictions of today's model version: tests/data/model_golden/v<MODEL_VERSION>.json.gz.

    python scripts/model_golden.py          # after bumping perfmodel.model.predictive.MODEL_VERSION

The file holds, for a few cases, everything a prediction reads (the instruction mix, the GPU's figures with their
micro-benchmarks, the launch facts) and what the model and the bound predicted from it. tests/test_model_golden.py
predicts again from the stored inputs, so a change to any term of the model or the bound fails that test until
the version is bumped and this script has written the new version's file. It refuses to overwrite an existing
version's file: a version names one model, forever.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The cases: the seed config and a long non-causal D128 one, every stage, on the H200 priced with the bundled run's
# micro-benchmarks (the replay), and the seed on the H100 datasheet alone (the chain without micro-benchmarks).
CASES = (("B=16,H=16,S=2048,D=64,causal", "h200-sxm", True),
         ("B=4,H=16,S=4096,D=128", "h200-sxm", True),
         ("B=16,H=16,S=2048,D=64,causal", "h100-sxm", False))
HOST_LAUNCH_US = (None, 150.0)  # the GPU's launch_us, then a host launch long enough to be exposed at small sizes


def golden_path(version: int) -> Path:
    return ROOT / "tests" / "data" / "model_golden" / f"v{version}.json.gz"


def gpu_record(gpu) -> dict:
    out = dataclasses.asdict(gpu)
    out["measured"] = sorted(gpu.measured)
    out["micro"] = [list(kv) for kv in gpu.micro]
    return out


def prediction_record(p) -> dict:
    keep = ("time_ms", "binding", "iteration_us", "programs_per_sm", "math_groups", "slots", "steady_ms", "tail_ms",
            "prologue_epilogue_ms", "hbm_ms", "launch_ms", "unpriced", "inputs_hash")
    return {k: getattr(p, k) for k in keep}


def main() -> int:
    from kernels.hardware import get_gpu
    from kernels.workload import parse_config
    from perfmodel.model import bound, predictive
    from perfmodel.model.mix_cache import instruction_mix, kernel_to_dict, mix_to_dict
    from perfmodel.model.run_gpu import with_micro

    path = golden_path(predictive.MODEL_VERSION)
    if path.exists():
        print(f"{path.relative_to(ROOT)} exists: version {predictive.MODEL_VERSION} is written; bump "
              "perfmodel.model.predictive.MODEL_VERSION for a changed model.", file=sys.stderr)
        return 2
    cases, kernels = [], {}
    for text, gpu_key, micro in CASES:
        config = parse_config(text)
        gpu = get_gpu(gpu_key)
        gpu = with_micro(gpu, {}, "") if micro else gpu
        for stage, impl in enumerate(bound.STAGE_IMPLS):
            mix = instruction_mix(impl, config, gpu.sm_count)
            kernels[mix.kernel.hash] = kernel_to_dict(mix.kernel)
            for host in HOST_LAUNCH_US:
                p = predictive.price(mix, config, stage, gpu, host)
                b = bound.predict_stage(config, stage, gpu)
                cases.append({"config": text, "stage": stage, "gpu": gpu_record(gpu), "host_launch_us": host,
                              "mix": mix_to_dict(mix), "model": prediction_record(p),
                              "bound_time_ms": b.time_ms})
            print(f"{text} {gpu_key} stage {stage}: {p.time_ms:.4f} ms ({p.binding})")
    doc = {"model_version": predictive.MODEL_VERSION, "cases": cases, "kernels": kernels}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(doc, sort_keys=True).encode(), mtime=0))
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e3:.0f} kB, {len(cases)} predictions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
