"""`perfmodel dashboard` (being built)."""

from perfmodel.errors import UserError

HELP = "dashboard (being built)"
EXAMPLES = ["perfmodel dashboard --help"]


def add_arguments(parser):
    pass


def run(args):
    raise UserError("perfmodel dashboard is being built.")
