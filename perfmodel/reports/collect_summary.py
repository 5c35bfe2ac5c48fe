"""What a finished collection tells whoever started it: `perfmodel collect` prints it, `perfmodel.collect` warns it.

- `findings(run)`: one line per case that failed or was wrong (implementation, config, the reason the run
  recorded), per census that failed, and the run's other problems (a compile's logs, a ceiling, Nsight Compute)
  and throttled GPU: what a user must not have to dig out of the tables. A case or census whose failed compile
  left logs gets the line that names them (run.json's `problems`) instead of a second one.
- `yours_failed(run)`: the user's implementations (`--impl`, kind "user" in run.json) when every one of them
  failed or was wrong in all its cases, so nothing of theirs was measured; empty otherwise (also when the run
  has none). `perfmodel collect` then exits with `YOURS_FAILED_EXIT`: the run itself is kept and complete, and
  stages or peers that fail never change the exit status.
"""

from __future__ import annotations

import pandas as pd

from perfmodel.reports.gpu_state import run_throttled_line
from perfmodel.runs import Run

BAD_CASE = ("failed", "wrong")  # case statuses that mean the implementation did not give a correct output
YOURS_FAILED_EXIT = 1  # `perfmodel collect`'s exit status when no kernel of yours gave a correct output (2: bad input)


def _lines(frame: pd.DataFrame, prefix: str, statuses) -> list[tuple[str, str]]:
    """(what, line) per row of `frame` whose status is in `statuses`: what = '<prefix><impl> <config_id>'."""
    if frame.empty:
        return []
    out = []
    for r in frame[frame["status"].isin(statuses)].itertuples():
        what = f"{prefix}{r.impl} {r.config_id}"
        reason = str(r.error) if isinstance(r.error, str) and r.error.strip() else "no reason recorded"
        verb = "is wrong" if r.status == "wrong" else "failed"
        out.append((what, f"{what} {verb}: {reason}"))
    return out


def findings(run: Run) -> list[str]:
    """The lines to show after a collection (see the module docstring), cases first, then censuses, then the rest."""
    problems = [str(p) for p in run.meta.get("problems") or []]
    lines = []
    for what, line in _lines(run.table("cases"), "", BAD_CASE) + _lines(run.table("census"), "census ", ("failed",)):
        noted = next((p for p in problems if p.startswith(f"{what} failed (")), None)
        if noted is not None:
            problems.remove(noted)
        lines.append(noted or line)
    throttled = run_throttled_line(run)
    return lines + problems + ([throttled] if throttled else [])


def _user_impls(run: Run) -> list[str]:
    return [str(i.get("name")) for i in run.meta.get("impls") or []
            if isinstance(i, dict) and i.get("kind") == "user" and i.get("name")]


def yours_failed(run: Run) -> list[str]:
    """The user's implementations when none of them gave one correct output (each has a failed or wrong case and
    no ok one), else []."""
    users = _user_impls(run)
    cases = run.table("cases")
    if not users or cases.empty:
        return []
    for name in users:
        statuses = set(cases.loc[cases["impl"] == name, "status"])
        if "ok" in statuses or not statuses & set(BAD_CASE):
            return []
    return users


def yours_failed_sentence(run: Run, names: list[str]) -> str:
    """The one sentence saying that no kernel of the user's gave a correct output."""
    which = ", ".join(names)
    return (f"no kernel of yours gave a correct output ({which}: every case failed or was wrong, see the lines "
            f"above); the run is kept in {run.path}.")
