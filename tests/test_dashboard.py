"""Every dashboard page through Streamlit's AppTest: empty, published-only and evaluated stores, one interaction each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engine.analysis.recommendation import STUDY_HARDWARE, STUDY_TIMING, hardware_label
from engine.evaluation.timing import TimingLoad
from store.runs import Training, claim_run, end_run
from tests.conftest import open_page, run_key, write_finished_run

pytestmark = pytest.mark.heavy  # builds the evaluated dashboard store

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
PAGES = sorted(path.name for path in (APP.parent / "views").glob("*.py"))


def messages(app: AppTest) -> str:
    return " ".join(
        str(element.value) for element in [*app.info, *app.warning, *app.success, *app.markdown, *app.caption]
    )


def test_the_pages_are_the_ones_the_app_navigates():
    assert (
        sorted(
            [
                "overview.py",
                "model_selection.py",
                "operations.py",
                "robustness.py",
                "runtime.py",
                "part_drilldown.py",
                "failure_browser.py",
                "line_monitor.py",
                "runs.py",
            ]
        )
        == PAGES
    )
    for page in PAGES:
        assert f'"{page}"' in APP.read_text()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_explains_a_missing_store(page, tmp_path, monkeypatch):
    app = open_page(tmp_path / "nothing_here.duckdb", page, monkeypatch)
    assert "There is no results store" in messages(app) and "make demo" in messages(app)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_an_empty_store(page, dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["empty"], page, monkeypatch)
    if page != "runs.py":
        assert "gluelab evaluate" in messages(app)


# What each page that needs local runs says on a store holding only the published figures (part1 first,
# part16 for the failure browser).
WITHOUT_LOCAL_RUNS = {
    "operations.py": "No finished local run on part1 (baseline). Operating figures need per-image scores, "
    "which the published study does not give.",
    "failure_browser.py": "No finished local run on part16 (baseline) to browse.",
    "part_drilldown.py": "part1 has no images in this store (published figures only).",
    "runs.py": "No evaluation has run against this store yet.",
    "line_monitor.py": "No deployment has scored the line yet.",
}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_published_figures_only(page, dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["published"], page, monkeypatch)
    if page in WITHOUT_LOCAL_RUNS:
        assert any(info.value.startswith(WITHOUT_LOCAL_RUNS[page]) for info in app.info), [i.value for i in app.info]
        assert not app.dataframe  # nothing local to tabulate
    else:
        shown = messages(app) + " ".join(d.value.to_csv() for d in app.dataframe)
        assert "(paper)" in shown


def test_overview_lists_local_and_published_side_by_side_and_filters_by_source(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "overview.py", monkeypatch)
    table = app.dataframe[0].value
    assert set(table["source"]) == {"local", "published"}
    assert table.loc[table["source"] == "local", "n_seeds"].eq(2).all()
    assert "instead of the paper's ResNet" in messages(app)  # each local run's departures from the study
    app.sidebar.radio(key="filter_source").set_value("Local runs").run()
    assert set(app.dataframe[0].value["source"]) == {"local"}
    assert app.get("download_button")


def test_line_stops_rates_match_the_stored_per_image_scores_and_turn_into_minutes(dashboard_stores, monkeypatch):
    """The page's rates against ones counted here from `image_scores` and each run's stored threshold.

    Default line: 0.5 % defective, a miss costing 20 line stops, at most 5 % of defects let through; 900 parts a
    shift, 3 minutes a stop.
    """
    store = dashboard_stores["evaluated"]
    expected = rates_from_image_scores(store, "part1", "baseline")
    assert expected["false_alarms_f1"].gt(0).any(), "the store must hold false alarms for the check to bite"
    app = open_page(store, "operations.py", monkeypatch)
    assert "line-stop minutes" in messages(app)
    app.number_input(key="ops_parts").set_value(900)
    app.number_input(key="ops_minutes").set_value(3.0).run()
    table = app.dataframe[0].value.set_index("candidate").loc[expected.index]
    assert table["false_alarms_per_1000"].to_numpy() == pytest.approx(expected["false_alarms_cost"].to_numpy())
    assert table["missed_per_1000"].to_numpy() == pytest.approx(expected["missed_cost"].to_numpy())
    app.radio(key="ops_policy").set_value("F1-optimal threshold").run()
    shown = app.dataframe[0].value
    assert list(shown["expected_cost_per_shift"]) == sorted(shown["expected_cost_per_shift"])  # cheapest first
    table = shown.set_index("candidate").loc[expected.index]
    assert table["false_alarms_per_1000"].to_numpy() == pytest.approx(expected["false_alarms_f1"].to_numpy())
    assert table["missed_per_1000"].to_numpy() == pytest.approx(expected["missed_f1"].to_numpy())
    false_alarms = 900 * 0.995 * expected["false_alarms_f1"] / 1000
    assert table["false_alarms_per_shift"].to_numpy() == pytest.approx(false_alarms.to_numpy())
    assert table["misses_per_shift"].to_numpy() == pytest.approx(
        (900 * 0.005 * expected["missed_f1"] / 1000).to_numpy()
    )
    avoided = (false_alarms[CANDIDATES["legacy"]] - false_alarms) * 3.0
    assert table["minutes_avoided_per_shift"].to_numpy() == pytest.approx(avoided.to_numpy())
    assert "for the legacy system" in messages(app) or "No model beats the legacy check" in messages(app)
    app.radio(key="ops_policy").set_value("Zero escapes on the test set").run()
    table = app.dataframe[0].value.set_index("candidate").loc[expected.index]
    assert table["false_alarms_per_1000"].to_numpy() == pytest.approx(expected["false_alarms_zero_escape"].to_numpy())
    assert table["missed_per_1000"].eq(0).all()


def test_robustness_pairs_baseline_and_augmented(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "robustness.py", monkeypatch)
    app.sidebar.radio(key="filter_source").set_value("Local runs").run()
    paired = app.dataframe[0].value
    assert set(paired["candidate"]) == {
        "Legacy camera check (cpu)",
        "PaDiM / EfficientNet-Lite0 (cpu)",
        "DFM / EfficientNet-Lite0 (cpu)",
    }
    assert list(paired["drop"]) == sorted(paired["drop"], reverse=True)
    app.selectbox(key="robustness_metric").set_value("pixel_auroc").run()
    assert "Pixel AUROC" in messages(app)


def test_runtime_shows_the_hardware_of_each_run(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "runtime.py", monkeypatch)
    app.sidebar.radio(key="filter_source").set_value("Local runs").run()
    runs = app.dataframe[1].value
    assert len(runs) == 3 * 2 and runs["cpu_count"].ge(1).all() and runs["processor"].str.len().gt(0).all()
    app.toggle(key="runtime_log").set_value(False).run()
    assert not app.exception


def test_part_drilldown_compares_two_models_on_the_same_images(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "part_drilldown.py", monkeypatch)
    assert [m.value for m in app.metric][:3] == ["15", "5", "5"]
    single = len(app.get("image"))
    app.selectbox(key="gallery_compare").set_value(app.selectbox(key="gallery_compare").options[1]).run()
    assert len(app.get("image")) > single
    app.multiselect(key="gallery_regions").set_value(["A"]).run()
    assert not app.exception


def test_failure_browser_opens_on_part16_and_its_tabs_list_the_stored_false_alarms_and_misses(
    dashboard_stores, monkeypatch
):
    """The false-alarm and missed-defect tabs hold exactly the images the store's scores put there."""
    store = dashboard_stores["evaluated"]
    scores = scores_at_threshold(store, "part16", "baseline")
    flagged_good = scores[(scores["label"] == "normal") & (scores["score"] >= scores["threshold"])]
    model = flagged_good["model"].value_counts().idxmax()  # the model with the most false alarms on part16
    mine = scores[scores["model"] == model]
    false_alarms = set(mine.loc[(mine["label"] == "normal") & (mine["score"] >= mine["threshold"]), "image_path"])
    misses = set(mine.loc[(mine["label"] == "anomalous") & (mine["score"] < mine["threshold"]), "image_path"])

    app = open_page(store, "failure_browser.py", monkeypatch)
    assert app.sidebar.selectbox(key="filter_part").value == "part16"
    app.selectbox(key="failure_model").set_value(CANDIDATES[model]).run()
    assert "ρ =" in " ".join(m.value for m in app.metric)
    app.radio(key="failure_order").set_value("Brightness (brightest first)").run()
    false_tab, missed_tab, all_tab = app.tabs
    assert false_tab.label == f"False alarms ({len(false_alarms)})"
    listed = false_tab.dataframe[0].value
    assert false_alarms and set(listed["image_path"]) == false_alarms
    assert listed["label"].eq("normal").all()
    assert list(listed["mean_brightness"]) == sorted(listed["mean_brightness"], reverse=True)
    assert set(missed_tab.dataframe[0].value["image_path"]) == misses
    everything = all_tab.dataframe[0].value
    assert len(everything) == len(mine)
    assert list(everything["mean_brightness"]) == sorted(everything["mean_brightness"], reverse=True)


