"""`perfmodel runs` (being built)."""

from perfmodel.errors import UserError

HELP = "runs (being built)"
EXAMPLES = ["perfmodel runs --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel runs is being built.")
