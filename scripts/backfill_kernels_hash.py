"""Record, once, the kernel code of the committed runs made before `perfmodel collect` stored it.

`perfmodel collect` writes run.json `environment.kernels_hash` (kernels.source.kernels_code: a hash of the installed
kernels package's sources) so that a report, the dashboard and `perfmodel runs` can say when a run measured other
kernel code than the installed one. The runs committed before that field existed name only their git commit
(`environment.git_commit`). For each of them this script reads the kernels package at that commit out of git (the
files kernels.source.is_kernels_source covers), hashes it with the function collect uses on the installed package
(kernels.source.kernels_digest), and writes the result into the run's own run.json: `kernels_hash`,
`kernels_files` and `kernels_hash_source` ("backfilled from git commit X", and what run.json says of uncommitted
changes, which git cannot show).

Why in each run.json and not in a table of its own under perfmodel/data/: the fact is about one run and travels
with it (a bundled run inside an installed wheel, a copied run folder), every reader then has one place to look for
every run, old or new, and `kernels_hash_source` keeps a backfilled hash apart from one collect recorded.

A run that already has a kernels_hash, or whose commit this checkout does not hold, is left as it is, so the script
can run again without changing anything; `--again` hashes the backfilled ones again (after kernels.source changed
which files count), never one that collect recorded. The file is rewritten as the run store writes it
(runstore.safe_io.atomic_write_json), its other fields untouched.

    python scripts/backfill_kernels_hash.py             # every run.json under runs/ and perfmodel/bundled/
    python scripts/backfill_kernels_hash.py --check     # only say what it would write
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernels.source import is_kernels_source, kernels_digest  # noqa: E402
from runstore.safe_io import atomic_write_json  # noqa: E402

PACKAGE = "kernels"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


def kernels_at(commit: str) -> dict[str, bytes] | None:
    """{path inside the kernels package: contents} at `commit`, or None when this checkout does not hold it."""
    listing = _git("ls-tree", "-r", "-z", "--name-only", commit, "--", f"{PACKAGE}/")
    if listing.returncode != 0:
        return None
    files = {}
    for path in filter(None, listing.stdout.decode().split("\0")):
        name = path.removeprefix(f"{PACKAGE}/")
        if is_kernels_source(name):
            files[name] = _git("cat-file", "blob", f"{commit}:{path}").stdout
    return files or None


def source_text(commit: str, dirty) -> str:
    text = f"backfilled from git commit {commit[:12]}"
    if dirty is True:
        return text + ", whose tree had uncommitted changes"
    if dirty is None:
        return text + ", uncommitted changes not recorded"
    return text


def backfill(path: Path, write: bool, again: bool = False) -> str:
    meta = json.loads(path.read_text())
    env = meta.get("environment")
    if not isinstance(env, dict):
        return "no environment: left as it is"
    backfilled = str(env.get("kernels_hash_source") or "").startswith("backfilled")
    if env.get("kernels_hash") and not (again and backfilled):
        return f"has kernels_hash {env['kernels_hash']} ({env.get('kernels_hash_source')}): left as it is"
    commit = env.get("git_commit")
    files = kernels_at(str(commit)) if commit else None
    if files is None:
        return f"git commit {commit!r} is not in this checkout: left as it is"
    env.update(kernels_digest(files), kernels_hash_source=source_text(str(commit), env.get("git_dirty")))
    if write:
        atomic_write_json(path, meta)
    return f"kernels_hash {env['kernels_hash']} ({len(files)} files), {env['kernels_hash_source']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run.json files (default: every committed run's)")
    parser.add_argument("--check", action="store_true", help="say what would be written, write nothing")
    parser.add_argument("--again", action="store_true",
                        help="hash the runs backfilled before again (after kernels.source changed which files count); "
                             "a hash collect recorded is never touched")
    args = parser.parse_args(argv)
    paths = args.runs or sorted([*ROOT.glob("runs/*/run.json"), *ROOT.glob("perfmodel/bundled/*/run.json")])
    for path in paths:
        print(f"{path.relative_to(ROOT) if path.is_absolute() else path}: {backfill(path, not args.check, args.again)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