def test_runs_page_follows_the_store(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "runs.py", monkeypatch)
    assert app.metric[0].value == "15"
    assert len(app.dataframe[0].value) == 15 and set(app.dataframe[0].value["status"]) == {"finished"}


def test_runs_page_counts_each_status_and_keeps_exactly_the_failed_and_cancelled_runs(tmp_path, monkeypatch):
    store = tmp_path / "store.duckdb"
    write_finished_run(store, "done", run_key(seed=0), [1.0], [2.0], threshold=1.5)
    claim_run("still_running", run_key(seed=1), store)
    claim_run("broke", run_key(seed=2), store)
    end_run("broke", "failed", "RuntimeError: out of memory", store=store)
    claim_run("stopped", run_key(seed=3), store)
    end_run("stopped", "cancelled", "cancelled (Ctrl-C or SIGTERM) while running", store=store)

    app = open_page(store, "runs.py", monkeypatch)
    assert {m.label: m.value for m in app.metric} == {"Finished": "1", "Running": "1", "Failed": "1", "Cancelled": "1"}
    assert set(app.dataframe[0].value["run_id"]) == {"done", "still_running", "broke", "stopped"}
    app.toggle(key="runs_problems").set_value(True).run()
    kept = app.dataframe[0].value.set_index("run_id")
    assert sorted(kept.index) == ["broke", "stopped"]
    assert kept.loc["broke", "error"] == "RuntimeError: out of memory"
    assert kept.loc["stopped", "status"] == "cancelled"


