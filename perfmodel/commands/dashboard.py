"""`perfmodel dashboard [RUN_DIR ...] [--port N]`: the Streamlit dashboard on the given runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HELP = "interactive dashboard (Streamlit) of one or more runs"
EXAMPLES = [
    "perfmodel dashboard                                # the bundled H100 run, on http://localhost:8501",
    "perfmodel dashboard runs/a runs/b --port 8600      # two runs; the Runs page compares them",
    "perfmodel dashboard runs/a --address 0.0.0.0       # reachable from other machines",
]

ENV_VAR = "PERFMODEL_RUN_DIRS"  # read by app/data.py


def add_arguments(parser):
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run folders (default: the bundled run)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument("--address", default="localhost", help="address to bind (default localhost)")


def app_script() -> Path:
    import app

    return Path(app.__file__).resolve().parent / "streamlit_app.py"


def command(run_dirs: list[Path], port: int, address: str) -> list[str]:
    """The `streamlit run` command line the dashboard is started with."""
    return [sys.executable, "-m", "streamlit", "run", str(app_script()),
            "--server.headless", "true", "--server.port", str(port), "--server.address", address,
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
            "--", *[str(p) for p in run_dirs]]


def run(args) -> int:
    from perfmodel import runs
    from perfmodel.errors import UserError

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}.")
    dirs = [d.resolve() for d in runs.resolve_run_dirs(args.runs)]
    for d in dirs:  # fail here, in one sentence, rather than inside the browser
        runs.load_run(d)
    env = dict(os.environ, **{ENV_VAR: os.pathsep.join(str(d) for d in dirs)})
    print(f"perfmodel dashboard on http://{address_for_url(args.address)}:{args.port} with "
          f"{len(dirs)} run(s); Ctrl-C stops it.", flush=True)
    try:
        return subprocess.call(command(dirs, args.port, args.address), env=env)
    except KeyboardInterrupt:
        return 0


def address_for_url(address: str) -> str:
    return "localhost" if address in ("0.0.0.0", "::") else address
