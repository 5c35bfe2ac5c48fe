"""The `perfmodel` command line: `main(argv) -> int`, one subcommand per module in `perfmodel/commands/`.

The CLI is the top of the toolkit, so it is the one place in `perfmodel/` that reaches back to `collectors/`
(for `bench` and `collect`); the analysis modules never do.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from perfmodel import __version__
from kernels.workload import ConfigError
from perfmodel.errors import UserError

# subcommand -> module under perfmodel.commands, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "predict": "predict",
    "model": "model",
    "bench": "bench",
    "collect": "collect",
    "runs": "runs",
    "import": "import_profile",
    "report": "report",
    "compare": "compare",
    "gates": "gates",
    "dashboard": "dashboard",
}

DESCRIPTION = """\
Measure Triton flash-attention kernels on an NVIDIA H100 and compare them with the predictions of the
"Einstein inversion" plan and of a first-principles model.

  perfmodel predict --config B=16,H=16,S=2048,D=64,causal   what each model expects per stage (no GPU)
  perfmodel model check                                     where the plan contradicts itself or physics
  perfmodel collect --suite seed                            measure every stage + peers (H100; ncu)
  perfmodel report RUN                                      predicted vs measured, as HTML or Markdown
  perfmodel dashboard                                       the same, interactive (Streamlit)
"""


def _load(name: str):
    return importlib.import_module(f"perfmodel.commands.{COMMANDS[name]}")


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (UserError, ConfigError) as e:
        print(f"perfmodel: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("perfmodel: interrupted; what was measured so far is kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
