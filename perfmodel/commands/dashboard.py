"""`perfmodel dashboard [RUN_DIR ...] [--port N]`: the Streamlit dashboard on the given runs.

One process to stop: SIGINT or SIGTERM to `perfmodel dashboard` stop the Streamlit server it started (and the
server also ends if this process is killed outright). The server runs in a session of its own, so Ctrl-C in the
terminal reaches this process alone, which stops the server once (one "Stopping...", not one per signal). A busy
port is refused before the server starts, and the success line is printed only once the server accepts
connections. The server shows no "Deploy" button (`--client.toolbarMode minimal`): this is a local viewer.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HELP = "interactive dashboard (Streamlit) of one or more runs"
EXAMPLES = [
    "perfmodel dashboard                                # the newest bundled run, on http://localhost:8501",
    "perfmodel dashboard runs/a runs/b --port 8600      # two runs; the Runs page compares them",
    "perfmodel dashboard runs/a --address 0.0.0.0       # reachable from other machines",
]

ENV_VAR = "PERFMODEL_RUN_DIRS"  # read by app/data.py


def add_arguments(parser):
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="run folders or bundled run ids (default: the newest bundled run, one that measured "
                             "the installed kernels first)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument("--address", default="localhost", help="address to bind (default localhost)")


def command(run_dirs: list[Path], port: int, address: str) -> list[str]:
    """The command line the dashboard is started with: `streamlit run app/streamlit_app.py` through app/serve.py,
    which also reads the runs (named in $PERFMODEL_RUN_DIRS) while the server starts."""
    return [sys.executable, "-m", "app.serve",
            "--server.headless", "true", "--server.port", str(port), "--server.address", address,
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal",
            "--", *[str(p) for p in run_dirs]]


def run(args) -> int:
    from perfmodel.errors import UserError

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}.")
    busy = port_problem(args.address, args.port)
    if busy:
        raise UserError(busy)
    if args.runs:
        from perfmodel.runs import resolve_run_dirs

        # a bundled run's id names it here as in report and gates; the server starts in another folder
        dirs = [Path(d).expanduser().resolve() for d in resolve_run_dirs(args.runs)]
        env = dict(os.environ, **{ENV_VAR: os.pathsep.join(str(d) for d in dirs)})
    else:  # the bundled run: app/data.py finds it itself
        dirs, env = [], {k: v for k, v in os.environ.items() if k != ENV_VAR}
    from runstore.safe_io import child_process_options, sigterm_as_interrupt

    # The server starts while the runs are checked here (reading a run needs pandas: most of a second); a run
    # that cannot be read stops it again and ends in one sentence, before any browser sees it. The server ends
    # with this process: SIGINT or SIGTERM to it stop the server too, and so does its death (child_process_options).
    # Its own session: a terminal's Ctrl-C signals this process only, never both (the server would stop twice).
    proc = subprocess.Popen(command(dirs, args.port, args.address), env=env, start_new_session=True,
                            **child_process_options())
    try:
        with sigterm_as_interrupt():
            from perfmodel import runs

            for d in runs.resolve_run_dirs(dirs):
                problem = runs.load_run(d).missing_tables_problem()
                if problem:  # every page shows it too
                    print(f"perfmodel: warning: {problem}", file=sys.stderr, flush=True)
            wait_serving(proc, args.address, args.port)
            print(f"perfmodel dashboard on http://{address_for_url(args.address)}:{args.port} with "
                  f"{max(len(dirs), 1)} run(s); Ctrl-C stops it.", flush=True)
            return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM: the server is stopped below
        return 0
    finally:
        stop(proc)


STOP_GRACE_S = 10.0
SERVE_TIMEOUT_S = 120.0


def stop(proc: subprocess.Popen) -> None:
    """End the server: SIGTERM, STOP_GRACE_S to shut down, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _bind_targets(address: str, port: int) -> list[tuple]:
    try:
        infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return []
    return list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))


def port_problem(address: str, port: int) -> str | None:
    """Why the dashboard cannot listen on address:port (another process listens there), or None."""
    targets = _bind_targets(address, port)
    if not targets:
        return f"--address {address!r} is not an address of this machine."
    for family, sockaddr in targets:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no obstacle
            try:
                s.bind(sockaddr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return (f"port {port} on {address} is already in use (another dashboard?); stop that "
                            f"process or pass another --port.")
                if e.errno == errno.EADDRNOTAVAIL and len(targets) > 1:
                    continue  # e.g. no IPv6 here while localhost also names ::1
                return f"cannot listen on {address}:{port} ({e.strerror or e})."
    return None


def wait_serving(proc: subprocess.Popen, address: str, port: int, timeout_s: float = SERVE_TIMEOUT_S) -> None:
    """Return once the server accepts connections on the port; UserError if it exits first or never does."""
    from perfmodel.errors import UserError

    host = "127.0.0.1" if address in ("0.0.0.0", "") else "::1" if address == "::" else address
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the Streamlit server stopped before serving (exit status {proc.returncode}); "
                            "its own message is above.")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise UserError(f"the Streamlit server did not answer on {address}:{port} within {timeout_s:.0f} s.")


def address_for_url(address: str) -> str:
    return "localhost" if address in ("0.0.0.0", "::") else address