def test_model_selection_recommends_the_knee_and_honours_limits_and_weights(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "model_selection.py", monkeypatch)
    card = app.markdown[0].value
    assert card.startswith("#### part1: ") and "knee of the accuracy/time front" in card
    assert "timed by the study on an RTX 4090 GPU" in card or "measured here on " in card
    candidates = table_with(app, "on_front")
    assert candidates["knee"].sum() >= 1 and candidates.loc[candidates["knee"], "on_front"].all()
    ranking = table_with(app, "rank")
    front = candidates[candidates["on_front"]]
    assert sorted(ranking["candidate"]) == sorted(front["candidate"]) and list(ranking["rank"]) == list(
        range(1, len(front) + 1)
    )
    (marked,) = ranking.loc[ranking["chosen"] == "knee", "candidate"]  # one row, even where the knee rule ties
    knees = candidates[candidates["knee"]].sort_values("image_auroc_mean", ascending=False, kind="stable")
    assert marked == knees["candidate"].iloc[0] and marked in card  # the recommended one: the most accurate knee
    app.slider(key="selection_floor").set_value(0.9).run()
    left_out = table_with(app, "reason")
    assert left_out["reason"].str.contains("image_auroc .* is below the floor 0.9").any()
    assert (table_with(app, "on_front")["image_auroc_mean"] >= 0.9).all()
    app.toggle(key="selection_use_weights").set_value(True).run()
    assert "closest to your weights" in app.markdown[0].value


def test_the_trade_off_chart_numbers_front_points_instead_of_naming_them(dashboard_stores, monkeypatch):
    """Names crowd where candidates do: the chart carries rank numbers only, the names are in hover and table."""
    app = open_page(dashboard_stores["evaluated"], "model_selection.py", monkeypatch)
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    front = table_with(app, "on_front").query("on_front")
    numbers = [number for tag in figure["layout"]["annotations"] for number in tag["text"].split(", ")]
    assert sorted(numbers, key=int) == [str(rank) for rank in range(1, len(front) + 1)]
    offsets = [tag["ay"] for tag in figure["layout"]["annotations"]]
    assert all(a == -b for a, b in zip(offsets, offsets[1:], strict=False)), "neighbouring tags alternate sides"
    assert not [trace for trace in figure["data"] if "text" in trace.get("mode", "")]


