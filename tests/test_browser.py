"""The dashboard in a real browser: `perfmodel dashboard` on a free port, every page in headless Chromium.

Runs on both real runs bundled with the package: the default one (the H200 run of today's Gluon stages) and the
H100 run, named by its id, whose overview says its kernel code is not the installed one. Checks that each page
shows the run's GPU name and a drawn plotly chart, that the stage charts leave out the ceiling probe (config
"probe"), and saves a screenshot of each page (under pytest's tmp dir, and under $PERFMODEL_SCREENSHOT_DIR when
set; the H100 run's prefixed "h100-"). It measures and prints (run with -s)
the issue's figures: the first page fully drawn after `perfmodel dashboard` starts (target < 5 s), the first chart
after the browser navigates to the dashboard (issue 22: <= 2 s; a benchmark line, not an assertion), switching
pages (< 1 s), and the same with ten runs loaded. The asserted limits are looser than the targets, so that a
busy CI machine does not fail them; the printed figures are the ones to report. No page asks anything of another
host (Streamlit fetched a page icon's favicon from fonts.gstatic.com), and the toolbar has no "Deploy" button.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from perfmodel import runs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# sidebar link -> (page title, the title of a chart the page draws)
PAGES = [("Stages", "Stages", "Stages: predicted vs measured"), ("Constraints", "Constraints", "Constraints:"),
         ("Stalls", "Stall reasons", "Warp stall reasons"), ("Roofline", "Roofline", "Roofline:"),
         ("Batching", "Batching", "Batching:"), ("Runs", "Runs", "Run comparison")]
OVERVIEW = ("Predicted vs measured", "Stages: predicted vs measured")
# plotly has drawn a chart once its SVG holds plotted traces (bars, points or lines) and its title
TRACES = ".js-plotly-plot .main-svg .trace"
# every x value and trace name of every plotly chart on the page, read from the chart divs plotly drew
CHART_TEXT_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(
    gd => (gd._fullData || []).flatMap(t => [String(t.name || ''), ...Array.from(t.x || [], String)]))"""
CHART_X_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(
    gd => (gd._fullData || []).flatMap(t => Array.from(t.x || [])))"""
# the height of the page's content (Streamlit scrolls its main area itself, so a full-page screenshot of the
# window would stop at the viewport)
CONTENT_HEIGHT_JS = """() => Math.max(...Array.from(document.querySelectorAll('[data-testid="stMain"], body'),
    e => e.scrollHeight))"""
VIEWPORT = {"width": 1400, "height": 1000}

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - CI installs it (dev extra)
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


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
            time.sleep(0.05)
    raise TimeoutError("dashboard did not become healthy in time")


@contextmanager
def dashboard(run_dirs: list[Path]):
    """`perfmodel dashboard RUN...` on a free port; yields (url, process, monotonic start time)."""
    port = _free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "perfmodel", "dashboard", *map(str, run_dirs),
                             "--port", str(port), "--address", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", proc, started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def chromium():
    """A headless Chromium page; started before the dashboard, as a user's browser is, so that its own start-up
    is not counted in the dashboard's times."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def _first_page(page, url: str, proc, started: float) -> dict:
    """Open the overview once the server answers; seconds from the dashboard's start to each step, and from the
    navigation to the first chart plotly drew."""
    _wait_healthy(url, proc)
    healthy = time.monotonic() - started
    navigated = time.monotonic()
    page.goto(url)
    page.wait_for_selector(TRACES, state="attached", timeout=60_000)
    first_chart = time.monotonic() - navigated
    _wait_drawn(page, *OVERVIEW)
    return {"server": healthy, "first_chart": first_chart, "first_page": time.monotonic() - started}


def _elsewhere(page, url: str) -> list[str]:
    """Collect, from now on, every request the page makes to a host other than the dashboard's."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if not r.url.startswith((url, "data:", "blob:", "about:"))
            else None)
    return asked


def _wait_drawn(page, title: str, chart_title: str) -> None:
    """Wait for the page's heading and for plotly to have drawn the chart titled `chart_title` (a chart of the
    page before would not do: its title differs)."""
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)
    page.locator(".js-plotly-plot .gtitle", has_text=chart_title).first.wait_for(timeout=30_000)
    page.wait_for_selector(TRACES, state="attached", timeout=30_000)


def _switch(page, link: str, title: str, chart_title: str) -> float:
    t0 = time.monotonic()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link).click()
    _wait_drawn(page, title, chart_title)
    return time.monotonic() - t0


def _pages(run_dir: Path) -> list[tuple[str, str, str]]:
    """PAGES with a chart to wait for in this run: the Batching page draws none for a run of one batch size (the
    H200 run is the seed config alone)."""
    batching = "batching" in runs.load_run(run_dir).tables()
    return [p for p in PAGES if p[0] != "Batching" or batching]


H100 = "20261124-173318-custom-nvidia-h100-80gb-hbm3"  # bundled, named by its id
GPUS = {H100: "NVIDIA H100 80GB HBM3", "20261202-053909-seed-nvidia-h200": "NVIDIA H200"}


@pytest.fixture(scope="module", params=[None, H100], ids=["default", "h100"])
def bundled(request) -> Path:
    """The default run (no run given: the H200 run), then the H100 run by its id."""
    return runs.resolve_run_dirs([request.param] if request.param else None)[0]


@pytest.fixture(scope="module")
def gpu(bundled) -> str:
    name = runs.gpu_name(runs.load_run(bundled))
    assert name == GPUS[bundled.name]
    return name


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("PERFMODEL_SCREENSHOT_DIR"):
        extra = Path(os.environ["PERFMODEL_SCREENSHOT_DIR"])
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs


def _benchmark(line: str) -> None:
    """A benchmark figure: printed (seen with -s or on failure) and, where CI names a file in
    $PERFMODEL_BENCHMARK_LOG, appended there so that CI's log shows it (.ci/run prints the file)."""
    print("\n" + line)
    if os.environ.get("PERFMODEL_BENCHMARK_LOG"):
        with open(os.environ["PERFMODEL_BENCHMARK_LOG"], "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _shot(page, shots: list[Path], name: str) -> None:
    """Screenshot the whole page: the window is made as tall as the content for the shot."""
    first = shots[0] / f"{name}.png"
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(page.evaluate(CONTENT_HEIGHT_JS)), 6000)})
    page.wait_for_timeout(500)  # plotly redraws its charts for the new size
    page.screenshot(path=str(first))
    page.set_viewport_size(VIEWPORT)
    for d in shots[1:]:
        shutil.copy(first, d / first.name)


