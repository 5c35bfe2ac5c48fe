"""The `perfmodel` command line: `main(argv) -> int`, one subcommand per module in `perfmodel/commands/`.

The CLI is the top of the toolkit: its commands drive collectors/ (`bench`, `collect`, `import`, `merge`) and read
runs through perfmodel/runs.py; the plan, the model and the reports below it never start a measurement.

The base install has neither torch nor triton (pyproject.toml): every command imports what it needs when it runs,
and a command whose extra is not installed ends in one sentence naming it (`EXTRAS`, `missing_extra`).

Every command runs with TRITON_INTERPRET out of its environment (`without_interpreter`), so it answers the same, in
the same time, whether or not the shell sets it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys

from kernels.workload import ConfigError
from perfmodel import __version__
from perfmodel.errors import UserError

# subcommand -> module under perfmodel.commands, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "predict": "predict",
    "model": "model",
    "bench": "bench",
    "collect": "collect",
    "merge": "merge",
    "runs": "runs",
    "import": "import_profile",
    "report": "report",
    "compare": "compare",
    "gates": "gates",
    "dashboard": "dashboard",
}

# the modules each optional-dependency group of pyproject.toml provides, and the commands that cannot run without it
EXTRAS: dict[str, tuple[str, ...]] = {
    "gpu": ("torch", "triton", "nvtx", "pynvml"),
    "dashboard": ("streamlit",),
}
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {  # command -> (extra, the modules checked before it runs)
    "bench": ("gpu", ("torch", "triton")),
    "collect": ("gpu", ("torch", "triton")),
    "dashboard": ("dashboard", ("streamlit",)),
}
DIST = "perfmodel"  # the distribution name of pyproject.toml, for `pip install`

DESCRIPTION = """\
Measure Triton flash-attention kernels on an NVIDIA H100 and compare them with the predictions of the
"Einstein inversion" plan and with each stage's speed-of-light bound.

  perfmodel predict --config B=16,H=16,S=2048,D=64,causal   what each model expects per stage (no GPU)
  perfmodel model check                                     where the plan contradicts itself or physics
  perfmodel collect --suite seed                            measure every stage + peers (H100; ncu)
  perfmodel report RUN                                      predicted vs measured, as HTML or Markdown
  perfmodel dashboard                                       the same, interactive (Streamlit)
"""


def _load(name: str):
    return importlib.import_module(f"perfmodel.commands.{COMMANDS[name]}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(command: str, module: str | None = None) -> str | None:
    """The sentence for `command` when the extra it needs is not installed (checked before it runs, or given the
    module whose import failed while it ran), else None."""
    if module is not None:
        extra = next((e for e, mods in EXTRAS.items() if module.split(".")[0] in mods), None)
        missing = [module.split(".")[0]]
    elif command in NEEDS:
        extra, modules = NEEDS[command]
        missing = [m for m in modules if not _installed(m)]
    else:
        return None
    if extra is None or not missing:
        return None
    return (f"`perfmodel {command}` needs the [{extra}] extra ({', '.join(missing)} not installed): "
            f"pip install '{DIST}[{extra}]' (from a clone: pip install -e '.[{extra}]').")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfmodel", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"perfmodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP + ".",
            epilog="examples:\n" + "\n".join(f"  {e}" for e in module.EXAMPLES),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


# Triton picks its CPU interpreter when a function is decorated, from TRITON_INTERPRET: at `import triton` for
# triton.language's own @jit helpers, and at the import of each kernel module, for the life of the process (forcing
# triton.knobs.runtime.interpret off afterwards leaves those helpers interpreted, and Gluon's import then fails).
# No command runs a kernel under the interpreter in this process (`collect --interpret` starts a child with the
# variable set, collectors/sweep/worker.py), while the census and the predictive model compile the stages for sm_90 in
# it (collectors/census/census.py), which an interpreted import turns into running the kernel on the CPU at full size.
INTERPRETER_VARIABLE = "TRITON_INTERPRET"


@contextlib.contextmanager
def without_interpreter():
    """Within the block TRITON_INTERPRET is not set (children started in it inherit that); restored after."""
    saved = os.environ.pop(INTERPRETER_VARIABLE, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[INTERPRETER_VARIABLE] = saved


def main(argv: list[str] | None = None) -> int:
    with without_interpreter():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    needs = missing_extra(args.command)
    if needs:
        print(f"perfmodel: error: {needs}", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except ModuleNotFoundError as e:
        needs = missing_extra(args.command, e.name or "")
        if not needs:
            raise
        print(f"perfmodel: error: {needs}", file=sys.stderr)
        return 2
    except (UserError, ConfigError) as e:
        print(f"perfmodel: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("perfmodel: interrupted; what was measured so far is kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