def test_model_selection_across_parts_shows_each_candidate_s_worst_figures(dashboard_stores, monkeypatch):
    """Worst image AUROC and slowest inference per candidate over part1 and part16, counted here from the runs."""
    store = dashboard_stores["evaluated"]
    per_part = seed_means(store, "baseline")
    worst_auroc = per_part.groupby("model")["image_auroc"].min()
    worst_auroc_part = per_part.loc[per_part.groupby("model")["image_auroc"].idxmin()].set_index("model")["part"]
    slowest = per_part.groupby("model")["inference_ms"].max()

    app = open_page(store, "model_selection.py", monkeypatch)
    app.sidebar.radio(key="filter_source").set_value("Local runs").run()
    app.multiselect(key="selection_parts").set_value(["part1", "part16"]).run()
    app.number_input(key="selection_max_escape").set_value(100.0).run()  # every candidate, whatever it lets pass
    shown = table_with(app, "on_front").set_index("candidate")
    shown.index = shown.index.map({name: model for model, name in CANDIDATES.items()})
    assert sorted(shown.index) == sorted(worst_auroc.index)
    assert shown["image_auroc_mean"].to_numpy() == pytest.approx(worst_auroc[shown.index].to_numpy())
    assert shown["inference_ms_mean"].to_numpy() == pytest.approx(slowest[shown.index].to_numpy())
    assert (shown["image_auroc_worst_part"] == worst_auroc_part[shown.index]).all()

    card = app.markdown[0].value
    assert card.startswith("#### part1, part16: ") and "worst figure across the chosen parts" in card
    pick = {name: model for model, name in CANDIDATES.items()}[card.split("\n")[0].removeprefix("#### part1, part16: ")]
    assert re.search(rf"Image AUROC {worst_auroc[pick]:.2f}( ± [0-9.]+)? on {worst_auroc_part[pick]}, ", card), card
    assert "measured here on " in card and "false alarms" not in card


def test_model_selection_with_both_sources_draws_one_front_per_machine_and_names_it_on_each_card(
    dashboard_stores, monkeypatch
):
    """The evaluated store holds this machine's CPU runs and the study's GPU figures: two fronts, two cards."""
    store = dashboard_stores["evaluated"]
    machine = this_machine(store)
    app = open_page(store, "model_selection.py", monkeypatch)
    assert app.sidebar.radio(key="filter_source").value == "Both"
    sections = [header.value for header in app.subheader]
    assert sections[:2] == [f"Timed on {machine}", f"Timed on {STUDY_HARDWARE}"]
    cards = [m.value for m in app.markdown if m.value.startswith("#### part1: ")]
    assert len(cards) == 2
    assert f"(measured here on {machine})" in cards[0] and f"timed on {machine} are on the front" in cards[0]
    assert f"({STUDY_TIMING})" in cards[1] and "(paper)" in cards[1].split("\n")[0]
    tables = [frame.value for frame in app.dataframe if "on_front" in frame.value.columns]
    assert [set(table["hardware"]) for table in tables[:2]] == [{machine}, {STUDY_HARDWARE}]
    assert (
        not tables[0]["candidate"].str.endswith("(paper)").any()
        and tables[1]["candidate"].str.endswith("(paper)").all()
    )
    local_chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    plotted = {name for trace in local_chart["data"] for name in trace.get("text", [])}
    assert plotted and not any(name.endswith("(paper)") for name in plotted)


