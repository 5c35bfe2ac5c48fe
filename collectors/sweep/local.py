"""`perfmodel collect` in this process: every (implementation, config) of a suite measured into one run folder.

This module is the sweep's order and bookkeeping (collectors/sweep/collect.py decides whether it runs here or, with
`--devices`, in one worker per GPU, collectors/sweep/devices.py, each of which runs it); each phase is its own module:

- before the first case, every stage's predicted time (collectors/sweep/predictions_phase.py);
- the cases, on the GPU (collectors/sweep/gpu_cases.py: correctness against the float64 reference, timings over rotated
  inputs with the collector's own overhead, host launch cost, determinism) or, with `interpret=True`, under
  Triton's interpreter in a child process (collectors/sweep/interpret_cases.py: correctness only, every GPU
  measurement stored as `not_measured`); each case's rows are stored as soon as it is done (runstore.writer),
  ending with its row in the `cases` log, which is what `--resume` skips;
- the ablation of the implementations that declare technique switches (collectors/sweep/ablation_phase.py);
- with `--timeline` (and in `--suite plan`), one Proton-instrumented launch per Gluon stage and config
  (collectors/sweep/timeline_phase.py);
- once per run: the census of each (stage, config) (compiled for sm_90 on the CPU) and the batching table derived
  from the timings (collectors/sweep/census_phase.py), this GPU's ceilings (collectors.ceilings.ceilings), and ONE
  Nsight Compute session over all correct cases (collectors.sweep.ncu_phase, the worker process collectors.sweep.worker)
  parsed into `ncu_metrics` and `stalls`.

What to collect is a `CollectOptions` (collectors/sweep/options.py). Problems the user can fix raise
`CollectError` (or the store's / ncu's errors) with one sentence; a kernel that fails for one config is recorded
and the sweep goes on; Ctrl-C or SIGTERM raises `Interrupted` with the run folder.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

from collectors.ncu import profile as ncu_profile
from collectors.sweep import ncu_phase, predictions_phase, preflight, timeline_phase
from collectors.sweep.ablation_phase import ablation_ncu_cases, ablation_todo, run_ablation
from collectors.sweep.case_rows import note_compile_log
from collectors.sweep.census_phase import batching, census_case, census_done, tuned_configs
from collectors.sweep.env import package_version
from collectors.sweep.gpu_cases import device_identity, gpu_case, record_clocks
from collectors.sweep.interpret_cases import interpret_cases
from collectors.sweep.options import INTERPRET_MAX_SCORES, CollectError, CollectOptions, Interrupted
from collectors.sweep.progress import Steps as _Steps
from collectors.timing import memory as case_memory
from collectors.timing.failures import one_line as _one_line
from kernels.workload import AttentionConfig
from runstore.layout import RunStoreError
from runstore.reader import load_run
from runstore.safe_io import sigterm_as_interrupt
from runstore.writer import RunWriter, new_run_dir


# ---- the run ----------------------------------------------------------------------------------------------------
class _Collector:
    def __init__(self, opts: CollectOptions):
        self.opts = opts
        self.ncu_path: Path | None = None
        self.ncu_version: str | None = None
        self.compile_problems: list[str] = []
        self.plan = None  # with --shard: the split of the suite (collectors/sweep/shard.py)
        self.timeline_problem: str | None = None  # why Proton cannot record here, when the suite asked for timelines

    # -- set-up
    def _check_environment(self) -> None:
        from collectors.timing.measure import cuda_available

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
            if self.opts.timeline is True:
                raise CollectError("no CUDA GPU is visible here: `perfmodel collect --timeline` records Proton "
                                   "timelines of the Gluon stages on an NVIDIA H100 or H200.")
            raise CollectError(
                "no CUDA GPU is visible here: run `perfmodel collect` on an NVIDIA GPU (H100), or add --interpret "
                "to check correctness and census on the CPU.")
        problem = case_memory.memory_problem(self.configs, *reversed(case_memory.device_memory()))
        if problem:
            raise CollectError(problem)
        if self.opts.ncu:
            self.ncu_path = ncu_profile.require_ncu()
            self.ncu_version = ncu_profile.ncu_version(self.ncu_path)
        if self.opts.wants_timeline():
            from collectors.timeline.capture import proton_problem

            self.timeline_problem = proton_problem()
            if self.timeline_problem and self.opts.timeline is True:  # asked for: refused before anything runs
                raise CollectError(f"--timeline cannot record here: {self.timeline_problem}")

    def _resolve(self) -> None:
        self.opts, self.impls = resolve_impls(self.opts)

    def _environment(self) -> dict:
        from collectors.sweep.env import collect_environment

        return collect_environment(
            list(self.opts.command_line) if self.opts.command_line else None, self.ncu_path, self.ncu_version,
            None if self.opts.ncu and not self.opts.interpret else "ncu was not used (--no-ncu or --interpret)")

    def _plan_shard(self, env: dict) -> dict | None:
        """With --shard, keep only this shard's configs (collectors/sweep/shard.py) and return run.json's `shard`."""
        if self.opts.shard is None or self.opts.resume:
            return None
        from collectors.sweep.shard import make_plan

        names = [i.name for i in self.impls]
        gpu = env.get("gpu_name")
        self.plan = self.opts.plan or make_plan(self.opts.shard.count, names, self.configs, self.opts, gpu,
                                                self.opts.predict)
        if self.plan.configs != [c.id for c in self.configs]:
            raise CollectError("the shard plan was made for other configs than this collection's.")
        mine = set(self.plan.configs_of(self.opts.shard.index))
        self.configs = [c for c in self.configs if c.id in mine]
        return {**self.plan.record(self.opts.shard), "package_version": package_version()}

    def _predictor(self):
        """The predictions phase's predictor: with a shard plan, the rows the plan was made with (the whole suite
        was predicted once to balance it), so they are not computed twice."""
        plan, fallback = self.plan, self.opts.predict
        if plan is None or (not plan.predictions and plan.prediction_error is None and fallback is None):
            return fallback

        def planned(impls, configs, gpu):
            if plan.prediction_error:
                raise RuntimeError(plan.prediction_error)
            ids = {c.id for c in configs}
            return [r for r in plan.predictions if r["config_id"] in ids and r["impl"] in impls]

        return planned

    def _open_run(self, env: dict, shard: dict | None = None) -> RunWriter:
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
        if shard is not None:
            meta["shard"] = shard
        if self.opts.run_dir is not None:
            return RunWriter(self.opts.run_dir, meta, run_id=self.opts.run_dir.name)
        name = meta["suite"] if shard is None else f"{meta['suite']}-shard-{shard['index']}-of-{shard['count']}"
        run_dir = new_run_dir(self.opts.out_dir, name,
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
            timeline=self.opts.timeline if self.opts.timeline is not None else old.get("timeline"),
            ncu=bool(old.get("ncu", True)) and self.opts.ncu)
        self.opts._fill_defaults()  # what an older run.json did not record

    # -- the sweep
    def run(self) -> Path:
        self._apply_resume_options()
        self.configs = self.opts.config_list()
        self._resolve()
        self._check_environment()
        env = self._environment()
        writer = self._open_run(env, self._plan_shard(env))
        self.writer = writer
        self._t0, self.phases, self.compile_problems = time.monotonic(), {}, []
        try:
            with sigterm_as_interrupt():  # `kill` stops a collect as Ctrl-C does: children stopped, run interrupted
                status = self._sweep(writer)
        except KeyboardInterrupt:
            self._end(writer, "interrupted")
            raise Interrupted(writer.path) from None
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
        holding the run's lock any more, reads as interrupted (runstore/writer.py)."""
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
        done_census = census_done(writer)
        census_todo = [(s, c) for c in self.configs for s in stage_names if (s, c.id) not in done_census]
        todo_ablation = ablation_todo(writer, self.impls, self.configs) if self.opts.ablation else []
        gpu = not self.opts.interpret
        timelines = gpu and self.opts.wants_timeline() and not self.timeline_problem
        todo_timeline = timeline_phase.timeline_todo(writer, self.impls, self.configs) if timelines else []
        ceilings_todo = gpu and "ceilings" not in load_run(writer.path).tables()
        n_steps = (len(todo) + len(todo_ablation) + len(todo_timeline) + len(census_todo) + int(ceilings_todo)
                   + int(gpu and self.opts.ncu))
        steps = _Steps(n_steps, self.opts.progress)
        problems: list[str] = []
        with self._timed("predictions"):  # before anything is timed: the scores of these are out of sample
            predictions_phase.write_predictions(writer, [i.name for i in self.impls], self.configs,
                                                (writer.meta.get("environment") or {}).get("gpu_name"),
                                                self._predictor())
        if gpu:
            from collectors.timing.gpu_state import GpuStateSampler

            sampler = GpuStateSampler()
            with sampler, self._timed("cases"):
                for impl, cfg in todo:
                    steps.step(f"{impl.name} {cfg.id}")
                    self._gpu_case(writer, impl, cfg, sampler)
            self._record_clocks(writer, sampler)
        else:
            with self._timed("cases"):
                interpret_cases(self.opts, writer, todo, steps)
        if todo_ablation:
            with self._timed("ablation"):
                run_ablation(self.opts, writer, todo_ablation, steps)
        if todo_timeline:
            with self._timed("timeline"):
                problems += timeline_phase.run_timelines(self.opts, writer, todo_timeline, steps)
        elif gpu and self.opts.wants_timeline() and self.timeline_problem:
            timeline_phase.not_measured(writer, self.timeline_problem)
        with self._timed("census"):
            tuned = tuned_configs(load_run(writer.path)) if census_todo else {}
            for impl, cfg in census_todo:
                steps.step(f"census {impl} {cfg.id}")
                census_case(writer, impl, cfg, tuned.get((impl, cfg.id)), self.compile_problems)
        batching(writer)
        if ceilings_todo:
            from collectors.ceilings.ceilings import measure_ceilings

            steps.step("ceilings")
            with self._timed("ceilings"):
                rows = measure_ceilings()
            writer.append("ceilings", [{**r, **device_identity()} for r in rows])  # one set per GPU measured
            problems += [f"ceiling {r['name']} {r['status']}: {r['error']}" for r in rows if r["status"] != "ok"]
        elif not gpu and "ceilings" not in load_run(writer.path).tables():
            from collectors.ceilings.ceilings import not_measured

            writer.append("ceilings", not_measured("--interpret runs on the CPU; no GPU to measure"))
        if gpu and self.opts.ncu:
            steps.step("Nsight Compute: starting one session over all correct cases")
            with self._timed("ncu"):
                problems += self._ncu(writer, steps, extra_cases=ablation_ncu_cases(writer, self.configs))
        elif not writer.meta.get("ncu"):
            reason = "--interpret runs on the CPU" if self.opts.interpret else "--no-ncu"
            writer.update_meta(ncu={"status": "not_measured", "reason": reason})
        steps.close()
        writer.update_meta(problems=self.compile_problems + problems)
        missing = set((i.name, c.id) for c in self.configs for i in self.impls) - writer.done_cases()
        ncu_failed = (writer.meta.get("ncu") or {}).get("status") in ("failed", "partial")
        return "partial" if (missing or ncu_failed) else "complete"

    # -- one case on the GPU

    # -- the phases (collectors/sweep/gpu_cases.py, interpret_cases.py, ablation_phase.py, census_phase.py)
    def _gpu_case(self, writer: RunWriter, impl, cfg: AttentionConfig, sampler) -> None:
        gpu_case(self.opts, writer, impl, cfg, sampler, self.compile_problems)

    def _note_compile_log(self, writer: RunWriter, what: str, status: str, error: str | None, log) -> None:
        note_compile_log(self.compile_problems, writer, what, status, error, log)

    @staticmethod
    def _record_clocks(writer: RunWriter, sampler) -> None:
        record_clocks(writer, sampler)

    # -- Nsight Compute
    def _ncu(self, writer: RunWriter, steps: _Steps | None = None,
             extra_cases: list[dict] | None = None) -> list[str]:
        """The Nsight Compute phase (collectors/sweep/ncu_phase.py): one session over every correct case not yet
        profiled and `extra_cases` ({"impl", "label", "config", "tuned_config"} each); returns its problems.
        `steps` gets one step per case as the worker finishes it (the progress line and its ETA)."""
        return ncu_phase.profile(writer, self.ncu_path, self.ncu_version, self.configs,
                                 tuned_configs=tuned_configs(load_run(writer.path)), extra_cases=extra_cases,
                                 seed=self.opts.seed, timeout_s=self.opts.ncu_timeout_s, steps=steps)


def resolve_impls(opts: CollectOptions) -> tuple[CollectOptions, list]:
    """(`opts` with each user SPEC as resolved, the implementations it names: kernels.registry.Impl): the run records
    a SPEC as an absolute file path, so --resume finds it from anywhere. CollectError in one sentence for an unknown
    name or a bad SPEC, or when nothing is selected."""
    from collectors.timing.bench import resolve

    try:
        impls = resolve(opts.stages, opts.refs, dict(opts.impls))
        opts = dataclasses.replace(opts, impls=tuple((i.name, i.spec) for i in impls if i.kind == "user"))
    except ValueError as e:
        raise CollectError(str(e)) from None
    if not impls:
        raise CollectError("no implementation selected; pass --stages and/or --refs with at least one name.")
    return opts, impls


def collect_here(opts: CollectOptions) -> Path:
    """Run the collection described by `opts` in this process; returns the run folder."""
    return _Collector(opts).run()
