"""`gluelab dashboard` in headless Chromium: every page opens without a Streamlit exception; screenshots are kept.

Screenshots go to `test-artifacts/screenshots/` (override with $GLUELAB_SCREENSHOTS).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.test_dashboard import PAGES

CHROMIUM = "/usr/bin/chromium"
# Chromium's background services try to reach Google; on a closed network that only adds noise and delay.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("GLUELAB_SCREENSHOTS", Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots")
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard_url(dashboard_stores):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "dashboard",
            "--port",
            str(port),
            "--store",
            str(dashboard_stores["evaluated"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"gluelab dashboard did not start:\n{server.stdout.read()}")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=20)


def test_every_page_opens_in_chromium_without_an_exception(dashboard_url):
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does this)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        for file in PAGES:
            path = "" if file == "overview.py" else file.removesuffix(".py")
            page.goto(f"{dashboard_url}/{path}")
            page.wait_for_selector("h1", timeout=60_000)
            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
            page.wait_for_timeout(1500)  # let Plotly draw
            page.screenshot(path=SCREENSHOTS / f"{file.removesuffix('.py')}.png", full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0, (
                f"{file}: {page.locator('[data-testid=stException]').first.inner_text()}"
            )
            assert page.locator("h1").first.inner_text().strip(), file
        browser.close()
