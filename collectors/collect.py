"""`perfmodel collect`: measure every (implementation, config) of a suite into a run folder.

Per case, in this order (collectors/bench.py does the first two for `perfmodel bench` too):

1. correctness against the float64 reference, with the error budget and the design document's own verdicts
   (allclose rtol 1e-3 atol 2e-3; max error <= 0.06); a wrong or failing case is recorded and not timed;
2. timings over rotated inputs (collectors.timing.time_call), plus a bare `do_bench` of the same call on one
   input set in the same process, whose ratio is the collector's own overhead (`overhead_pct`);
3. host launch cost (collectors.timing.host_launch_us) and its share of the kernel time;
4. determinism: N more calls on the same inputs compared bitwise with the first output;

each case's rows are stored as soon as it is done (collectors.store), ending with its row in the `cases` log,
which is what `--resume` skips. Before the first case, every stage's predicted time (collectors.predictions_phase).
Then, once per run: the census of each (stage, config) (compiled for sm_90 on
the CPU, collectors.census), the batching table derived from the timings, this GPU's ceilings
(collectors.ceilings), and ONE Nsight Compute session over all correct cases (collectors.ncu_phase, the worker
process collectors.worker) parsed into `ncu_metrics` and `stalls`.

`interpret=True` needs no GPU: a child process started with TRITON_INTERPRET=1 (Triton reads it when a kernel
module is imported) checks correctness on the CPU, the census runs as usual, and every GPU measurement is
stored as `not_measured`. Problems the user can fix raise `CollectError` (or the store's / ncu's errors) with
one sentence; a kernel that fails for one config is recorded and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from collectors import ncu_phase, ncu_profile, predictions_phase, preflight
from collectors.safe_io import child_process_options, sigterm_as_interrupt
from collectors.schema import CONFIG_COLUMNS, columns
from collectors.schema import case_key as _key
from collectors.store import RunStoreError, RunWriter, load_run, new_run_dir
from kernels.suites import DEFAULT_DETERMINISM_RUNS, SUITE_DETERMINISM_RUNS, SUITES, get_suite
from kernels.workload import AttentionConfig

# Largest problem run under the CPU interpreter: B·H·S² score elements. The tiny suite's biggest is 1·1·130²;
# the seed config (16·16·2048²) would take hours on a CPU.
INTERPRET_MAX_SCORES = 1 << 20
# what the compiler printed for a launch that failed, and Triton's MLIR reproducer (collectors.preflight.compile_log)
LOGS_DIR = "logs"


class CollectError(Exception):
    """A collect request that cannot run as asked; the message is one sentence."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


