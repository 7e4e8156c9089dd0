"""How runs trained, on the dashboard: stop reasons in words, under-trained runs marked, loss curves shown."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from engine.analysis.training import (
    candidate_training,
    loss_curve,
    run_note,
    runs_in_words,
    training_summary,
    under_trained_badge,
)
from store.queries import part_training, recent_runs
from store.runs import RunOutcome, Training, claim_run, end_run, finish_run
from tests.conftest import generated_store, open_page, run_key, write_finished_run

BUDGET_NOTE = "stopped by the 10-minute budget after 37 epochs, before its loss levelled off"
CONVERGED_NOTE = "converged: its loss levelled off after 12 epochs"
ONE_PASS_NOTE = "fitted in one pass over the training images"


def write_trained_run(store, run_id: str, key: dict, training: Training, image_auroc: float) -> None:
    """A finished gradient-trained run whose config carries its preset's epoch cap and time budget, as
    `gluelab evaluate` records them (`settings.epochs`, `settings.budget_minutes`)."""
    settings = {"epochs": training.epoch_cap, "budget_minutes": training.budget_minutes, "batch_size": 8}
    scores = pd.DataFrame(
        {
            "image_path": ["test/000.png", "test/001.png"],
            "label": ["normal", "anomalous"],
            "score": [0.2, 0.8],
            "predicted_anomalous": [False, True],
        }
    )
    claim_run(run_id, key, store)
    finish_run(
        run_id,
        key,
        RunOutcome(
            metrics={"image_threshold": 0.5, "image_auroc": image_auroc},
            train_seconds=training.seconds[-1],
            inference_ms=10.0,
            throughput_fps=100.0,
            peak_memory_mb=500.0,
            n_train=10,
            n_test=2,
            config={"job": key, "settings": settings},
            environment={},
            image_scores=scores,
            training=training,
        ),
        store,
    )


def converged(epochs: int = 12) -> Training:
    losses = [1.0 / (epoch + 1) for epoch in range(epochs)]
    return Training(losses, [20.0 * (epoch + 1) for epoch in range(epochs)], "converged", 100, 10)


def budget_stopped() -> Training:
    losses = [1.0 - 0.02 * epoch for epoch in range(37)]  # still falling when the budget ran out
    return Training(losses, [16.0 * (epoch + 1) for epoch in range(37)], "budget", 100, 10)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """part1 registered, with a converged STFPM run, a FastFlow run stopped by its 10-minute budget, a PaDiM run
    fitted in one pass and a failed run."""
    store = generated_store(tmp_path_factory.mktemp("trained"))
    write_trained_run(store, "stfpm_converged", run_key(model="stfpm"), converged(), image_auroc=0.95)
    write_trained_run(store, "fastflow_budget", run_key(model="fastflow"), budget_stopped(), image_auroc=0.7)
    write_finished_run(store, "padim_one_pass", run_key(model="padim"), [0.1], [0.9], 0.5, {"image_auroc": 0.9})
    claim_run("stfpm_broke", run_key(model="stfpm", seed=1), store)
    end_run("stfpm_broke", "failed", "RuntimeError: out of memory", store=store)
    return store


# --- the plain functions ---------------------------------------------------------------------------------------


def seeds(*runs: tuple) -> pd.DataFrame:
    return pd.DataFrame(runs, columns=["stop_reason", "epochs", "under_trained"])


def test_a_candidate_s_training_reads_converged_with_its_epoch_range_over_seeds():
    assert training_summary(seeds(("converged", 12, False))) == "converged after 12 epochs"
    assert training_summary(seeds(("converged", 15, False), ("converged", 12, False))) == "converged after 12–15 epochs"
    assert training_summary(seeds(("schedule", 30, False), ("schedule", 30, False))) == "fixed schedule of 30 epochs"


def test_a_candidate_with_any_seed_stopped_by_its_cap_or_budget_reads_under_trained_with_how_many():
    assert training_summary(seeds(("budget", 37, True))) == "under-trained (time budget)"
    mixed = seeds(("converged", 12, False), ("epoch_cap", 100, True), ("budget", 40, True))
    assert training_summary(mixed) == "under-trained (epoch cap, time budget, 2 of 3 seeds)"


def test_a_model_fitted_in_one_pass_reads_one_pass():
    assert training_summary(seeds((None, None, None), (None, None, None))) == "one pass"
    runs = pd.concat(
        [seeds(("converged", 5, False), (None, None, None)).assign(candidate=["STFPM", "PaDiM"])], ignore_index=True
    )
    assert candidate_training(runs, ["candidate"]).values.tolist() == [
        ["PaDiM", "one pass"],
        ["STFPM", "converged after 5 epochs"],
    ]


def test_a_run_s_note_names_its_budget_and_epochs_and_only_an_under_trained_run_gets_the_badge():
    stopped = pd.Series(
        {"stop_reason": "budget", "epochs": 37, "under_trained": True, "epoch_cap": 100, "budget_minutes": 10.0}
    )
    assert run_note(stopped) == BUDGET_NOTE
    assert under_trained_badge(stopped) == f"under-trained: {BUDGET_NOTE}"
    capped = stopped.copy()
    capped[["stop_reason", "epochs"]] = ["epoch_cap", 100]
    assert run_note(capped) == "stopped by its 100-epoch cap before its loss levelled off"
    done = pd.Series({"stop_reason": "converged", "epochs": 12, "under_trained": False})
    assert run_note(done) == CONVERGED_NOTE and under_trained_badge(done) is None
    one_pass = pd.Series(
        {"stop_reason": None, "epochs": float("nan"), "under_trained": pd.NA, "epoch_cap": None, "budget_minutes": None}
    )
    assert run_note(one_pass) == ONE_PASS_NOTE and under_trained_badge(one_pass) is None


def test_the_loss_curve_carries_the_training_minutes_of_each_epoch():
    curve = loss_curve(pd.DataFrame({"epoch": [1, 2], "loss": [0.9, 0.5], "seconds": [30.0, 90.0]}))
    assert curve["minutes"].tolist() == [0.5, 1.5]


def test_the_runs_table_words_finished_runs_stop_reasons_and_leaves_unfinished_ones_blank():
    runs = pd.DataFrame(
        {
            "status": ["finished", "finished", "running"],
            "stop_reason": ["budget", None, None],
            "under_trained": [True, None, None],
        }
    )
    shown = runs_in_words(runs)
    assert shown["stop_reason"].tolist() == ["time budget", "one pass", None]
    assert shown["under_trained"].tolist() == [True, False, None]


# --- the store queries -----------------------------------------------------------------------------------------


def test_the_part_s_runs_carry_the_epoch_cap_and_budget_their_preset_set(trained_store):
    runs = part_training(trained_store, "part1").set_index("run_id")
    assert sorted(runs.index) == ["fastflow_budget", "padim_one_pass", "stfpm_converged"]  # finished runs only
    stopped = runs.loc["fastflow_budget"]
    assert (stopped["epochs"], stopped["stop_reason"], stopped["epoch_cap"], stopped["budget_minutes"]) == (
        37,
        "budget",
        100,
        10.0,
    )
    assert bool(stopped["under_trained"])
    one_pass = runs.loc["padim_one_pass"]
    assert pd.isna(one_pass["stop_reason"]) and pd.isna(one_pass["epoch_cap"]) and pd.isna(one_pass["budget_minutes"])
    latest = recent_runs(trained_store).set_index("run_id")
    assert latest.loc["fastflow_budget", "budget_minutes"] == 10.0 and latest.loc["stfpm_converged", "epochs"] == 12


def plotted(values) -> list:
    """A Plotly array as plain numbers (Plotly ships numeric arrays base64-encoded)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def last_chart(app) -> tuple[str, dict]:
    """The title of the page's last Plotly chart and its first trace: x, y, hover template and hover minutes."""
    figure = json.loads(app.get("plotly_chart")[-1].proto.spec)
    trace = figure["data"][0]
    minutes = plotted(trace["customdata"])
    return figure["layout"]["title"]["text"], {
        "x": plotted(trace["x"]),
        "y": plotted(trace["y"]),
        "hovertemplate": trace["hovertemplate"],
        "minutes": np.asarray(minutes).reshape(len(plotted(trace["x"])), -1)[:, 0].tolist(),
    }


