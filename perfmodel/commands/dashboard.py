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


def command(run_dirs: list[Path], port: int, address: str) -> list[str]:
    """The command line the dashboard is started with: `streamlit run app/streamlit_app.py` through app/serve.py,
    which also reads the runs (named in $PERFMODEL_RUN_DIRS) while the server starts."""
    return [sys.executable, "-m", "app.serve",
            "--server.headless", "true", "--server.port", str(port), "--server.address", address,
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
            "--", *[str(p) for p in run_dirs]]


def run(args) -> int:
    from perfmodel.errors import UserError

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}.")
    if args.runs:
        dirs = [Path(d).expanduser().resolve() for d in args.runs]
        env = dict(os.environ, **{ENV_VAR: os.pathsep.join(str(d) for d in dirs)})
    else:  # the bundled run: app/data.py finds it itself
        dirs, env = [], {k: v for k, v in os.environ.items() if k != ENV_VAR}
    # The server starts while the runs are checked here (reading a run needs pandas: most of a second); a run
    # that cannot be read stops it again and ends in one sentence, before any browser sees it.
    proc = subprocess.Popen(command(dirs, args.port, args.address), env=env)
    try:
        from perfmodel import runs

        for d in runs.resolve_run_dirs(dirs):
            runs.load_run(d)
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    print(f"perfmodel dashboard on http://{address_for_url(args.address)}:{args.port} with "
          f"{max(len(dirs), 1)} run(s); Ctrl-C stops it.", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        return 0


def address_for_url(address: str) -> str:
    return "localhost" if address in ("0.0.0.0", "::") else address