@dataclass(frozen=True)
class CollectOptions:
    """What to collect. `out_dir` is the folder new runs go under, or with `resume=True` the run to continue."""

    suite: str | None = None  # None: "tiny" with interpret (small enough for the CPU), else "seed"
    configs: tuple[AttentionConfig, ...] = ()  # when given, these replace the suite's configs
    stages: str | None = None  # comma list of stage names, "all" or "none"; None: all (with resume: the run's)
    refs: str | None = None  # comma list of peer names, "all" or "none"; None: all (with resume: the run's)
    impls: tuple[tuple[str, str], ...] = ()  # the user's own kernels: (name, SPEC) pairs (kernels.registry)
    out_dir: Path = Path("runs")
    ncu: bool = True
    ablation: bool = True  # measure each technique switch of the stages that declare some (collectors.ablation)
    resume: bool = False
    interpret: bool = False
    determinism_runs: int | None = None  # None: the suite's own number (kernels.suites), else the default
    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    seed: int = 0
    ncu_timeout_s: float | None = 3600.0
    command_line: tuple[str, ...] | None = None
    # predict(impls, configs, gpu) -> `predictions` rows, stored before anything is timed (collectors/
    # predictions_phase.py); the perfmodel layer passes perfmodel.scoring.prediction_rows. None: no predictions.
    predict: Callable | None = field(default=None, compare=False, repr=False)
    # progress(done, total, label): called before each step; None prints a progress line with ETA on stderr.
    progress: Callable[[int, int, str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # with resume, what is not given stays None until the run's own options fill it in (_apply_resume_options),
        # so that what is given can be compared with them
        if not self.resume:
            self._fill_defaults()
        if self.suite is not None and self.suite not in SUITES:
            raise CollectError(f"unknown suite {self.suite!r}; known suites: {', '.join(SUITES)}.")
        if self.determinism_runs is not None and (isinstance(self.determinism_runs, bool)
                                                  or not isinstance(self.determinism_runs, int)
                                                  or self.determinism_runs < 1):
            raise CollectError(f"--determinism must be a whole number of at least 1, got {self.determinism_runs!r}.")
        if self.warmup_ms <= 0 or self.rep_ms <= 0:
            raise CollectError("warm-up and repetition times must be positive.")
        # absolute: the interpreter child and the Nsight Compute worker run in the project folder, not in the
        # caller's (a relative --out, the default `runs` included, used to fail from any other folder)
        object.__setattr__(self, "out_dir", Path(self.out_dir).expanduser().absolute())
        object.__setattr__(self, "configs", tuple(self.configs))
        object.__setattr__(self, "impls", tuple((str(n), str(s)) for n, s in dict(self.impls).items()))

    def _fill_defaults(self) -> None:
        if self.suite is None:
            object.__setattr__(self, "suite", "tiny" if self.interpret else "seed")
        for name in ("stages", "refs"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, "all")
        if self.determinism_runs is None:
            object.__setattr__(self, "determinism_runs",
                               SUITE_DETERMINISM_RUNS.get(self.suite, DEFAULT_DETERMINISM_RUNS))

    def config_list(self) -> list[AttentionConfig]:
        return list(self.configs) if self.configs else get_suite(self.suite)

    def as_meta(self) -> dict:
        """The options as run.json records them (and --resume reads them back)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("progress",)}
        d["configs"] = [c.as_dict() for c in self.configs]
        d["impls"] = dict(self.impls)
        d["out_dir"] = str(self.out_dir)
        d["command_line"] = list(self.command_line) if self.command_line else None
        return d


# ---- progress ---------------------------------------------------------------------------------------------------
class _Steps:
    def __init__(self, total: int, callback):
        self.total, self.done, self.callback = total, 0, callback
        self._bar = None
        if callback is None:
            from collectors.bench import Progress

            self._bar = Progress(total)

    def expect(self, remaining: int) -> None:
        """From now on `remaining` more steps are expected (the ETA and the count follow)."""
        self.total = self.done + max(0, remaining)
        if self._bar is not None:
            self._bar.total = max(1, self.total)

    def step(self, label: str) -> None:
        if self.done >= self.total:
            self.total = self.done + 1
            if self._bar is not None:
                self._bar.total = self.total
        if self._bar is not None:
            self._bar.step(label)
        else:
            self.callback(self.done, self.total, label)
        self.done += 1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---- rows -------------------------------------------------------------------------------------------------------
def _status_row(table: str, impl: str, config: AttentionConfig, status: str, error: str | None) -> dict:
    """A row of `table` with every value null: `status` says why (not_measured, failed, wrong, unavailable)."""
    row = {c: None for c in columns(table) if c != "run_id"}
    row.update(_key(impl, config))
    row["status"] = status
    if "error" in row:
        row["error"] = error
    return row


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---- the run ----------------------------------------------------------------------------------------------------
class _Collector:
    def __init__(self, opts: CollectOptions):
        self.opts = opts
        self.ncu_path: Path | None = None
        self.ncu_version: str | None = None

    # -- set-up
    def _check_environment(self) -> None:
        from collectors.timing import cuda_available

        if self.opts.interpret:
            for cfg in self.configs:
                if cfg.B * cfg.H * cfg.S * cfg.S > INTERPRET_MAX_SCORES:
                    raise CollectError(
                        f"config {cfg.id} is too large for the CPU interpreter; use small configs with --interpret "
                        "(e.g. --suite tiny).")
            problem = preflight.interpreter_problem()
            if problem:
                raise CollectError(problem)
            return
        if not cuda_available():
            raise CollectError(
                "no CUDA GPU is visible here: run `perfmodel collect` on an NVIDIA GPU (H100), or add --interpret "
                "to check correctness and census on the CPU.")
        problem = preflight.memory_problem(self.configs, *reversed(preflight.device_memory()))
        if problem:
            raise CollectError(problem)
        if self.opts.ncu:
            self.ncu_path = ncu_profile.require_ncu()
            self.ncu_version = ncu_profile.ncu_version(self.ncu_path)

    def _resolve(self) -> None:
        from collectors.bench import resolve

        try:
            self.impls = resolve(self.opts.stages, self.opts.refs, dict(self.opts.impls))
            # the run records each user SPEC as resolved (an absolute file path), so --resume finds it from anywhere
            self.opts = dataclasses.replace(self.opts, impls=tuple((i.name, i.spec) for i in self.impls
                                                                   if i.kind == "user"))
        except ValueError as e:
            raise CollectError(str(e)) from None
        if not self.impls:
            raise CollectError("no implementation selected; pass --stages and/or --refs with at least one name.")

    def _open_run(self) -> RunWriter:
        from collectors.env import collect_environment

        env = collect_environment(
            list(self.opts.command_line) if self.opts.command_line else None, self.ncu_path, self.ncu_version,
            None if self.opts.ncu and not self.opts.interpret else "ncu was not used (--no-ncu or --interpret)")
        impls = [{"name": i.name, "kind": i.kind, "description": i.description,
                  "available": i.available()[0], "reason": i.available()[1] or None} for i in self.impls]
        meta = {
            "suite": self.opts.suite if not self.opts.configs else "custom",
            "mode": "interpret" if self.opts.interpret else "gpu",
            "configs": [{"config_id": c.id, **c.as_dict()} for c in self.configs],
            "impls": impls,
            "command_line": env["command_line"],
            "options": self.opts.as_meta(),
        }
        if self.opts.resume:
            first_gpu = (load_run(self.opts.out_dir).environment or {}).get("gpu_name")
            if first_gpu and env.get("gpu_name") and first_gpu != env.get("gpu_name"):
                raise CollectError(f"this run was measured on {first_gpu}; resume it on the same GPU, "
                                   f"not on {env.get('gpu_name')}.")
            return RunWriter(self.opts.out_dir, {"command_line": env["command_line"], "environment": env},
                             resume=True)
        meta["environment"] = env
        run_dir = new_run_dir(self.opts.out_dir, meta["suite"],
                              env.get("gpu_name") or ("interpret" if self.opts.interpret else None))
        return RunWriter(run_dir, meta, run_id=run_dir.name)

    def _apply_resume_options(self) -> None:
        """With --resume, the suite, configs and implementations are those the run was started with."""
        if not self.opts.resume:
            return
        run = load_run(self.opts.out_dir)
        old = run.meta.get("options") or {}
        try:
            configs = tuple(AttentionConfig(**{k: c[k] for k in ("B", "H", "S", "D", "causal", "dtype")})
                            for c in run.meta.get("configs", []))
        except (KeyError, TypeError, ValueError) as e:
            raise RunStoreError(f"{run.path}/run.json has a config that cannot be read ({_one_line(e)}).") from None
        if not configs:
            raise RunStoreError(f"{run.path}/run.json lists no configs, so there is nothing to resume.")
        given = {"suite": self.opts.suite, "configs": [c.id for c in self.opts.configs] or None,
                 "stages": self.opts.stages, "refs": self.opts.refs,
                 "impls": sorted(dict(self.opts.impls)) or None, "interpret": self.opts.interpret,
                 "determinism_runs": self.opts.determinism_runs}
        conflict = preflight.resume_conflicts(given, run.meta)
        if conflict:
            raise CollectError(conflict)
        self.opts = dataclasses.replace(
            self.opts, suite=old.get("suite", self.opts.suite), configs=configs,
            stages=old.get("stages", self.opts.stages), refs=old.get("refs", self.opts.refs),
            impls=tuple((old.get("impls") or {}).items()) or self.opts.impls,
            interpret=bool(old.get("interpret", self.opts.interpret)),
            determinism_runs=old.get("determinism_runs", self.opts.determinism_runs),
            ablation=bool(old.get("ablation", True)) and self.opts.ablation,
            ncu=bool(old.get("ncu", True)) and self.opts.ncu)
        self.opts._fill_defaults()  # what an older run.json did not record

    # -- the sweep
    def run(self) -> Path:
        self._apply_resume_options()
        self.configs = self.opts.config_list()
        self._resolve()
        self._check_environment()
        writer = self._open_run()
        self.writer = writer
        self._t0, self.phases, self.compile_problems = time.monotonic(), {}, []
        try:
            with sigterm_as_interrupt():  # `kill` stops a collect as Ctrl-C does: children stopped, run interrupted
                status = self._sweep(writer)
        except KeyboardInterrupt:
            self._end(writer, "interrupted")
            raise
        except OSError as exc:  # a file the run writes outside the store (a full disk, a read-only folder)
            error = RunStoreError(f"cannot write {exc.filename or writer.path}: {exc.strerror or exc}.")
            self._end(writer, "failed", error=str(error))
            raise error from None
        except BaseException as exc:
            self._end(writer, "failed", error=_one_line(exc))
            raise
        self._record_wall(writer)
        writer.finish(status)
        return writer.path

    def _end(self, writer: RunWriter, status: str, **fields) -> None:
        """Record how the run ended, on the way out of an error: if that cannot be written either (the disk is
        full) the error that stopped the run is the one reported, and run.json's `running`, with no process
        holding the run's lock any more, reads as interrupted (collectors/store.py)."""
        try:
            self._record_wall(writer)
            writer.finish(status, **fields)
        except RunStoreError:
            writer.close()

    @contextlib.contextmanager
    def _timed(self, phase: str):
        """Add the block's wall time to `phase` in this invocation's `phases_s` (also when it is interrupted)."""
        t = time.monotonic()
        try:
            yield
        finally:
            self.phases[phase] = round(self.phases.get(phase, 0.0) + time.monotonic() - t, 1)

    def _record_wall(self, writer: RunWriter) -> None:
        """This invocation's wall time (set-up excluded: imports, environment) and its phases, in run.json: at the
        top level for the first invocation, in its `resumes` entry for a `--resume`."""
        wall = {"wall_s": round(time.monotonic() - self._t0, 1), "phases_s": dict(self.phases)}
        if writer.meta.get("resumes") and self.opts.resume:
            writer.meta["resumes"][-1].update(wall)
            writer.update_meta()
        else:
            writer.update_meta(**wall)

    def _sweep(self, writer: RunWriter) -> str:
        done = writer.done_cases()
        todo = [(impl, cfg) for cfg in self.configs for impl in self.impls if (impl.name, cfg.id) not in done]
        # the census compiles the stages and the user's kernels (a user kernel that launches no Triton kernel gets
        # "no census: not a Triton kernel")
        stage_names = [i.name for i in self.impls if i.triton is not False]
        census_done = self._census_done(writer)
        census_todo = [(s, c) for c in self.configs for s in stage_names if (s, c.id) not in census_done]
        ablation_todo = self._ablation_todo(writer) if self.opts.ablation else []
        gpu = not self.opts.interpret
        ceilings_todo = gpu and "ceilings" not in load_run(writer.path).tables()
        n_steps = len(todo) + len(ablation_todo) + len(census_todo) + int(ceilings_todo) + int(gpu and self.opts.ncu)
        steps = _Steps(n_steps, self.opts.progress)
        problems: list[str] = []
        with self._timed("predictions"):  # before anything is timed: the scores of these are out of sample
            predictions_phase.write_predictions(writer, [i.name for i in self.impls], self.configs,
                                                (writer.meta.get("environment") or {}).get("gpu_name"),
                                                self.opts.predict)
        if gpu:
            from collectors.gpu_state import GpuStateSampler

            sampler = GpuStateSampler()
            with sampler, self._timed("cases"):
                for impl, cfg in todo:
                    steps.step(f"{impl.name} {cfg.id}")
                    self._gpu_case(writer, impl, cfg, sampler)
            self._record_clocks(writer, sampler)
        else:
            with self._timed("cases"):
                self._interpret_cases(writer, todo, steps)
        if ablation_todo:
            with self._timed("ablation"):
                self._ablation(writer, ablation_todo, steps)
        with self._timed("census"):
            tuned = self._tuned_configs(load_run(writer.path)) if census_todo else {}
            for impl, cfg in census_todo:
                steps.step(f"census {impl} {cfg.id}")
                self._census(writer, impl, cfg, tuned.get((impl, cfg.id)))
        self._batching(writer)
        if ceilings_todo:
            from collectors.ceilings import measure_ceilings

            steps.step("ceilings")
            with self._timed("ceilings"):
                rows = measure_ceilings()
            writer.append("ceilings", rows)
            problems += [f"ceiling {r['name']} {r['status']}: {r['error']}" for r in rows if r["status"] != "ok"]
        elif not gpu and "ceilings" not in load_run(writer.path).tables():
            from collectors.ceilings import not_measured

            writer.append("ceilings", not_measured("--interpret runs on the CPU; no GPU to measure"))
        if gpu and self.opts.ncu:
            steps.step("Nsight Compute: starting one session over all correct cases")
            with self._timed("ncu"):
                problems += self._ncu(writer, steps, extra_cases=self._ablation_ncu_cases(writer))
        elif not writer.meta.get("ncu"):
            reason = "--interpret runs on the CPU" if self.opts.interpret else "--no-ncu"
            writer.update_meta(ncu={"status": "not_measured", "reason": reason})
        steps.close()
        writer.update_meta(problems=self.compile_problems + problems)
        missing = set((i.name, c.id) for c in self.configs for i in self.impls) - writer.done_cases()
        ncu_failed = (writer.meta.get("ncu") or {}).get("status") in ("failed", "partial")
        return "partial" if (missing or ncu_failed) else "complete"

    # -- one case on the GPU
    def _gpu_case(self, writer: RunWriter, impl, cfg: AttentionConfig, sampler) -> None:
        import torch

        from collectors.bench import bench_case
        from collectors.timing import bare_do_bench, host_launch_us

        t0 = time.monotonic()
        with preflight.compile_log(writer.path / LOGS_DIR, f"{impl.name}-{cfg.id}") as log:
            res = bench_case(impl, cfg, warmup_ms=self.opts.warmup_ms, rep_ms=self.opts.rep_ms, time_it=True,
                             seed=self.opts.seed, keep_inputs=True)
        self._note_compile_log(writer, f"{impl.name} {cfg.id}", res.status, res.error, log)
        sets = res.extra.pop("sets", None)
        out0 = res.extra.pop("out", None)
        bare_ms = math.nan
        launch_row = _status_row("launch", impl.name, cfg, res.status, res.error or None)
        det_row = _status_row("determinism", impl.name, cfg, res.status, res.error or None)
        if res.status == "ok" and sets is not None:
            q, k, v = sets[0]
            call = (lambda: impl.launcher(q, k, v, causal=cfg.causal))
            try:
                bare_ms = bare_do_bench(call, self.opts.warmup_ms, self.opts.rep_ms)
            except Exception as exc:
                res.error = f"bare do_bench failed: {_one_line(exc)}"
            t1 = time.monotonic()
            try:
                launch_us = host_launch_us(call)
                time_ms = res.timing.median_ms
                launch_row.update(status="ok", error=None, host_launch_us=launch_us, time_ms=time_ms,
                                  launch_share=launch_us / (time_ms * 1000.0))
            except Exception as exc:
                launch_row.update(status="failed", error=_one_line(exc))
            try:
                same = 0
                for _ in range(self.opts.determinism_runs):
                    o = call()
                    same += int(torch.equal(o, out0))
                    del o
                det_row.update(status="ok", error=None, n_runs=self.opts.determinism_runs, n_identical=same,
                               bitwise_identical=same == self.opts.determinism_runs)
            except Exception as exc:
                det_row.update(status="failed", error=_one_line(exc))
        else:
            t1 = time.monotonic()
        timing = res.timing_row(writer.run_id, bare_ms)
        timing.pop("run_id", None)
        timing.update(
            n_inputs=len(sets) if sets is not None and res.timing else None,
            overhead_pct=((timing["time_ms"] - bare_ms) / bare_ms * 100.0) if res.timing and bare_ms > 0 else None,
            **sampler.case_state(t0, t1),  # clocks, power, temperature, throttle reasons (collectors/gpu_state.py)
        )
        if res.status == "ok" and not res.timing:
            timing["status"] = "failed"
        correctness = res.correctness_row(writer.run_id)
        correctness.pop("run_id", None)
        samples = res.sample_rows(writer.run_id)  # every timed repetition (none when not timed)
        del sets, out0, res.extra
        writer.append("correctness", [correctness])
        writer.append("timings", [timing])
        writer.append("timing_samples", samples)  # before `cases`, like every table of the case (--resume)
        writer.append("launch", [launch_row])
        writer.append("determinism", [det_row])
        writer.append("cases", [{**_key(impl.name, cfg), "status": correctness["status"],
                                 "error": correctness.get("error") or None,
                                 "wall_s": round(time.monotonic() - t0, 3), "finished": _now()}])
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _note_compile_log(self, writer: RunWriter, what: str, status: str, error: str | None, log) -> None:
        """A launch that failed with compiler output: one line for the terminal (printed at the end with the
        other problems), the output and Triton's MLIR reproducer in the run's logs/ folder."""
        kept = log.kept(failed=status == "failed") if log is not None else []
        if status == "failed" and kept:
            where = ", ".join(str(p.relative_to(writer.path)) for p in kept)
            self.compile_problems.append(f"{what} failed ({(error or '').strip()[:200]}); the compiler's output is "
                                         f"in {writer.path}/{where}")

    def _record_clocks(self, writer: RunWriter, sampler) -> None:
        summary = sampler.summary()
        env = dict(writer.meta.get("environment") or {})
        if writer.meta.get("resumes"):
            writer.meta["resumes"][-1]["clocks_during_timing"] = summary
            writer.update_meta()
            return
        env["clocks_during_timing"] = summary
        writer.update_meta(environment=env)

    # -- cases under the interpreter (child process)
    def _interpret_cases(self, writer: RunWriter, todo, steps: _Steps) -> None:
        if not todo:
            return
        cases = [{"impl": impl.name, "config": cfg.as_dict(), "range": ncu_profile.range_name(impl.name, cfg.id)}
                 for impl, cfg in todo]
        work = writer.path / "interpret"
        cases_file = ncu_profile.write_cases_file(work / "cases.json", cases, self.opts.seed)
        report = work / "report.jsonl"
        report.write_text("")
        from collectors.worker import check_command

        argv, env, root = check_command(cases_file, report)
        by_key = {(impl.name, cfg.id): (impl, cfg) for impl, cfg in todo}
        log = open(work / "worker.log", "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                                **child_process_options())
        seen = 0
        t_case = time.monotonic()
        if todo:
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
                    self._store_interpreted(writer, impl, cfg, row, time.monotonic() - t_case)
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

    def _store_interpreted(self, writer: RunWriter, impl, cfg: AttentionConfig, row: dict, wall_s: float) -> None:
        correctness = {c: row.get(c) for c in columns("correctness") if c != "run_id"}
        correctness.update(_key(impl.name, cfg))
        status = correctness["status"]
        reason = "--interpret runs on the CPU; there is no GPU to time" if status == "ok" else correctness["error"]
        gpu_status = "not_measured" if status == "ok" else status
        writer.append("correctness", [correctness])
        for table in ("timings", "launch", "determinism"):
            writer.append(table, [_status_row(table, impl.name, cfg, gpu_status, reason)])
        writer.append("cases", [{**_key(impl.name, cfg), "status": status, "error": correctness.get("error") or None,
                                 "wall_s": round(wall_s, 3), "finished": _now()}])

    @staticmethod
    def _tuned_configs(run) -> dict[tuple[str, str], str]:
        """(impl, config_id) -> the `tuned_config` report the run's timings recorded (tuning stages only)."""
        t = run.table("timings")
        if t.empty or "tuned_config" not in t.columns:
            return {}
        t = t[t["tuned_config"].notna() & (t["tuned_config"].astype(str) != "")]
        return {(str(r.impl), str(r.config_id)): str(r.tuned_config) for r in t.itertuples()}

    # -- ablation
    def _ablation_todo(self, writer: RunWriter) -> list[tuple[str, AttentionConfig]]:
        """(impl, config) pairs of implementations that declare technique switches and have no ablation rows yet."""
        df = load_run(writer.path).table("ablation")
        done = set(zip(df["impl"].astype(str), df["config_id"].astype(str))) if not df.empty else set()
        names = [i.name for i in self.impls if i.switches()]
        return [(n, c) for c in self.configs for n in names if (n, c.id) not in done]

    def _ablation(self, writer: RunWriter, todo, steps: _Steps) -> None:
        """Each technique switch measured alone (collectors/ablation.py), one (stage, config) at a time."""
        if not todo:
            return
        from collectors import ablation as A
        from kernels import registry

        run = load_run(writer.path)
        c = run.table("correctness")
        correct = set(zip(c.loc[c["status"] == "ok", "impl"].astype(str), c.loc[c["status"] == "ok", "config_id"]))
        tuned = self._tuned_configs(run)
        declared = dict(writer.meta.get("ablation") or {})
        for impl, cfg in todo:
            steps.step(f"ablation {impl} {cfg.id}")
            stage = registry.get(impl)
            declared[impl] = A.declared(stage)
            tuned_cfg = stage.config_from_report(tuned.get((impl, cfg.id)))
            if (impl, cfg.id) not in correct:
                variants, timed = [], False
                status = c.loc[(c["impl"].astype(str) == impl) & (c["config_id"] == cfg.id), "status"]
                if (status == "not_measured").any():
                    why = ("the case itself could not run here (e.g. a Gluon kernel under --interpret), so its "
                           "variants were not run (see the correctness table)")
                else:
                    why = "the case itself was not correct, so its variants were not run (see the correctness table)"
            else:
                variants = A.plan_variants(stage, cfg, tuned_cfg)
                if self.opts.interpret:
                    A.check_in_interpreter(stage, cfg, variants, writer.path / "interpret", self.opts.seed)
                    timed, why = False, "--interpret runs on the CPU; there is no GPU to time"
                else:
                    A.measure_on_gpu(stage, cfg, variants, warmup_ms=self.opts.warmup_ms, rep_ms=self.opts.rep_ms,
                                     seed=self.opts.seed)
                    timed, why = True, ""
            writer.append("ablation_variants", A.variant_rows(stage, cfg, variants, tuned_cfg))
            writer.append("timing_samples", A.sample_rows(stage, cfg, variants))
            writer.append("ablation", A.gain_rows(stage, cfg, variants, tuned_cfg, timed, why))
        writer.update_meta(ablation=declared)

    def _ablation_ncu_cases(self, writer: RunWriter) -> list[dict]:
        """The ablation variants each measured gain compares, for the Nsight Compute session (under their label)."""
        from collectors import ablation as A

        run = load_run(writer.path)
        return A.ncu_cases(run.table("ablation"), run.table("ablation_variants"), {c.id: c for c in self.configs})

    # -- census
    @staticmethod
    def _census_done(writer: RunWriter) -> set[tuple[str, str]]:
        df = load_run(writer.path).table("census")
        return set(zip(df["impl"].astype(str), df["config_id"].astype(str))) if not df.empty else set()

    def _census(self, writer: RunWriter, impl: str, cfg: AttentionConfig, tuned: str | None) -> None:
        """The census row of one (stage, config); `tuned` is the config the run timed for a tuning stage."""
        from collectors.census import H100_SM_COUNT, census

        sm_count = (writer.meta.get("environment") or {}).get("sm_count") or H100_SM_COUNT
        log = None
        try:
            with preflight.compile_log(writer.path / LOGS_DIR, f"census-{impl}-{cfg.id}") as log:
                row = census(impl, cfg, int(sm_count), tuned_config=tuned).row(writer.run_id)
        except Exception as exc:  # census() records refusals itself; anything else is recorded here
            row = _status_row("census", impl, cfg, "failed", _one_line(exc))
        self._note_compile_log(writer, f"census {impl} {cfg.id}", row.get("status"), row.get("error"), log)
        row.pop("run_id", None)
        writer.append("census", [row])

    # -- batching
    def _batching(self, writer: RunWriter) -> None:
        """Per-sequence latency and speedup over B=1 for every (impl, H, S, D, causal, dtype) timed at several B."""
        timings = load_run(writer.path).table("timings")
        if timings.empty:
            return
        group_cols = ["impl", "H", "S", "D", "causal", "dtype"]
        rows = []
        for _, g in timings.groupby(group_cols, dropna=False):
            if g["B"].nunique() < 2 or 1 not in set(g["B"].astype(int)):
                continue
            b1 = g[(g["B"].astype(int) == 1) & (g["status"] == "ok")]["time_ms"]
            per_seq_b1 = float(b1.iloc[0]) if len(b1) else math.nan
            for _, r in g.sort_values("B").iterrows():
                row = {c: r[c] for c in ["impl", *CONFIG_COLUMNS]}
                ok = r["status"] == "ok" and pd.notna(r["time_ms"])
                t = float(r["time_ms"]) if ok else math.nan
                per_seq = t / int(r["B"]) if ok else math.nan
                speedup = per_seq_b1 / per_seq if ok and not math.isnan(per_seq_b1) else math.nan
                row.update(status="ok" if not math.isnan(speedup) else "not_measured", time_ms=t,
                           per_seq_ms=per_seq, speedup_vs_b1=speedup)
                rows.append(row)
        if rows:
            writer.append("batching", rows)

    # -- Nsight Compute
    def _ncu(self, writer: RunWriter, steps: _Steps | None = None,
             extra_cases: list[dict] | None = None) -> list[str]:
        """The Nsight Compute phase (collectors/ncu_phase.py): one session over every correct case not yet
        profiled and `extra_cases` ({"impl", "label", "config", "tuned_config"} each); returns its problems.
        `steps` gets one step per case as the worker finishes it (the progress line and its ETA)."""
        return ncu_phase.profile(writer, self.ncu_path, self.ncu_version, self.configs,
                                 tuned_configs=self._tuned_configs(load_run(writer.path)), extra_cases=extra_cases,
                                 seed=self.opts.seed, timeout_s=self.opts.ncu_timeout_s, steps=steps)

def collect(opts: CollectOptions) -> Path:
    """Run the collection described by `opts`; returns the run folder."""
    return _Collector(opts).run()
