"""`perfmodel report` (being built)."""

from perfmodel.errors import UserError

HELP = "report (being built)"
EXAMPLES = ["perfmodel report --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel report is being built.")
