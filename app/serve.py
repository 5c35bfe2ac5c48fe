"""`python -m app.serve [STREAMLIT RUN OPTIONS]`: Streamlit on streamlit_app.py, with the runs read while it starts.

`perfmodel dashboard` starts the dashboard through this module rather than `streamlit run`. It does what
`python -m streamlit run app/streamlit_app.py OPTIONS` does, in the same process, plus one background thread
that, once the server is up, imports the page modules and computes the analysis tables of the runs
(`app.data.warm`). Streamlit runs a page's script only when a browser connects, so without it the first page
would wait for those imports and analyses (about 2.5 s on a 2-core machine with the bundled run); with it they
run while the browser loads the page's JavaScript. The thread waits for the server first, because both need
the interpreter and the browser can do nothing before the server answers.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

APP_SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"


def _warm_when_serving(timeout_s: float = 30.0) -> None:
    from streamlit.runtime import Runtime
    from streamlit.runtime.runtime import RuntimeState

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if Runtime.exists() and Runtime.instance().state != RuntimeState.INITIAL:
            break
        time.sleep(0.02)
    from app import data

    data.warm(data.run_dirs())


def main(argv: list[str] | None = None) -> None:
    from streamlit.web import cli

    threading.Thread(target=_warm_when_serving, name="perfmodel-warm", daemon=True).start()
    # the command line `python -m streamlit run SCRIPT OPTIONS` would give Streamlit's CLI (it reads sys.argv)
    sys.argv = ["streamlit", "run", str(APP_SCRIPT), *(sys.argv[1:] if argv is None else argv)]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
