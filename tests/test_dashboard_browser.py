"""`gluelab dashboard` in headless Chromium: every page opens without a Streamlit exception, and an engineer's
evaluation request goes through the queue to a real `gluelab worker`; screenshots are kept.

Screenshots go to `test-artifacts/screenshots/` (override with $GLUELAB_SCREENSHOTS).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dashboard import roles
from engine.cli import main as gluelab
from engine.report import REPORT_FILE_NAME
from tests.conftest import generated_store, without_date
from tests.test_dashboard import PAGES

pytestmark = pytest.mark.heavy  # dashboard servers, a worker and Chromium

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


def wait_until_healthy(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{what} did not start:\n{process.stdout.read() if process.stdout else ''}")
            time.sleep(0.5)


@contextmanager
def gluelab_dashboard(store: Path, *arguments: str) -> Iterator[str]:
    """`gluelab dashboard --store STORE ARGUMENTS` on a free port; yields its URL once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "dashboard", "--port", str(port), "--store", str(store), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://localhost:{port}"
    try:
        wait_until_healthy(url, server, "gluelab dashboard")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def dashboard_url(dashboard_stores):
    """One dashboard server on the evaluated store for every test of this module that only reads it."""
    with gluelab_dashboard(dashboard_stores["evaluated"]) as url:
        yield url


