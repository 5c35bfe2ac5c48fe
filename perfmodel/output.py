"""Writing what a command produces (a report, a bench CSV) whole or not at all.

Light on purpose: it imports neither plotly nor pandas, so the commands that run on the GPU machine (which has
neither plotly nor streamlit) write their outputs through it too."""

from __future__ import annotations

from pathlib import Path

from perfmodel.errors import UserError
from runstore.safe_io import atomic_write_text


def write_output(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it, renamed over it, so a full disk or a crash never
    leaves a truncated output where a good one was (UserError with the reason)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}.") from None
