"""Errors a user can cause. The CLI prints their message as one sentence and exits non-zero, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment (bad config, no GPU, ncu missing, corrupt run folder)."""

    exit_code = 2
