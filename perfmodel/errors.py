"""Errors a user can cause. The CLI prints their message as one sentence and exits non-zero, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment (bad config, no GPU, ncu missing, corrupt run folder)."""

    exit_code = 2


class CollectWarning(UserWarning):
    """What `perfmodel.collect` found wrong in the run it returns (a case or census that failed, a kernel that is
    wrong, the run's problems): the lines `perfmodel collect` prints as warnings, one warning each."""
