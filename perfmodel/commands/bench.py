"""`perfmodel bench` (being built)."""

from perfmodel.errors import UserError

HELP = "bench (being built)"
EXAMPLES = ["perfmodel bench --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel bench is being built.")