# True once Plotly has drawn every chart of the page (an SVG in each of Streamlit's chart elements).
PLOTLY_DRAWN = (
    "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')].every(c => c.querySelector('.main-svg'))"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module's tests; each test opens pages in a context of its own."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does this)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def new_page(browser: Browser, **options) -> Page:
    """A page in a fresh context (its own cookies and session), 1400 px wide."""
    return browser.new_context(viewport={"width": 1400, "height": 2400}, **options).new_page()


def test_every_page_opens_in_chromium_without_an_exception(dashboard_url, browser):
    """The first page is loaded by its address; every other one is reached as a user reaches it, through the
    sidebar's link, in the same session."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page(browser)
    for file in PAGES:
        path = "" if file == "overview.py" else file.removesuffix(".py")
        if file == PAGES[0]:
            page.goto(f"{dashboard_url}/{path}")
            settled(page)
        else:
            previous = page.locator("h1").first.inner_text()
            page.locator(f'[data-testid="stSidebarNavLink"][href="{dashboard_url}/{path}"]').click()
            page.wait_for_url(f"{dashboard_url}/{path}")
            settled(page, after=previous)
        page.wait_for_function(PLOTLY_DRAWN, timeout=60_000)
        page.screenshot(path=SCREENSHOTS / f"{file.removesuffix('.py')}.png", full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0, (
            f"{file}: {page.locator('[data-testid=stException]').first.inner_text()}"
        )
        assert page.locator("h1").first.inner_text().strip(), file
    page.context.close()


PASSPHRASE = "glue line 7 bead"
STEP_MS = 90_000


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A small part1 store served by `gluelab dashboard --secrets` (a passphrase set) with `gluelab worker` on it."""
    root = tmp_path_factory.mktemp("plant_dashboard")
    store = generated_store(root, images=10)
    secrets = root / "secrets.toml"
    roles.set_passphrase(secrets, PASSPHRASE)
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with gluelab_dashboard(store, "--secrets", str(secrets)) as url:
            yield url, store
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


# True once the page's h1 reads something other than `previous` (the page before a switch has been replaced).
NEW_HEADING = "previous => { const h = document.querySelector('h1'); return h && h.innerText.trim() && h.innerText !== previous; }"


def settled(page: Page, after: str | None = None) -> None:
    """Wait until the page's script has run to its end: its heading drawn (one other than `after`, the heading of the
    page left behind), the app's script state back to not running and the running indicator gone."""
    page.wait_for_function(NEW_HEADING, arg=after or "", timeout=60_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


def table_cell(page: Page, text: str):
    """A cell of the page's first table (on the Runs page, the Requests table) reading exactly `text`.

    The table is drawn on a canvas; its cells are read from the grid Streamlit keeps beside it for screen readers.
    """
    cells = page.locator('[data-testid="stDataFrame"]').first.locator('[role="gridcell"]')
    return cells.filter(has_text=re.compile(f"^{re.escape(text)}$"))


def choose_only(page: Page, label: str, option: str) -> None:
    """Replace a one-item multiselect's choice with `option`."""
    box = page.get_by_label(label, exact=False).first
    box.click()
    box.press("Backspace")
    box.fill(option)
    box.press("Enter")
    page.keyboard.press("Escape")


def test_an_engineer_s_request_runs_on_the_worker_and_a_cancelled_one_ends_cancelled(plant, browser):
    url, store = plant
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    engineer = new_page(browser)
    engineer.goto(f"{url}/runs")
    settled(engineer)
    engineer.get_by_label("Engineer passphrase").fill(PASSPHRASE)
    engineer.get_by_role("button", name="Sign in").click()
    expect(engineer.get_by_text("Signed in as engineer (passphrase)")).to_be_visible(timeout=30_000)

    engineer.get_by_role("button", name="Submit", exact=True).click()
    expect(engineer.get_by_text("Queued as request 1: 1 runs.")).to_be_visible(timeout=30_000)
    expect(table_cell(engineer, "1 finished, 0 failed of 1")).to_be_attached(timeout=STEP_MS)
    expect(table_cell(engineer, "finished")).to_be_attached(timeout=10_000)
    engineer.screenshot(path=SCREENSHOTS / "runs-request-finished.png", full_page=True)

    previous = engineer.locator("h1").first.inner_text()
    engineer.get_by_role("link", name="Overview").click()
    settled(engineer, after=previous)
    expect(engineer.locator('[data-testid="stMetricValue"]').first).to_have_text("1", timeout=30_000)
    expect(table_cell(engineer, "Legacy camera check (cpu)")).to_be_attached(timeout=30_000)

    previous = engineer.locator("h1").first.inner_text()
    engineer.get_by_role("link", name="Runs").click()
    settled(engineer, after=previous)
    choose_only(engineer, "Models", "STFPM")
    engineer.get_by_role("button", name="Submit", exact=True).click()
    expect(engineer.get_by_text("Queued as request 2: 1 runs.")).to_be_visible(timeout=30_000)
    expect(table_cell(engineer, "running")).to_be_attached(timeout=STEP_MS)  # the worker has taken it
    engineer.get_by_role("button", name="Cancel", exact=True).click()
    expect(engineer.get_by_text("Request 2 is cancelling: its worker stops the running job.")).to_be_visible(
        timeout=10_000
    )
    expect(table_cell(engineer, "cancelled")).to_be_attached(timeout=STEP_MS)
    engineer.screenshot(path=SCREENSHOTS / "runs-request-cancelled.png", full_page=True)

    viewer = new_page(browser)
    viewer.goto(f"{url}/runs")
    settled(viewer)
    expect(viewer.get_by_label("Engineer passphrase")).to_be_visible(timeout=30_000)
    expect(table_cell(viewer, "cancelled")).to_be_attached(timeout=30_000)
    assert viewer.get_by_role("button", name="Submit", exact=True).count() == 0
    assert viewer.get_by_role("button", name="Cancel", exact=True).count() == 0
    assert viewer.locator('[data-testid="stException"]').count() == 0
    engineer.context.close()
    viewer.context.close()


def test_model_selection_points_to_one_candidate_per_front_and_its_switches_read_in_full(dashboard_url, browser):
    """What a manager reads at a glance: one chosen row per front table (the knee rule can tie), every switch's label
    whole, not cut short with an ellipsis."""
    page = new_page(browser)
    page.goto(f"{dashboard_url}/model_selection")
    settled(page)
    fronts = page.locator('[data-testid="stDataFrame"]').filter(
        has=page.locator('[role="columnheader"]', has_text=re.compile("^chosen$"))
    )
    expect(fronts.nth(1)).to_be_attached(timeout=60_000)  # the page draws its tables one after another
    assert fronts.count() >= 2  # a front per machine (here the study's GPU and this CPU) and image against pixel
    for index in range(fronts.count()):
        cells = fronts.nth(index).locator('[role="gridcell"]')
        expect(cells.first).to_be_attached(timeout=30_000)
        assert cells.filter(has_text=re.compile("^knee$")).count() == 1, f"front table {index}"
    labels = page.locator('[data-testid="stCheckbox"] [data-testid="stMarkdownContainer"]')
    assert labels.count() == 4
    for label in labels.all():
        text, needed, shown = label.evaluate("el => [el.innerText, el.scrollWidth, el.clientWidth]")
        assert needed <= shown, f"the switch label {text!r} is cut: it needs {needed} px and has {shown}"
    page.screenshot(path=SCREENSHOTS / "model-selection-chosen.png", full_page=True)
    page.context.close()


def test_runtime_charts_say_what_they_time_and_colour_each_bar_by_the_machine_it_was_timed_on(dashboard_url, browser):
    page = new_page(browser)
    page.goto(f"{dashboard_url}/runtime")
    settled(page)
    titles = page.locator(".plotly .gtitle")
    expect(titles).to_have_count(2, timeout=60_000)
    assert [title.text_content() for title in titles.all()] == [
        "Inference: time to score one image (batch 1)",
        "Training: time to fit on the part's training images",
    ]
    axes = [axis.text_content() for axis in page.locator(".plotly .xtitle").all()]
    assert axes == ["Inference (ms/image)", "Training time (min)"]
    legends = page.locator(".plotly .legend").first
    assert legends.locator(".legendtitletext").text_content() == "Timed on"
    machines = {entry.text_content() for entry in legends.locator(".legendtext").all()}
    assert "the study's RTX 4090 GPU (Chen et al. 2025)" in machines and len(machines) == 2  # and this CPU
    page.screenshot(path=SCREENSHOTS / "runtime-machines.png", full_page=True)
    page.context.close()


def test_a_viewer_downloads_the_decision_report_of_what_a_page_shows_and_it_equals_the_command_s(
    dashboard_url, dashboard_stores, tmp_path, browser
):
    """Model selection and Line stops at their defaults ask what `gluelab report --parts part1` asks: a viewer (no
    role) downloads each page's report, and both equal the command's file byte for byte apart from the date."""
    store = dashboard_stores["evaluated"]
    written = tmp_path / "command.html"
    assert gluelab(["report", "--parts", "part1", "--out", str(written), "--store", str(store)]) == 0
    page = new_page(browser, accept_downloads=True)
    for view in ("model_selection", "operations"):
        page.goto(f"{dashboard_url}/{view}")
        settled(page)
        button = page.get_by_role("button", name="Download decision report")
        expect(button).to_be_visible(timeout=60_000)
        with page.expect_download(timeout=120_000) as download:
            button.click()
        assert download.value.suggested_filename == REPORT_FILE_NAME
        downloaded = tmp_path / f"{view}.html"
        download.value.save_as(downloaded)
        assert without_date(downloaded.read_text()) == without_date(written.read_text()), view
    page.context.close()
