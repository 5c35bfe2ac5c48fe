"""What `perfmodel collect` is asked to do: `CollectOptions`, frozen and checked where it is made (the CLI, the
Python API, a `--resume` filling in what its run recorded) with its `--shard I/N` read as a `Shard`;
`CollectError`, a request that cannot run as asked, in one sentence; and `Interrupted`, a collection Ctrl-C (or
SIGTERM) stopped after its run folder was made."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kernels.suites import DEFAULT_DETERMINISM_RUNS, SUITE_DETERMINISM_RUNS, SUITES, get_suite
from kernels.workload import AttentionConfig

# Largest problem run under the CPU interpreter: B·H·S² score elements. The tiny suite's biggest is 1·1·130²;
# the seed config (16·16·2048²) would take hours on a CPU.
INTERPRET_MAX_SCORES = 1 << 20
# Suites whose collect records a Proton timeline of each Gluon stage unless told not to (`--no-timeline`): `plan`
# measures everything the plan asks for, and issue 24 asks for the timelines inside it.
TIMELINE_SUITES = frozenset({"plan"})
TIMELINE_NEEDS_GPU = ("Proton timelines need the GPU: --interpret runs the kernels on the CPU, where Proton's "
                      "instrumentation cannot record them; drop --timeline, or collect on an H100 or H200.")


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class CollectError(Exception):
    """A collect request that cannot run as asked; the message is one sentence."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a collection after its run folder was made: `run_dir` keeps what was measured,
    and `perfmodel collect --resume <run_dir>` measures the rest."""

    def __init__(self, run_dir):
        super().__init__(str(run_dir))
        self.run_dir = Path(run_dir)


@dataclass(frozen=True)
class Shard:
    """The `index`-th (from 1) of `count` shards."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text) -> Shard:
    """`I/N` (1 <= I <= N) -> Shard; anything else is a CollectError naming the form."""
    if isinstance(text, Shard):
        return text
    m = _SHARD_RE.match(str(text))
    if not m:
        raise CollectError(f"--shard takes I/N, the I-th of N shards counted from 1 (e.g. 1/4), not {text!r}.")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise CollectError(f"--shard {text}: the shard number must be between 1 and {max(count, 1)} "
                           f"(shards are counted from 1, e.g. 1/{max(count, 2)}).")
    return Shard(index, count)


