"""The Python API: measure, open and report runs from a notebook or a script, without the command line.

    import perfmodel
    from my_attn import attention                              # your kernel, in a module file beside the notebook
    run = perfmodel.collect(impls={"mine": attention}, configs=["B=1,H=2,S=128,D=64,causal"],
                            out="runs", interpret=True)          # interpret=False (default) on an H100/H200
    run.table("correctness")                                   # the documented DataFrames (runstore/schema.py)
    perfmodel.report(run, out="report.html")

`collect` takes the same choices as `perfmodel collect` (stages, refs, suite or configs, ncu, ablation,
determinism) and returns the run opened for reading (`runstore.reader.Run`); `load_run(path)` opens an existing
run folder. Errors are the command line's: one sentence, raised as `perfmodel.errors.UserError`. What the command
line prints as warnings after a run (each case or census that failed or was wrong, with its reason; the run's
problems; and, when every kernel of yours failed or was wrong, that sentence) `collect` gives as warnings of the
category `perfmodel.errors.CollectWarning`, one each, and still returns the run: the failures are findings to read
in its tables, not errors (a notebook shows warnings; `warnings.simplefilter("error", CollectWarning)` makes them
raise, `warnings.catch_warnings(record=True)` collects them). Ctrl-C raises `collectors.sweep.options.Interrupted`
(a KeyboardInterrupt) whose `run_dir` holds what was measured.

An implementation is the function itself or a SPEC naming it ('path/to/attn.py:attention' or
'package.module:attention', as `--impl` takes). A function is recorded in the run as its `module:qualname` SPEC
when another process can import it by that name (the Nsight Compute worker and the interpreter's process do, and
`perfmodel collect --resume` later). One that cannot be imported so (defined in the notebook itself or in
`__main__`, a lambda, a function nested in another) is recorded as `<callable __main__.attention, not
importable>` and runs in this process only: that is enough for the timings, the census, the ablation and
`interpret=True` (a torch function is checked as usual; a Triton kernel built in this process without
TRITON_INTERPRET=1 cannot be interpreted here and is recorded as not measured, saying why), but with Nsight
Compute (`ncu=True` on a GPU) it is refused before anything is measured, and such a run cannot be resumed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from perfmodel.errors import UserError


def collect(impls: dict[str, str | Callable] | None = None, configs: Iterable | None = None,
            out: str | os.PathLike = "runs", *, suite: str | None = None, stages: str = "all", refs: str = "all",
            ncu: bool = True, ablation: bool = True, interpret: bool = False, determinism: int | None = None,
            progress=None, timeline: bool | None = None):
    """Measure `impls` ({name: function or SPEC}, your kernels: see the module docstring) beside the stages and
    peers named by `stages` / `refs` on `configs` (AttentionConfig objects or 'B=..,H=..,S=..,D=..[,causal]'
    strings; default: the suite) and return the run. `interpret=True` runs on the CPU (Triton's interpreter:
    correctness and census; timings and counters are recorded as not measured, and ncu is not used).
    `timeline=True` also records a Proton timeline of each Gluon stage (None: the suite's default, on in `plan`)."""
    from collectors.ncu.profile import NcuError
    from collectors.sweep.collect import collect as run_collect
    from collectors.sweep.options import CollectError, CollectOptions
    from kernels.workload import AttentionConfig, parse_config
    from perfmodel.model.predictors import prediction_rows
    from runstore.layout import RunStoreError
    from runstore.reader import load_run as open_run

    parsed = tuple(c if isinstance(c, AttentionConfig) else parse_config(str(c)) for c in (configs or ()))
    try:
        opts = CollectOptions(suite=suite, configs=parsed, stages=stages, refs=refs, predict=prediction_rows,
                              impls=tuple((impls or {}).items()), out_dir=Path(out), ncu=ncu and not interpret,
                              ablation=ablation, interpret=interpret, timeline=timeline,
                              determinism_runs=determinism,
                              command_line=("perfmodel.collect",), progress=progress)
        run = open_run(run_collect(opts))
    except (CollectError, RunStoreError, NcuError) as exc:
        raise UserError(str(exc)) from None
    _warn_findings(run)
    return run


def _warn_findings(run) -> None:
    """Each line `perfmodel collect` prints as a warning after `run`, as a CollectWarning (module docstring)."""
    import warnings

    from perfmodel.errors import CollectWarning
    from perfmodel.reports.collect_summary import findings, yours_failed, yours_failed_sentence

    lines = findings(run)
    failed = yours_failed(run)
    for line in lines + ([yours_failed_sentence(run, failed)] if failed else []):
        warnings.warn(line, CollectWarning, stacklevel=3)


def load_run(path: str | os.PathLike):
    """The run folder at `path`, opened for reading; `.table(name)` gives its DataFrames, `.meta` its run.json."""
    from runstore.layout import RunStoreError
    from runstore.reader import load_run as open_run

    try:
        return open_run(path)
    except RunStoreError as exc:
        raise UserError(str(exc)) from None


def report(run, out: str | os.PathLike | None = None, *, baseline=None, fmt: str | None = None) -> str:
    """The report of `run` (a Run or a run folder) as text, HTML by default or Markdown (fmt='md', or an `out`
    ending in .md); written to `out` when given. `baseline` (a Run or folder) adds the comparison columns."""
    from perfmodel.reports.reporting import build_report

    run = load_run(run) if isinstance(run, (str, os.PathLike)) else run
    if isinstance(baseline, (str, os.PathLike)):
        baseline = load_run(baseline)
    fmt = fmt or ("md" if out is not None and str(out).endswith(".md") else "html")
    text = build_report(run, baseline, fmt=fmt)
    if out is not None:
        from perfmodel.output import write_output

        write_output(out, text)
    return text
