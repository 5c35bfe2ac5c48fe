"""The dashboard in a real browser: `perfmodel dashboard` on a free port, every page in headless Chromium.

Checks that each page shows the run's GPU name and a rendered plotly chart, saves a screenshot of each (under
pytest's tmp dir, and under $PERFMODEL_SCREENSHOT_DIR when set), and measures the first page's render time after
the server starts and the time to switch pages (printed; run with -s to see them). The issue's figures: first
page under 5 s, page switch under 1 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from synthetic_run import GPU, synthetic_run_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = [("Stages", "Stages"), ("Constraints", "Constraints"), ("Stalls", "Stall reasons"),
         ("Roofline", "Roofline"), ("Batching", "Batching"), ("Runs", "Runs")]
CHART = ".js-plotly-plot .main-svg"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - CI installs it (dev extra)
    sync_playwright = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("dashboard did not become healthy in time")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("PERFMODEL_SCREENSHOT_DIR"):
        extra = Path(os.environ["PERFMODEL_SCREENSHOT_DIR"])
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs


def _shot(page, shots: list[Path], name: str) -> None:
    first = shots[0] / f"{name}.png"
    page.screenshot(path=str(first), full_page=True)
    for d in shots[1:]:
        shutil.copy(first, d / first.name)


@pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')")
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_every_page_in_chromium(synthetic_run_dir, shots):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "perfmodel", "dashboard", str(synthetic_run_dir),
                             "--port", str(port), "--address", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        with sync_playwright() as p:
            # the browser starts while the server boots; its own start-up is not the dashboard's time
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            launch_s = time.monotonic() - started
            _wait_healthy(url, proc)
            server_s = time.monotonic() - started
            t0 = time.monotonic()
            page.goto(url)
            page.get_by_role("heading", name="Predicted vs measured").wait_for(timeout=30_000)
            page.wait_for_selector(CHART, timeout=30_000)
            render_s = time.monotonic() - t0
            first_s = max(server_s, launch_s) + render_s
            assert GPU in page.inner_text("body")
            _shot(page, shots, "overview")
            switches = {}
            for link, title in PAGES:
                t0 = time.monotonic()
                page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link).click()
                page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)
                page.wait_for_selector(CHART, timeout=30_000)
                switches[link] = time.monotonic() - t0
                body = page.inner_text("body")
                assert GPU in body, link
                assert page.locator(CHART).count() >= 1, link
                assert "Traceback" not in body, link
                _shot(page, shots, link.lower())
            browser.close()
        print(f"\ndashboard: server healthy {server_s:.2f} s after start, first page rendered {render_s:.2f} s "
              f"later: {first_s:.2f} s in all (browser launch {launch_s:.2f} s overlapped); page switches (s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in switches.items())
              + f"; screenshots in {', '.join(str(d) for d in shots)}")
        assert first_s < 30  # generous for CI; the figure to reach (5 s) is reported, not asserted
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
