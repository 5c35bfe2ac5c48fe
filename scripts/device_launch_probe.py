"""On the lent GPU: each implementation's host launch path (cached and full) and its time by CUDA-graph replay
against the host loop, at one config. A probe for issue 23 before the collector uses them; prints one table.

    python3 scripts/device_launch_probe.py [--config B=16,H=16,S=2048,D=64,causal] [--impls ...]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="B=16,H=16,S=2048,D=64,causal")
    parser.add_argument("--stages", default="all")
    parser.add_argument("--refs", default="sdpa_cudnn,sdpa_flash,flex")
    args = parser.parse_args(argv)

    import torch

    from collectors.timing.bench import make_input_sets, resolve
    from collectors.timing.measure import (GraphUnavailable, host_launch_us, inputs_for_rotation, l2_bytes, time_call,
                                           time_graph)
    from kernels.workload import parse_config

    cfg = parse_config(args.config)
    n_sets = inputs_for_rotation(cfg, l2_bytes())
    sets = make_input_sets(cfg, n_sets)
    print(f"{cfg.id} on {torch.cuda.get_device_name()}, {n_sets} input sets", flush=True)
    print(f"{'impl':18s} {'host_us':>8s} {'full_us':>8s} {'loop_ms':>9s} {'graph_ms':>9s} {'calls':>5s} "
          f"{'graph_ci':>17s} {'loop/graph':>10s}", flush=True)
    for impl in resolve(args.stages, args.refs):
        call = (lambda i: impl.launcher(*sets[i], causal=cfg.causal))
        try:
            call(0)
            torch.cuda.synchronize()
        except Exception as exc:
            print(f"{impl.name:18s} failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
            continue
        try:
            fast = getattr(importlib.import_module(f"kernels.{impl.name}"), "FAST", None)
        except ImportError:  # a peer: no module of its own here
            fast = None
        host = host_launch_us(lambda: call(0))
        full = float("nan")
        if fast is not None:
            size, fast.maxsize = fast.maxsize, 0
            fast.clear()
            full = host_launch_us(lambda: call(0))
            fast.maxsize = size
        loop = time_call(call, n_sets)
        try:
            graph = time_graph(call, n_sets)
            g_text = f"{graph.median_ms:9.4f} {graph.calls_per_sample:5d} {graph.ci_low_ms:8.4f}-{graph.ci_high_ms:8.4f}"
            ratio = loop.median_ms / graph.median_ms
        except GraphUnavailable as exc:
            g_text, ratio = f"not captured: {exc}"[:40], float("nan")
        print(f"{impl.name:18s} {host:8.1f} {full:8.1f} {loop.median_ms:9.4f} {g_text} {ratio:10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