def _check_page(page, gpu: str, name: str) -> None:
    body = page.inner_text("body")
    assert gpu in body, name
    assert "Traceback" not in body, name
    assert page.locator(TRACES).count() >= 1, name
    assert "probe" not in " ".join(page.evaluate(CHART_TEXT_JS)), name  # the ceiling probe is not a stage


def test_every_page_in_chromium(bundled, gpu, shots):
    prefix = "h100-" if bundled.name == H100 else ""
    with chromium() as page, dashboard([bundled] if prefix else []) as (url, proc, started):
        elsewhere = _elsewhere(page, url)
        t = _first_page(page, url, proc, started)
        _check_page(page, gpu, "Overview")
        body = page.inner_text("body")
        assert "Gates" in body and "Headlines" in body
        assert "Deploy" not in body and page.locator('[data-testid="stAppDeployButton"]').count() == 0
        # the kernel-code line: always for the H100 run, for the default run only where kernels/ was edited since
        code = runs.kernel_code(runs.load_run(bundled))
        assert ("Kernel code: " in body) == bool(code.line)
        if prefix:
            assert f"Kernel code: measured with kernel code that differs from the installed kernels/ (run: " \
                   f"{code.run_hash}, backfilled from git commit 3127b5c" in body
        _shot(page, shots, prefix + "overview")
        switches = {}
        for link, title, chart_title in _pages(bundled):
            switches[link] = _switch(page, link, title, chart_title)
            _check_page(page, gpu, link)
            _shot(page, shots, prefix + link.lower())
        if "batching" in runs.load_run(bundled).tables():  # the batching chart carries the run's batch sizes
            _switch(page, "Batching", "Batching", "Batching:")
            assert {c["B"] for c in runs.load_run(bundled).meta["configs"]} <= set(page.evaluate(CHART_X_JS))
        assert elsewhere == [], elsewhere  # every page works offline
    _benchmark(f"benchmark: dashboard first chart {t['first_chart']:.2f} s after navigation (issue 22 goal <= 2 s), "
               f"bundled run {bundled.name}")
    print(f"dashboard, bundled run {bundled.name}: server healthy {t['server']:.2f} s after start, first page drawn "
          f"{t['first_page']:.2f} s after start; page switches (s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in switches.items())
          + f"; screenshots in {', '.join(str(d) for d in shots)}")
    assert t["first_page"] < 30
    assert max(switches.values()) < 10


def test_ten_runs(tmp_path):
    bundled = runs.default_run_dir()
    gpu = runs.gpu_name(runs.load_run(bundled))
    dirs = []
    for i in range(10):
        d = tmp_path / f"{bundled.name}-copy{i}"
        shutil.copytree(bundled, d)
        meta = json.loads((d / "run.json").read_text())
        meta["run_id"] = f"{meta['run_id']}-copy{i}"
        (d / "run.json").write_text(json.dumps(meta))
        dirs.append(d)
    with chromium() as page, dashboard(dirs) as (url, proc, started):
        t = _first_page(page, url, proc, started)
        _check_page(page, gpu, "Overview")
        switches = {link: _switch(page, link, *titles) for link, *titles in _pages(bundled)}
        assert "copy9" in page.inner_text("body")  # the Runs page lists the tenth run
    print(f"\ndashboard, ten runs: first page drawn {t['first_page']:.2f} s after start; page switches (s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in switches.items()))
    assert t["first_page"] < 30
    assert max(switches.values()) < 10


def test_html_report_draws_every_chart_with_the_basic_plotly_bundle(tmp_path):
    # the report embeds plotly.js's basic partial bundle (bar, scatter, pie): every figure must still draw, offline,
    # without a console error, and the file stays small
    from perfmodel.cli import main

    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out)]) == 0  # the default bundled run
    assert out.stat().st_size <= 1.5 * 2**20, out.stat().st_size
    errors: list[str] = []
    with chromium() as page:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        n_figs = page.locator(".fig").count()
        page.wait_for_function(f"document.querySelectorAll('.fig .main-svg').length >= {n_figs}", timeout=30000)
        drawn = page.evaluate("() => Array.from(document.querySelectorAll('.fig')).filter("
                              "d => d.querySelector('.main-svg .trace')).length")
    assert n_figs > 0 and drawn == n_figs, (drawn, n_figs)
    assert not errors, errors