def test_a_run_that_hits_its_budget_is_left_out_of_the_default_front_with_its_reason(tmp_path, monkeypatch):
    """STFPM, faster and more accurate than PaDiM, stopped at its 10-minute budget after 37 epochs: left out and listed
    with that reason, until "Include under-trained runs" puts it back on the front."""
    store = tmp_path / "store.duckdb"
    machine = {"hardware": {"processor": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "cpu_count": 2, "gpu": None}}
    budget = Training(
        losses=[1 / (epoch + 1) for epoch in range(37)],
        seconds=[16.0 * (epoch + 1) for epoch in range(37)],
        stop_reason="budget",
        budget_minutes=10.0,
    )
    for model, ms, auroc, training in [
        ("legacy", 0.96, 0.55, None),
        ("padim", 45.0, 0.95, None),
        ("stfpm", 20.0, 0.99, budget),
    ]:
        write_finished_run(
            store, model, run_key(model=model), [0.1], [0.9], 0.5, {"image_auroc": auroc}, inference_ms=ms,
            training=training, environment=machine, config={"settings": {"epochs": 100, "budget_minutes": 10}},
        )  # fmt: skip
    stfpm = "STFPM / EfficientNet-Lite0 (cpu)"
    label = hardware_label("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", None, 2)

    app = open_page(store, "model_selection.py", monkeypatch)
    assert app.toggle(key="selection_under_trained").value is False
    candidates = table_with(app, "on_front")
    assert stfpm not in set(candidates["candidate"]) and "PaDiM / EfficientNet-Lite0 (cpu)" in set(
        candidates.loc[candidates["on_front"], "candidate"]
    )
    listed = [m.value for m in app.markdown if m.value.startswith("- ")]
    assert listed == [
        f"- {stfpm} on {label}: stopped by the 10-minute budget after 37 epochs, before its loss levelled off"
    ]
    assert "Left out as under-trained" in messages(app)
    assert stfpm not in app.markdown[0].value

    app.toggle(key="selection_under_trained").set_value(True).run()
    candidates = table_with(app, "on_front").set_index("candidate")
    assert candidates.loc[stfpm, "on_front"] and not candidates.loc["PaDiM / EfficientNet-Lite0 (cpu)", "on_front"]
    assert app.markdown[0].value.startswith(f"#### part1: {stfpm}")
    assert "Under-trained, yet included in the fronts above" in messages(app)


def test_a_run_timed_under_load_is_left_out_of_the_default_front_and_runtime_charts_with_its_reason(
    tmp_path, monkeypatch
):
    """DFM timed at 2 ms while other processes held the cores would top every time axis: it is left out of the
    time-accuracy front and the runtime charts, listed with the recorded reason and how to time it again, until
    "Include runs timed under load" puts it back. Its accuracy still counts on the image-against-pixel front."""
    store = tmp_path / "store.duckdb"
    machine = {"processor": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "cpu_count": 2, "gpu": None}
    loaded = TimingLoad(1.0, 1.93, 2, 2, 1, 3.9).record()
    quiet = TimingLoad(1.0, 0.02, 2, 2, 1, 0.1).record()
    for model, ms, auroc, timing in [
        ("legacy", 0.96, 0.55, quiet),
        ("padim", 45.0, 0.95, quiet),
        ("dfm", 2.0, 0.97, loaded),
    ]:
        write_finished_run(
            store, model, run_key(model=model), [0.1], [0.9], 0.5, {"image_auroc": auroc, "pixel_auroc": auroc},
            inference_ms=ms, environment={"hardware": machine, "timing": timing},
        )  # fmt: skip
    dfm = CANDIDATES["dfm"]
    reason = f"timed under load: {loaded['reason']}; `gluelab evaluate --retime dfm` times it again"

    app = open_page(store, "model_selection.py", monkeypatch)
    assert app.toggle(key="selection_timing_contended").value is False
    assert dfm not in set(table_with(app, "on_front")["candidate"])
    listed = [m.value for m in app.markdown if m.value.startswith("- ")]
    assert listed == [f"- {dfm} on {hardware_label(machine['processor'], None, 2)}: {reason}"]
    assert "Left out as timed under load" in messages(app) and dfm not in app.markdown[0].value
    pixel_front = [frame.value for frame in app.dataframe if "rank" in frame.value.columns][-1]
    assert dfm in set(pixel_front["candidate"])  # accuracy against accuracy: its timing does not matter
    app.toggle(key="selection_timing_contended").set_value(True).run()
    assert table_with(app, "on_front").set_index("candidate").loc[dfm, "on_front"]
    assert "Timed under load, yet included in the fronts above" in messages(app)

    app = open_page(store, "runtime.py", monkeypatch)
    charted = {
        name
        for chart in app.get("plotly_chart")
        for trace in json.loads(chart.proto.spec)["data"]
        for name in trace["y"]
    }
    assert charted == {"Legacy camera check / EfficientNet-Lite0 (cpu)", CANDIDATES["padim"]}
    assert f"- {dfm}: {reason}" in messages(app) and "Left out as timed under load" in messages(app)
    runs = table_with(app, "timing_contended").set_index("run_id")
    assert runs.loc["dfm", "timing_contended"] and not runs.loc["padim", "timing_contended"]
    assert runs.loc["dfm", "timing_note"] == loaded["reason"]
    app.toggle(key="runtime_timing_contended").set_value(True).run()
    charted = {
        name
        for chart in app.get("plotly_chart")
        for trace in json.loads(chart.proto.spec)["data"]
        for name in trace["y"]
    }
    assert dfm in charted


