"""`perfmodel gates` (being built)."""

from perfmodel.errors import UserError

HELP = "gates (being built)"
EXAMPLES = ["perfmodel gates --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel gates is being built.")