@dataclass(frozen=True)
class CollectOptions:
    """What to collect. `out_dir` is the folder new runs go under, or with `resume=True` the run to continue."""

    suite: str | None = None  # None: "tiny" with interpret (small enough for the CPU), else "seed"
    configs: tuple[AttentionConfig, ...] = ()  # when given, these replace the suite's configs
    stages: str | None = None  # comma list of stage names, "all" or "none"; None: all (with resume: the run's)
    refs: str | None = None  # comma list of peer names, "all" or "none"; None: all (with resume: the run's)
    # the user's own kernels: (name, SPEC or the function itself) pairs (kernels.user_kernels.register)
    impls: tuple[tuple[str, str | Callable], ...] = ()
    out_dir: Path = Path("runs")
    ncu: bool = True
    ablation: bool = True  # measure each technique switch of the stages that declare some (collectors.sweep.ablation)
    # a Proton timeline per Gluon stage and config (collectors/sweep/timeline_phase.py); None: the suite's default
    # (on for TIMELINE_SUITES, never under interpret); `wants_timeline()` says which
    timeline: bool | None = None
    resume: bool = False
    interpret: bool = False
    determinism_runs: int | None = None  # None: the suite's own number (kernels.suites), else the default
    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    seed: int = 0
    ncu_timeout_s: float | None = 3600.0
    command_line: tuple[str, ...] | None = None
    # predict(impls, configs, gpu) -> `predictions` rows, stored before anything is timed (collectors/
    # predictions_phase.py); the perfmodel layer passes perfmodel.model.predictors.prediction_rows. None: no
    # predictions.
    predict: Callable | None = field(default=None, compare=False, repr=False)
    # progress(done, total, label): called before each step; None prints a progress line with ETA on stderr.
    progress: Callable[[int, int, str], None] | None = field(default=None, compare=False, repr=False)
    # the I-th of N shards of the suite ("I/N" or a Shard; collectors/sweep/shard.py plans them); None: the whole suite
    shard: object = None
    # one worker per GPU of this host (collectors/sweep/devices.py): "all" or "0,1,..."; None: this process, one GPU
    devices: str | None = None
    # the exact folder of the new run instead of a new one under out_dir (the --devices parent names its workers')
    run_dir: Path | None = None
    # a shard plan made by whoever split the suite (the --devices parent); None: the shard plans itself
    plan: object = field(default=None, compare=False, repr=False)

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
        if self.timeline is True and self.interpret:
            raise CollectError(TIMELINE_NEEDS_GPU)
        if self.warmup_ms <= 0 or self.rep_ms <= 0:
            raise CollectError("warm-up and repetition times must be positive.")
        # absolute: the interpreter child and the Nsight Compute worker run in the project folder, not in the
        # caller's (a relative --out, the default `runs` included, used to fail from any other folder)
        object.__setattr__(self, "out_dir", Path(self.out_dir).expanduser().absolute())
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir).expanduser().absolute())
        if self.shard is not None:
            object.__setattr__(self, "shard", parse_shard(self.shard))
        if self.shard is not None and self.devices is not None:
            raise CollectError("--shard and --devices do not combine: --devices already splits the suite over this "
                               "host's GPUs (shards are for separate jobs, e.g. a Slurm array); give one of them.")
        object.__setattr__(self, "configs", tuple(self.configs))
        object.__setattr__(self, "impls", tuple((str(n), s if callable(s) else str(s))
                                                for n, s in dict(self.impls).items()))
        self._refuse_functions_others_cannot_import()

    def _refuse_functions_others_cannot_import(self) -> None:
        """A function given as an object that no other process can import (kernels.importable.callable_spec) runs
        in this process only, which is enough for the cases, the ablation, the census and `interpret` (its
        correctness is checked here instead of in the interpreter process); where the run needs another process
        to call it, it is refused now, before anything is measured."""
        from kernels import importable

        if self.devices is not None:
            needed_by, alternative = "the per-GPU worker processes of --devices", " (or collect on one GPU)"
        elif self.ncu and not self.interpret:
            needed_by, alternative = "the Nsight Compute worker process", " (or collect with ncu=False)"
        else:
            return
        problems = (importable.not_importable_problem(name, target, needed_by, alternative)
                    for name, target in self.impls if callable(target))
        problem = next((p for p in problems if p), None)
        if problem:
            raise CollectError(problem)

    def _fill_defaults(self) -> None:
        if self.suite is None:
            object.__setattr__(self, "suite", "tiny" if self.interpret else "seed")
        for name in ("stages", "refs"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, "all")
        if self.determinism_runs is None:
            object.__setattr__(self, "determinism_runs",
                               SUITE_DETERMINISM_RUNS.get(self.suite, DEFAULT_DETERMINISM_RUNS))

    def wants_timeline(self) -> bool:
        """Whether this collection records Proton timelines: as asked, else the suite's default."""
        if self.timeline is not None:
            return bool(self.timeline) and not self.interpret
        return self.suite in TIMELINE_SUITES and not self.interpret

    def config_list(self) -> list[AttentionConfig]:
        return list(self.configs) if self.configs else get_suite(self.suite)

    def as_meta(self) -> dict:
        """The options as run.json records them (and --resume reads them back)."""
        from kernels.importable import as_spec

        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("progress", "predict", "plan")}
        d["shard"] = str(self.shard) if self.shard is not None else None
        d["run_dir"] = str(self.run_dir) if self.run_dir is not None else None
        d["configs"] = [c.as_dict() for c in self.configs]
        d["impls"] = {name: as_spec(target) for name, target in self.impls}
        d["out_dir"] = str(self.out_dir)
        d["command_line"] = list(self.command_line) if self.command_line else None
        return d
