"""Real-browser end-to-end: Playwright drives Debian's Chromium against `streamlit run app.py` on
localhost through the whole default path — the landing page (first) → setup with Stage 1 scores → space with the
capability probes on the map → lasso on the map → exclude → compress → cancel → compare → prompts side by side.
Screenshots of every page land in ``test-artifacts/`` (``COLA_TEST_ARTIFACTS`` overrides; the path is printed).
`.ci/run` installs Chromium; elsewhere the test skips without it."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("COLA_TEST_ARTIFACTS", ROOT / "test-artifacts"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {**os.environ, "COLA_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "server.log").open("w")  # the server's output: a test reads it for tracebacks
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    yield url, tmp_path / "cache"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _shot(page, name: str, height: int | None = None) -> None:
    """A screenshot; ``height``: a taller viewport for it, since Streamlit scrolls inside its own container
    (``full_page`` alone stops at the window)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    if height:
        page.set_viewport_size({"width": size["width"], "height": height})
        page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    print(f"screenshot: {ARTIFACTS / f'{name}.png'}")
    if height:
        page.set_viewport_size(size)


def _lasso(page) -> None:
    """Drag a closed lasso over the middle of the map's plot area (scrolled into view first: the mouse
    only reaches what the window shows)."""
    plot = page.locator(".nsewdrag").first
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    cx, cy, rx, ry = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] / 3, box["height"] / 3
    page.mouse.move(cx - rx, cy - ry)
    page.mouse.down()
    for x, y in ((cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry), (cx - rx, cy - ry)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def _statuses(cache: Path) -> list[str]:
    with sqlite3.connect(cache / "runs.sqlite") as db:
        return [r[0] for r in db.execute("SELECT status FROM runs WHERE calibration != 'dense' ORDER BY id")]


def test_default_path_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright

    url, cache = server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        requests: list[str] = []  # offline for real (issue #30): no request to any host but the server
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)  # the landing page comes first: three stages, the stepper, the way to Setup
        expect(page.get_by_role("heading", name="COLA Studio")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Stage 3 · which samples.")).to_be_visible()
        expect(page.locator("svg[aria-label='COLA in three stages']")).to_be_visible()
        _shot(page, "0-landing", height=1300)
        page.get_by_role("button", name="Start: choose the model and corpora on Setup →").click()
        expect(page.get_by_text("Loaded cola-tiny")).to_be_visible(timeout=120_000)
        page.get_by_role("button", name="Score the corpora").click()
        expect(page.get_by_text("Shares of the calibration set per corpus")).to_be_visible(timeout=240_000)
        page.wait_for_timeout(1500)
        _shot(page, "1-setup")

        page.get_by_role("link", name="Activation space & selection").click()
        page.get_by_role("button", name="Build space").click()
        expect(page.get_by_text("Lasso/box selection: 0 samples")).to_be_visible(timeout=240_000)
        _lasso(page)
        heading = page.get_by_text("Lasso/box selection:")
        expect(heading).not_to_have_text("Lasso/box selection: 0 samples", timeout=60_000)
        picked = int(heading.inner_text().split(":")[1].split()[0])
        assert picked > 0
        page.get_by_role("button", name="Exclude from the calibration set").click()
        expect(page.get_by_text(f"Manual edits: 0 forced in, {picked} excluded.")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("math probes", exact=True)).to_be_visible()  # capability coverage beside the metrics
        expect(page.locator(".legendtext", has_text="held-out probe: math")).to_have_count(1)  # on the map
        page.get_by_role("heading", name="Activation space").scroll_into_view_if_needed()  # metrics and map in view
        _shot(page, "2-space", height=1700)

        page.get_by_role("link", name="Compress", exact=True).click()
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page.get_by_role("link", name="Compare finished runs →")).to_be_visible(timeout=300_000)
        assert _statuses(cache) == ["done"]
        page.get_by_label("Seeds", exact=True).fill("1,2")
        page.get_by_role("button", name="Launch", exact=True).click()
        cancel = page.get_by_role("button", name="Cancel run 3")  # runs 2 and 3: seeds 1 and 2
        expect(cancel).to_be_visible(timeout=60_000)
        cancel.click()
        deadline = time.time() + 300
        while time.time() < deadline and any(s in ("queued", "running") for s in _statuses(cache)):
            time.sleep(1)
        assert sorted(_statuses(cache)) == ["cancelled", "done", "done"]
        page.wait_for_timeout(2500)  # the jobs panel polls once a second
        _shot(page, "3-compress")

        page.get_by_role("link", name="Compare", exact=True).click()
        expect(page.get_by_text("Retention (compressed ÷ dense, higher is better)")).to_be_visible(timeout=120_000)
        page.get_by_role("button", name="Answer with every model").click()
        expect(page.locator("table").filter(has_text="Question: What is 3 plus 4?")).to_be_visible(timeout=120_000)
        _shot(page, "4-compare")
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()
    local = (url, "data:", "blob:", "about:")
    assert [r for r in requests if not r.startswith(local)] == [], "requests left the server"
    assert "Traceback" not in (cache.parent / "server.log").read_text()


def test_two_sessions_at_once_keep_their_own_state_and_queue_jobs(server):
    from playwright.sync_api import expect, sync_playwright

    url, cache = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        pages = [browser.new_context(viewport={"width": 1500, "height": 1000}).new_page() for _ in range(2)]
        for page in pages:
            page.goto(url)
        for page in pages:
            page.get_by_role("button", name="Start: choose the model and corpora on Setup →").click()
        for page in pages:
            expect(page.get_by_text("Loaded cola-tiny")).to_be_visible(timeout=120_000)
            page.get_by_role("link", name="Activation space & selection").click()
        for page in pages:  # both ask for the same space at once: it is prepared once and shared
            page.get_by_role("button", name="Build space").click()
        for page in pages:
            expect(page.get_by_text("Lasso/box selection: 0 samples")).to_be_visible(timeout=240_000)
        first, second = pages
        _lasso(first)
        expect(first.get_by_text("Lasso/box selection: 0 samples")).not_to_be_visible(timeout=60_000)
        first.get_by_role("button", name="Exclude from the calibration set").click()
        expect(first.get_by_text("Manual edits: 0 forced in")).to_be_visible(timeout=60_000)
        for page in pages:  # UMAP in both sessions at once: serialised by the map lock, no crash
            page.get_by_text("UMAP", exact=True).click()
        for page in pages:
            expect(page.get_by_text("PCA preview while UMAP computes")).not_to_be_visible(timeout=300_000)
            expect(page.locator(".nsewdrag").first).to_be_visible(timeout=60_000)
        assert second.get_by_text("Manual edits:").count() == 0  # the other session's edits stay its own
        for page in pages:
            page.get_by_role("link", name="Compress", exact=True).click()
        for page in pages:
            page.get_by_role("button", name="Launch", exact=True).click()
        deadline = time.time() + 300
        while time.time() < deadline and (len(_statuses(cache)) < 2 or any(s != "done" for s in _statuses(cache))):
            time.sleep(1)
        assert _statuses(cache) == ["done", "done"]  # queued one after the other, both finished
        for i, page in enumerate(pages):
            page.wait_for_timeout(1500)
            _shot(page, f"5-session-{i + 1}")
        browser.close()
