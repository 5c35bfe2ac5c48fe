"""`perfmodel collect` (being built)."""

from perfmodel.errors import UserError

HELP = "collect (being built)"
EXAMPLES = ["perfmodel collect --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel collect is being built.")