# --- the pages -------------------------------------------------------------------------------------------------


def test_part_drilldown_marks_the_budget_stopped_run_under_trained_and_says_which_models_converged(
    trained_store, monkeypatch
):
    app = open_page(trained_store, "part_drilldown.py", monkeypatch)
    table = app.dataframe[0].value.set_index("candidate")
    assert table["training"].to_dict() == {
        "STFPM / EfficientNet-Lite0 (cpu)": "converged after 12 epochs",
        "FastFlow / EfficientNet-Lite0 (cpu)": "under-trained (time budget)",
        "PaDiM / EfficientNet-Lite0 (cpu)": "one pass",
    }
    summary = app.warning[0].value
    assert (
        summary.startswith("1 of 3 runs are under-trained")
        and f"FastFlow / EfficientNet-Lite0 (cpu), seed 0: {BUDGET_NOTE}" in summary
    )

    chooser = app.selectbox(key="training_run")
    assert chooser.format_func("fastflow_budget").endswith("· under-trained")
    chooser.set_value("fastflow_budget").run()
    assert f"under-trained: {BUDGET_NOTE}" in [w.value for w in app.warning]
    title, trace = last_chart(app)
    assert title == "Loss per epoch: FastFlow / EfficientNet-Lite0 (cpu), seed 0, baseline"
    assert list(trace["x"]) == list(range(1, 38)) and trace["y"][-1] == pytest.approx(0.28)
    assert "Minutes" in trace["hovertemplate"] and trace["minutes"][-1] == pytest.approx(37 * 16 / 60)

    app.selectbox(key="training_run").set_value("stfpm_converged").run()
    assert CONVERGED_NOTE in [i.value for i in app.info]
    assert not any(w.value.startswith("under-trained:") for w in app.warning)

    charts = len(app.get("plotly_chart"))
    app.selectbox(key="training_run").set_value("padim_one_pass").run()
    assert ONE_PASS_NOTE in [i.value for i in app.info]
    assert len(app.get("plotly_chart")) == charts - 1  # no loss curve for a model fitted in one pass


