"""`perfmodel model` (being built)."""

from perfmodel.errors import UserError

HELP = "model (being built)"
EXAMPLES = ["perfmodel model --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel model is being built.")
