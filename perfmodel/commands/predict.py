"""`perfmodel predict` (being built)."""

from perfmodel.errors import UserError

HELP = "predict (being built)"
EXAMPLES = ["perfmodel predict --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel predict is being built.")