CANDIDATES = {
    "legacy": "Legacy camera check (cpu)",
    "padim": "PaDiM / EfficientNet-Lite0 (cpu)",
    "dfm": "DFM / EfficientNet-Lite0 (cpu)",
}


def table_with(app: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with `column`."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def scores_at_threshold(store: Path, part: str, condition: str) -> pd.DataFrame:
    """Every finished run's per-image scores with the run's stored F1-optimal threshold, read straight from DuckDB."""
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(
            """SELECT r.run_id, r.model, r.seed, s.image_path, s.label, s.score, m.value AS threshold
               FROM runs r JOIN image_scores s USING (run_id)
               JOIN metrics m ON m.run_id = r.run_id AND m.metric = 'image_threshold'
               WHERE r.status = 'finished' AND r.part = ? AND r.condition = ?""",
            [part, condition],
        ).df()


def least_cost_counts(
    good: pd.Series, defective: pd.Series, defect_rate: float, miss_cost: float, max_escape_rate: float
) -> tuple[int, int]:
    """False alarms and misses at the threshold of least (1 − p)·FPR + p·r·FNR among those missing at most
    `max_escape_rate` of the defects, tried at every score and above them all, the highest one on a tie."""
    best: tuple[float, int, int] | None = None
    for t in [np.inf, *sorted(set(good) | set(defective), reverse=True)]:
        false_alarms, missed = int((good >= t).sum()), int((defective < t).sum())
        if missed > max_escape_rate * len(defective):
            continue
        cost = (1 - defect_rate) * false_alarms / len(good) + defect_rate * miss_cost * missed / len(defective)
        if best is None or cost < best[0] - 1e-12:
            best = (cost, false_alarms, missed)
    assert best is not None
    return best[1], best[2]


def rates_from_image_scores(store: Path, part: str, condition: str) -> pd.DataFrame:
    """Per candidate, mean over seeds: false alarms per 1000 good parts at the threshold, at zero escapes
    (the lowest defective score) and at least cost on the default line (0.5 % defective, a miss costing 20 stops,
    at most 5 % of defects let through), and missed defects per 1000 defective parts at the threshold and at least
    cost."""
    rows = []
    for (model, _), run in scores_at_threshold(store, part, condition).groupby(["model", "run_id"]):
        good, defective = run[run["label"] == "normal"], run[run["label"] == "anomalous"]
        cost_false_alarms, cost_missed = least_cost_counts(good["score"], defective["score"], 0.005, 20, 0.05)
        rows.append(
            {
                "candidate": CANDIDATES[model],
                "false_alarms_f1": 1000 * (good["score"] >= good["threshold"]).sum() / len(good),
                "missed_f1": 1000 * (defective["score"] < defective["threshold"]).sum() / len(defective),
                "false_alarms_zero_escape": 1000 * (good["score"] >= defective["score"].min()).sum() / len(good),
                "false_alarms_cost": 1000 * cost_false_alarms / len(good),
                "missed_cost": 1000 * cost_missed / len(defective),
            }
        )
    return pd.DataFrame(rows).groupby("candidate").mean()


def seed_means(store: Path, condition: str) -> pd.DataFrame:
    """Per model and part: image AUROC and inference time averaged over the finished runs' seeds."""
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(
            """SELECT r.model, r.part, avg(m.value) AS image_auroc, avg(r.inference_ms) AS inference_ms
               FROM runs r JOIN metrics m ON m.run_id = r.run_id AND m.metric = 'image_auroc'
               WHERE r.status = 'finished' AND r.condition = ? GROUP BY ALL""",
            [condition],
        ).df()


def this_machine(store: Path) -> str:
    """The machine the store's local runs recorded, in the words the dashboard uses."""
    with duckdb.connect(str(store), read_only=True) as con:
        machines = con.execute(
            """SELECT DISTINCT json_extract_string(environment, '$.hardware.processor'),
                      json_extract_string(environment, '$.hardware.gpu'),
                      CAST(json_extract_string(environment, '$.hardware.cpu_count') AS INTEGER)
               FROM runs WHERE status = 'finished'"""
        ).fetchall()
    assert len(machines) == 1, machines
    return hardware_label(*machines[0])
