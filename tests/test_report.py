"""`gluelab report`: the decision report holds the figures the pages show, opens with no network, prints to A4, and
refuses what it cannot report by name, writing nothing."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from pypdf import PdfReader

from engine.analysis import decision
from engine.analysis.charts import ranked_front_table
from engine.analysis.line_stop_notes import figure_labels
from engine.analysis.line_stops import Line
from engine.analysis.recommendation import INFERENCE, NO_RECOMMENDATION
from engine.cli import main as gluelab
from engine.report import build_report
from engine.report.sections import SECTIONS
from store import write_store
from tests.conftest import file_digest, open_page, without_date
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS


class Report(HTMLParser):
    """The parts of a report a reader checks: section headings, recommendation cards, and each section's tables
    (rows of cell texts, the header first)."""

    def __init__(self, page: str):
        super().__init__()
        self.headings: list[str] = []
        self.cards: list[dict[str, str]] = []
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.notes: list[str] = []
        self._text: list[str] | None = None
        self._where: tuple[str, str] | None = None
        self._row: list[str] | None = None
        self._card = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        if tag == "h2" or (tag in ("h3", "p") and self._card and classes in ("heading", "figures", "why")):
            self._where, self._text = (tag, classes), []
        elif tag == "div" and "recommendation" in classes.split():
            self._card = True
            self.cards.append({})
        elif tag == "div" and "note" in classes.split():
            self._where, self._text = ("note", ""), []
        elif tag == "table":
            self.tables.setdefault(self.headings[-1], []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._text = []

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.tables[self.headings[-1]][-1].append(self._row)
            self._row = None
            return
        if self._text is None:
            if tag == "div" and self._card:
                self._card = False
            return
        content = "".join(self._text)
        if tag in ("td", "th") and self._row is not None:
            self._row.append(content)
            self._text = None
        elif self._where and tag == self._where[0]:
            if tag == "h2":
                self.headings.append(content)
            else:
                self.cards[-1][self._where[1]] = content
            self._where, self._text = None, None
        elif self._where == ("note", "") and tag == "div":
            self.notes.append(content)
            self._where, self._text = None, None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def report_of(store: Path, question: decision.Question) -> Report:
    return Report(build_report(store, question))


def test_the_report_holds_the_pages_recommendation_front_and_line_stop_figures(dashboard_stores, monkeypatch):
    """Model selection's and Line stops' own renderings at their defaults against the report of the same question:
    the card's sentence, the front's candidates and figures, and every line-stop figure."""
    store = dashboard_stores["evaluated"]
    report = report_of(store, decision.Question(("part1",)))
    assert report.headings == list(SECTIONS)

    selection = open_page(store, "model_selection.py", monkeypatch)
    cards = [m.value for m in selection.markdown if m.value.startswith("#### part1: ")]
    assert len(cards) == len(report.cards) == 2  # this machine's and the study's GPU's
    for card, shown in zip(report.cards, cards, strict=True):
        assert f"#### {card['heading']}\n{card['figures']}\n\n{card['why']}" == shown

    fronts = [frame.value for frame in selection.dataframe if "chosen" in frame.value.columns]
    tables = report.tables["The trade-off"]
    assert len(tables) == len(fronts) - 1  # the page's last front is image against pixel accuracy
    for table, front in zip(tables, fronts, strict=False):
        assert table[0] == ["#", *front.columns[1:]]
        assert [row[2] for row in table[1:]] == list(front["candidate"])
        assert [row[1] for row in table[1:]] == list(front["chosen"])
        assert [float(row[3]) for row in table[1:]] == pytest.approx(list(front.iloc[:, 3]), rel=1e-3)
        assert [float(row[4]) for row in table[1:]] == pytest.approx(list(front.iloc[:, 4]), abs=5e-4)

    line_stops = open_page(store, "operations.py", monkeypatch)
    shown = line_stops.dataframe[0].value
    (table,) = report.tables["On the line"]
    labels = figure_labels(decision.Question(("part1",)).shift)
    header = table[0]
    assert header[0] == "Model" and header[-1] == "Seeds"
    assert [row[0] for row in table[1:]] == list(shown["candidate"])
    for index, column in enumerate(column for column in labels if column in shown):
        assert header[index + 1] == labels[column]
        cells = [row[index + 1] for row in table[1:]]
        if column == "escape_interval":
            assert cells == list(shown[column])
        else:
            assert [float(cell) for cell in cells] == pytest.approx(list(shown[column]), abs=5e-3), column
    assert [m.value for m in line_stops.success] == [n for n in report.notes if " costs least " in n]


def test_a_wrong_figure_in_the_report_would_differ_from_the_decision_it_prints(dashboard_stores):
    """The front table's figures are the decision's own (`ranked_front_table`), to the digits printed."""
    store = dashboard_stores["evaluated"]
    question = decision.Question(("part1",), accuracy="pixel_auroc", line=Line(0.01, 5, 0.2))
    made = decision.decide(decision.load_figures(store, question), question)
    report = report_of(store, question)
    for table, result in zip(report.tables["The trade-off"], made.results.values(), strict=True):
        ranked = ranked_front_table(result, INFERENCE, question.criterion, question.criterion)
        assert [row[2] for row in table[1:]] == list(ranked["candidate"])
        assert [row[3] for row in table[1:]] == [f"{value:.4g}" for value in ranked.iloc[:, 3]]
        assert [row[4] for row in table[1:]] == [f"{value:.3f}" for value in ranked.iloc[:, 4]]


def test_the_report_command_writes_one_file_that_equals_the_builder_s_apart_from_the_date(
    dashboard_stores, tmp_path, capsys
):
    store = dashboard_stores["evaluated"]
    out = tmp_path / "report.html"
    command = ["report", "--parts", "part1", "part16", "--criteria", "image_auroc", "--floor", "inference_ms=1000"]
    assert gluelab([*command, "--weights", "image_auroc=0.7", "--out", str(out), "--store", str(store)]) == 0
    assert re.search(r"wrote .*report\.html \(\d+ KB\) in [\d.]+ s", capsys.readouterr().out)
    question = decision.Question(
        ("part1", "part16"), limits=(decision.Constraint("inference_ms", ceiling=1000),), accuracy_weight=0.7
    )
    built = build_report(store, question, datetime(2026, 1, 1, tzinfo=UTC))
    assert without_date(out.read_text()) == without_date(built)
    assert out.stat().st_size < 5 * 2**20
    assert question.command(store, "x.html").startswith(
        "gluelab report --parts part1 part16 --criteria image_auroc --floor inference_ms=1000 --weights image_auroc=0.7"
    )


def test_a_floor_no_candidate_meets_still_renders_and_says_so(dashboard_stores, tmp_path):
    store = dashboard_stores["evaluated"]
    out = tmp_path / "report.html"
    assert (
        gluelab(["report", "--parts", "part1", "--floor", "image_auroc=1.01", "--out", str(out), "--store", str(store)])
        == 0
    )
    report = Report(out.read_text())
    assert report.headings == list(SECTIONS)
    assert NO_RECOMMENDATION in report.notes


@pytest.mark.parametrize(
    "arguments, named",
    [
        (["--parts", "part99"], "part 'part99' is not in the store"),
        (["--parts", "part1", "--criteria", "sharpness"], "'sharpness' is not a metric"),
        (["--parts", "part1", "--criteria", "inference_ms"], "name one accuracy metric"),
        (["--parts", "part1", "--floor", "image_auroc"], "--floor 'image_auroc': write METRIC=NUMBER"),
        (["--parts", "part1", "--include", "lucky"], "no run flag is named lucky"),
    ],
)
def test_bad_input_is_named_in_one_line_and_no_file_is_written(arguments, named, dashboard_stores, tmp_path, capsys):
    store = dashboard_stores["evaluated"]
    before = file_digest(store)
    out = tmp_path / "report.html"
    assert gluelab(["report", *arguments, "--out", str(out), "--store", str(store)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("gluelab report: ") and named in error and "\n" not in error, error
    assert not out.exists() and not list(tmp_path.iterdir())
    assert file_digest(store) == before


def test_an_empty_store_or_none_is_named_and_nothing_is_written(tmp_path, capsys):
    empty, out = tmp_path / "empty.duckdb", tmp_path / "out" / "report.html"
    with write_store(empty):
        pass
    for store, named in (
        (empty, "holds no parts, runs or published figures"),
        (tmp_path / "none.duckdb", "no results store at"),
    ):
        assert gluelab(["report", "--parts", "part1", "--out", str(out), "--store", str(store)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("gluelab report: ") and named in error, error
        assert not out.exists()
    assert not (tmp_path / "none.duckdb").exists()


def test_the_report_opens_with_no_network_draws_its_charts_and_prints_every_section(dashboard_stores, tmp_path):
    """Opened from disk with every request refused: none is attempted, each chart is drawn (Plotly's SVG), and the
    PDF Chromium prints holds every section's heading."""
    out = tmp_path / "report.html"
    store = str(dashboard_stores["evaluated"])
    assert gluelab(["report", "--parts", "part1", "part16", "--out", str(out), "--store", store]) == 0
    attempted: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        page.route("**/*", lambda route: route.continue_() if route.request.url == out.as_uri() else route.abort())
        page.on("request", lambda request: attempted.append(request.url))
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-charts='drawn']", timeout=60_000)
        drawn = page.locator(".plotly .main-svg")
        assert page.locator(".chart").count() == 4  # a front per machine (this CPU, the study's GPU), a part's line
        assert page.locator(".chart .plotly").count() == 4 and drawn.count() >= 4
        assert [url for url in attempted if not url.startswith("data:")] == [out.as_uri()]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "decision-report.png", full_page=True)
        pdf = tmp_path / "report.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        browser.close()
    pages = PdfReader(pdf).pages
    printed = unicodedata.normalize("NFKC", " ".join(page.extract_text() for page in pages))  # ligatures: "ﬀ"
    for heading in SECTIONS:
        assert heading in printed, heading
    assert len(pages) >= len(SECTIONS) - 1  # sections start on a new page where they would be cut


def test_the_recommended_run_is_the_lowest_seed_of_the_local_recommendation_and_an_unknown_part_is_named(
    dashboard_stores, capsys
):
    store = dashboard_stores["evaluated"]
    question = decision.Question(("part1",), source="local")
    made = decision.decide(decision.load_figures(store, question), question)
    (card,) = [card for card in made.recommendations.values() if card is not None]
    runs = made.part_runs["part1"]
    lowest = runs[runs["candidate"] == card.candidate].sort_values("seed")["run_id"].iloc[0]
    assert decision.recommended_run(store, "part1") == lowest
    arguments = ["deploy", "--recommended", "part99", "--format", "onnx", "--out", "unused", "--store", str(store)]
    assert gluelab(arguments) == 2
    assert "no local candidate is recommended for part99" in capsys.readouterr().err
