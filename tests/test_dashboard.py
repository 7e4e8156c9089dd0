"""Every dashboard page through Streamlit's AppTest: empty, published-only and evaluated stores, one interaction each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store.runs import end_run, start_run
from tests.conftest import generated_store, run_key, write_finished_run

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
PAGES = sorted(path.name for path in (APP.parent / "views").glob("*.py"))


def open_page(store: Path, page: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("GLUELAB_STORE", str(store))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.switch_page(f"views/{page}")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


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


def test_line_stops_turn_rates_into_minutes_against_legacy(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "operations.py", monkeypatch)
    assert "line-stop minutes" in messages(app)
    app.number_input(key="ops_parts").set_value(900)
    app.number_input(key="ops_minutes").set_value(3.0).run()
    table = app.dataframe[0].value.set_index("candidate")
    assert table.loc["Legacy camera check (cpu)", "minutes_avoided_per_shift"] == 0
    expected = (table["vs_legacy_per_1000"] / 1000 * 900 * 3.0).round(6)
    assert (table["minutes_avoided_per_shift"].round(6) == expected).all()
    assert "avoided per shift of 900 parts" in messages(app)
    app.radio(key="ops_policy").set_value("Zero escapes on the test set").run()
    assert app.dataframe[0].value["missed_per_1000"].eq(0).all()


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


def test_failure_browser_opens_on_part16_and_lists_false_alarms(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "failure_browser.py", monkeypatch)
    assert app.sidebar.selectbox(key="filter_part").value == "part16"
    app.selectbox(key="failure_model").set_value("Legacy camera check (cpu)").run()
    assert "ρ =" in " ".join(m.value for m in app.metric)
    app.radio(key="failure_order").set_value("Brightness (brightest first)").run()
    everything = app.dataframe[2].value
    assert list(everything["mean_brightness"]) == sorted(everything["mean_brightness"], reverse=True)


def test_runs_page_follows_the_store(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "runs.py", monkeypatch)
    assert app.metric[0].value == "15"
    assert len(app.dataframe[0].value) == 15 and set(app.dataframe[0].value["status"]) == {"finished"}


def test_runs_page_counts_each_status_and_keeps_exactly_the_failed_and_cancelled_runs(tmp_path, monkeypatch):
    store = tmp_path / "store.duckdb"
    write_finished_run(store, "done", run_key(seed=0), [1.0], [2.0], threshold=1.5)
    start_run("still_running", run_key(seed=1), store)
    start_run("broke", run_key(seed=2), store)
    end_run("broke", "failed", "RuntimeError: out of memory", store=store)
    start_run("stopped", run_key(seed=3), store)
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
    front = app.dataframe[0].value
    assert front["knee"].sum() >= 1 and front.loc[front["knee"], "on_front"].all()
    app.slider(key="selection_floor").set_value(0.9).run()
    left_out = app.dataframe[-1].value
    assert left_out["reason"].str.contains("image_auroc .* is below the floor 0.9").any()
    assert (app.dataframe[0].value["image_auroc_mean"] >= 0.9).all()
    app.toggle(key="selection_use_weights").set_value(True).run()
    assert "closest to your weights" in app.markdown[0].value


def test_model_selection_across_parts_takes_the_worst_figure(dashboard_stores, monkeypatch):
    app = open_page(dashboard_stores["evaluated"], "model_selection.py", monkeypatch)
    app.sidebar.radio(key="filter_source").set_value("Local runs").run()
    app.multiselect(key="selection_parts").set_value(["part1", "part16"]).run()
    assert (
        app.markdown[0].value.startswith("#### part1, part16: ")
        and "worst figure across the chosen parts" in app.markdown[0].value
    )


def test_an_evaluation_started_from_the_runs_page_lands_in_the_store(tmp_path, monkeypatch):
    store = generated_store(tmp_path)
    app = open_page(store, "runs.py", monkeypatch)
    app.multiselect(key="start_models").set_value(["legacy"])
    app.button(key="start_submit").click().run()
    assert "Started `gluelab evaluate --parts part1 --models legacy" in app.success[0].value
    deadline = time.monotonic() + 120
    while finished_runs(store) < 1 and time.monotonic() < deadline:
        time.sleep(1)
    app.run()
    assert app.metric[0].value == "1"
    assert "1 runs finished, 0 failed" in " ".join(code.value for code in app.code)


def finished_runs(store: Path) -> int:
    from store.runs import runs

    return int((runs(store)["status"] == "finished").sum())
