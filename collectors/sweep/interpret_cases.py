"""The cases of `perfmodel collect --interpret`: correctness on the CPU, in a child process.

The child (`python -m collectors.sweep.worker --check`, collectors/sweep/worker.py) is started with TRITON_INTERPRET=1
in its environment (Triton reads it when a kernel module is imported) and writes one JSON line of correctness columns
per case; this side stores each line as it arrives, with every GPU measurement `not_measured` (timings, launch,
determinism), so an interrupted sweep keeps what the child finished. A function given to the Python API that no
other process can import (kernels.importable.callable_spec) is checked in this process instead, first
(collectors.sweep.worker.check_here says what that can and cannot check).
"""

from __future__ import annotations

import json
import subprocess
import time

from collectors.ncu import profile as ncu_profile
from collectors.sweep.case_rows import now, status_row
from collectors.sweep.options import CollectError
from kernels.workload import AttentionConfig
from runstore.safe_io import child_process_options
from runstore.schema import case_key, columns


def interpret_cases(opts, writer, todo, steps) -> None:
    """Check every (impl, config) of `todo` under the interpreter and store each case as its line arrives."""
    from collectors.sweep.worker import check_command, check_here

    for impl, cfg in [(i, c) for i, c in todo if i.in_process_only]:
        steps.step(f"{impl.name} {cfg.id} (in this process)")
        t_case = time.monotonic()
        case = {"impl": impl.name, "config": cfg.as_dict(), "range": ncu_profile.range_name(impl.name, cfg.id)}
        store_interpreted(writer, impl, cfg, check_here(case, opts.seed), time.monotonic() - t_case)
    todo = [(i, c) for i, c in todo if not i.in_process_only]
    if not todo:
        return
    cases = [{"impl": impl.name, "config": cfg.as_dict(), "range": ncu_profile.range_name(impl.name, cfg.id)}
             for impl, cfg in todo]
    work = writer.path / "interpret"
    cases_file = ncu_profile.write_cases_file(work / "cases.json", cases, opts.seed)
    report = work / "report.jsonl"
    report.write_text("")
    argv, env, root = check_command(cases_file, report)
    by_key = {(impl.name, cfg.id): (impl, cfg) for impl, cfg in todo}
    log = open(work / "worker.log", "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                            **child_process_options())
    seen = 0
    t_case = time.monotonic()
    steps.step(f"{todo[0][0].name} {todo[0][1].id} (interpreter)")
    try:
        while True:
            finished = proc.poll() is not None
            text = report.read_text()
            # a line is complete once its newline is written (the child flushes after each case)
            complete = text.split("\n")[:-1]
            for line in complete[seen:]:
                seen += 1
                row = json.loads(line)
                impl, cfg = by_key[(row["impl"], row["config_id"])]
                store_interpreted(writer, impl, cfg, row, time.monotonic() - t_case)
                t_case = time.monotonic()
                if seen < len(todo):
                    nxt = todo[seen]
                    steps.step(f"{nxt[0].name} {nxt[1].id} (interpreter)")
            if finished:
                break
            time.sleep(0.2)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        log.close()
    if seen < len(todo):
        tail = (work / "worker.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise CollectError(f"the interpreter process stopped after {seen} of {len(todo)} cases "
                                 f"(exit status {proc.returncode}: {tail[0][:200] if tail else 'no output'}).")


def store_interpreted(writer, impl, cfg: AttentionConfig, row: dict, wall_s: float) -> None:
    correctness = {c: row.get(c) for c in columns("correctness") if c != "run_id"}
    correctness.update(case_key(impl.name, cfg))
    status = correctness["status"]
    reason = "--interpret runs on the CPU; there is no GPU to time" if status == "ok" else correctness["error"]
    gpu_status = "not_measured" if status == "ok" else status
    writer.append("correctness", [correctness])
    for table in ("timings", "launch", "determinism"):
        writer.append(table, [status_row(table, impl.name, cfg, gpu_status, reason)])
    writer.append("cases", [{**case_key(impl.name, cfg), "status": status, "error": correctness.get("error") or None,
                             "wall_s": round(wall_s, 3), "finished": now()}])
