"""The process Nsight Compute profiles: `python -m collectors.sweep.worker --cases FILE [--report FILE]`.

(With `--check` it is instead the process `perfmodel collect --interpret` checks correctness in: started with
TRITON_INTERPRET=1 in its environment, which Triton reads when a kernel module is imported, it runs every case
on CPU tensors, compares with the float64 reference and writes one JSON line of correctness-table columns per
case: an output that is not a tensor of q's shape and dtype, and a failure of a known cause (a GPU query without
a GPU, a multi-config autotune), are `failed` with one sentence (collectors.sweep.case_rows). The parent keeps
JIT-compiled kernels for the census. `check_here` runs the same check in the parent for a function given to the
Python API that no other process can import.)

For each case of the cases file (written by collectors.ncu.profile.write_cases_file) it builds the inputs, runs the
implementation once outside any NVTX range (compilation, autotuning and torch.compile's tracing happen here, not
in the profile), synchronizes, and then runs it exactly once inside

    nvtx.annotate(message="<impl>:<config_id>", domain="perfmodel")

followed by a synchronize, so that ncu's `--nvtx-include "perfmodel@<impl>:<config_id>/"` selects exactly the
kernels of that one call. A case that fails is written to the report and skipped; the others still run.
A case may name the `tuned_config` the run timed for a tuning stage (stage 5), or an ablation variant's config:
the worker pins that config (`kernels.registry.Impl.pinned`) so the profile is of the kernel that was timed, and
nothing is tuned a second time.
Each line of the report is JSON: {"impl", "config_id", "range", "status": "ok" | "failed" | "unavailable",
"error", "warmup_s", "profiled_s"}: the seconds spent before the range (inputs, compilation) and inside it
(under ncu, the kernel's replay passes), which show where a session's time went.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from contextlib import contextmanager


def _profile_once(prepare, name: str, domain: str, record: dict) -> None:
    """`prepare()` builds a case's call and warms it up (inputs, compilation, tuning) outside any NVTX range; the
    call then runs exactly once inside the range `name`. The seconds of each part go into `record`."""
    import nvtx
    import torch

    t0 = time.monotonic()
    call = prepare()
    torch.cuda.synchronize()
    t1 = time.monotonic()
    with nvtx.annotate(message=name, domain=domain):
        call()
        torch.cuda.synchronize()
    record.update(warmup_s=round(t1 - t0, 3), profiled_s=round(time.monotonic() - t1, 3))


def _attention_call(launcher, cfg, seed: int):
    """The warmed-up call of one attention case, on the first input set the sweep timed (same generator, made on
    the GPU)."""
    from collectors.timing.bench import make_input_sets

    q, k, v = make_input_sets(cfg, 1, device="cuda", seed=seed)[0]
    launcher(q, k, v, cfg.causal)  # warm-up: compile / autotune outside the profiled range
    return lambda: launcher(q, k, v, cfg.causal)


def run_cases(payload: dict, report) -> int:
    import torch

    from collectors.ceilings.ceilings import PROBES
    from collectors.timing.failures import case_error
    from kernels import lookup
    from kernels.workload import AttentionConfig
    from runstore.schema import PROBE_CONFIG_ID

    domain = payload.get("domain", "perfmodel")
    seed = int(payload.get("seed", 0))
    failures = 0
    for case in payload["cases"]:
        impl, name = case["impl"], case["range"]
        probe = impl in PROBES  # a ceiling microbenchmark, profiled like a case (collectors.ceilings.ceilings.PROBES)
        cfg = None if probe else AttentionConfig(**case["config"])
        record = {"impl": impl, "config_id": PROBE_CONFIG_ID if probe else cfg.id, "range": name, "status": "ok",
                  "error": None, "warmup_s": None, "profiled_s": None}
        try:
            if probe:
                _profile_once(PROBES[impl], name, domain, record)
            else:
                entry = lookup.get(impl)
                if reason := entry.unavailable():
                    record.update(status="unavailable", error=reason)
                else:
                    # a tuning stage runs the config the run timed (its `tuned_config`), not a second tuning's pick
                    with entry.pinned(case.get("tuned_config")):
                        _profile_once(lambda: _attention_call(entry.launcher, cfg, seed), name, domain, record)
                    # ncu's kernel replay saves and restores the device memory a kernel may write: keep the pool
                    # small (the inputs went with the call)
                    torch.cuda.empty_cache()
        except Exception as exc:  # one case failing must not stop the session
            failures += 1
            record.update(status="failed", error=case_error(impl, exc))
            traceback.print_exc(file=sys.stderr)
        report.write(json.dumps(record) + "\n")
        report.flush()
    return failures


def check_case(case: dict, seed: int) -> tuple[dict, bool]:
    """(correctness-table columns of one case on the CPU, whether it failed): under the interpreter in the
    `--check` child (TRITON_INTERPRET=1), or in this process for a function only it can run (check_here)."""
    from collectors.timing.bench import CaseResult, check_output, make_input_sets
    from collectors.timing.failures import case_error, output_problem
    from kernels import lookup
    from kernels._launch import NoInterpreter
    from kernels.workload import AttentionConfig

    impl, cfg = case["impl"], AttentionConfig(**case["config"])
    result = CaseResult(impl, cfg, "ok")
    failed = False
    try:
        entry = lookup.get(impl)
        if reason := entry.unavailable() or entry.refusal(cfg):  # a dtype it does not run: not run, its reason
            result.status, result.error = "unavailable", reason
        else:
            q, k, v = make_input_sets(cfg, 1, device="cpu", seed=seed)[0]
            # an ablation variant names the kernel config to run (`tuned_config`), as in the ncu worker
            with entry.pinned(case.get("tuned_config")):
                out = entry.launcher(q, k, v, causal=cfg.causal)
            problem = output_problem(impl, out, q)  # None, a tuple, another shape or dtype: failed, in one sentence
            if problem:
                failed = True
                result.status, result.error = "failed", problem
            else:
                result.correctness = check_output(out, q, k, v, cfg.causal)
            if result.correctness is not None and not result.correctness.within_budget:
                result.status = "wrong"
                result.error = (f"max abs error {result.correctness.max_abs_err:.3g} exceeds the budget "
                                f"{result.correctness.budget_abs_err:.3g}")
    except NoInterpreter as exc:  # a Gluon kernel: nothing can be measured on the CPU, nothing failed
        result.status, result.error = "not_measured", str(exc)
    except Exception as exc:  # one case failing must not stop the others
        failed = True
        result.status, result.error = "failed", case_error(impl, exc)
    row = result.correctness_row()
    row.pop("run_id", None)
    row["range"] = case.get("range")
    return row, failed


def check_cases(payload: dict, report) -> int:
    """Correctness of every case on the CPU (under the interpreter when TRITON_INTERPRET=1 was set)."""
    seed = int(payload.get("seed", 0))
    failures = 0
    for case in payload["cases"]:
        row, failed = check_case(case, seed)
        failures += failed
        report.write(json.dumps(row, default=_json_default) + "\n")
        report.flush()
    return failures


def check_here(case: dict, seed: int) -> dict:
    """The correctness columns of a case whose implementation only this process can run (a function given as an
    object that no other process can import: kernels.importable.callable_spec), checked here instead of in the
    interpreter child: a torch function runs as it would there; a Triton kernel that was built for the GPU (as
    every kernel of a module imported without TRITON_INTERPRET=1 is: Triton reads it when `@triton.jit`
    runs, and this process cannot be re-imported under it) is not measured, with one sentence saying how to
    have the interpreter check it. A kernel built under TRITON_INTERPRET=1 in this process is interpreted here."""
    from kernels import lookup

    entry = lookup.get(case["impl"])
    with _gpu_kernels_refused(entry):
        row, _ = check_case(case, seed)
    # JSON-shaped like the child's line (its figures as plain numbers), so both are stored alike
    return json.loads(json.dumps(row, default=_json_default))


@contextmanager
def _gpu_kernels_refused(entry):
    """Within the block, a Triton kernel built for the GPU raises kernels._launch.NoInterpreter naming `entry`'s
    function and what to do, instead of launching (its launch on CPU tensors would fail without saying why)."""
    jit = sys.modules.get("triton.runtime.jit")  # not imported: no Triton kernel exists in this process
    if jit is None:
        yield
        return
    from kernels import importable
    from kernels._launch import NoInterpreter

    gpu_run = jit.JITFunction.run
    function = entry.launcher.function() if hasattr(entry.launcher, "function") else entry.launcher
    where = importable.qualified_name(function)

    def refuse(self, *args, **kwargs):
        kernel = getattr(getattr(self, "fn", None), "__name__", None) or "a Triton kernel"
        raise NoInterpreter(
            f"{entry.name}: {where} runs in this process only and launches `{kernel}`, which Triton built for the "
            f"GPU when its module was imported (it reads TRITON_INTERPRET then), so the CPU interpreter cannot "
            f"check it here; {importable.importable_fix(function)}, and the interpreter process will import it.")

    jit.JITFunction.run = refuse
    try:
        yield
    finally:
        jit.JITFunction.run = gpu_run


def check_command(cases_file, report) -> tuple[list[str], dict, str]:
    """(argv, environment, working folder) of a `--check` child that runs the cases under Triton's CPU interpreter
    (TRITON_INTERPRET=1 is read when a kernel module is imported, so it must be set before the process starts)."""
    import os
    from pathlib import Path

    env = dict(os.environ)
    env["TRITON_INTERPRET"] = "1"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "collectors.sweep.worker", "--check", "--cases", str(cases_file), "--report",
            str(report)]
    return argv, env, root


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collectors.sweep.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, help="JSON file written by collectors.ncu.profile.write_cases_file")
    parser.add_argument("--report", help="JSON-lines file to append one status line per case to (default stdout)")
    parser.add_argument("--check", action="store_true",
                        help="check correctness on the CPU instead of running the cases for ncu")
    args = parser.parse_args(argv)
    with open(args.cases) as f:
        payload = json.load(f)
    work = check_cases if args.check else run_cases
    if args.report:
        with open(args.report, "a") as report:
            work(payload, report)
    else:
        work(payload, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