def test_runs_page_lists_each_run_s_training_and_shows_a_chosen_finished_run_s_loss_curve(trained_store, monkeypatch):
    app = open_page(trained_store, "runs.py", monkeypatch)
    table = app.dataframe[0].value.set_index("run_id")
    assert table.loc["fastflow_budget", ["epochs", "stop_reason", "under_trained"]].tolist() == [
        37,
        "time budget",
        True,
    ]
    assert table.loc["stfpm_converged", ["epochs", "stop_reason", "under_trained"]].tolist() == [12, "converged", False]
    assert table.loc["padim_one_pass", ["stop_reason", "under_trained"]].tolist() == ["one pass", False]
    assert table.loc["stfpm_broke", "status"] == "failed" and pd.isna(table.loc["stfpm_broke", "stop_reason"])

    chooser = app.selectbox(key="runs_training")
    assert len(chooser.options) == 3 and not any("seed 1" in name for name in chooser.options)  # finished only
    chooser.set_value("fastflow_budget").run()
    assert f"under-trained: {BUDGET_NOTE}" in [w.value for w in app.warning]
    assert last_chart(app)[0] == "Loss per epoch: FastFlow / EfficientNet-Lite0 (cpu), seed 0, baseline"

    app.selectbox(key="runs_training").set_value("padim_one_pass").run()
    assert ONE_PASS_NOTE in [i.value for i in app.info]
