"""When gradient training stops, and what a run records about it."""

from __future__ import annotations

import json

import pytest

from engine.evaluation.grid import run_grid
from engine.jobs import plan_grid
from engine.models.catalogue import MODELS
from engine.models.training import TrainingClock, levelled_off
from store.runs import run_training_losses, runs, training_note
from tests.conftest import generated_store


def test_the_loss_has_levelled_off_once_its_five_epoch_average_improves_by_less_than_one_percent():
    falling = [100 * 0.8**epoch for epoch in range(10)]  # 20 % a epoch: far from levelled off
    assert not levelled_off(falling)
    flat = [10.0, 9.0, 8.0, 7.0, 6.0] + [5.02, 5.01, 5.0, 4.99, 4.98]
    assert not levelled_off(flat)  # the average fell from 8.0 to 5.0
    plateau = [5.05, 5.04, 5.03, 5.02, 5.01, 5.0, 4.99, 4.98, 4.97, 4.96]  # 5.03 -> 4.98: 0.99 %
    assert levelled_off(plateau)
    assert not levelled_off(plateau[1:])  # nine epochs are too few to compare two five-epoch windows
    assert levelled_off([3.0] * 5 + [3.1] * 5)  # got worse: nothing left to gain


def test_a_loss_crossing_zero_is_compared_on_its_larger_magnitude():
    """A flow's negative log-likelihood falling from +0.5 to -0.5 is progress, not a tiny change near zero."""
    crossing = [0.5] * 5 + [-0.5] * 5
    assert not levelled_off(crossing)
    assert levelled_off([-1000.0] * 5 + [-1005.0] * 5)  # 0.5 % of 1005


@pytest.mark.parametrize(
    ("settings", "losses", "reason", "epochs"),
    [
        ({"epochs": 3}, [5, 4, 3, 2], "schedule", 3),  # paper: the study's epochs, all of them
        ({"epochs": 4, "budget_minutes": 60}, [5, 4, 3, 2, 1], "epoch_cap", 4),
        ({"epochs": 50, "budget_minutes": 0}, [5, 4], "budget", 1),
        ({"epochs": 50, "budget_minutes": 60}, [5.0] * 12, "converged", 10),
    ],
)
def test_training_stops_by_schedule_cap_budget_or_convergence(settings, losses, reason, epochs):
    clock = TrainingClock(settings)
    for loss in losses:
        if clock.epoch_done(loss):
            break
    record = clock.record()
    assert (record.stop_reason, record.epochs) == (reason, epochs)
    assert record.under_trained == (reason in ("epoch_cap", "budget"))


def test_a_loss_that_is_not_a_number_fails_the_run():
    with pytest.raises(FloatingPointError, match="epoch 2"):
        clock = TrainingClock({"epochs": 5, "budget_minutes": 1})
        clock.epoch_done(1.0)
        clock.epoch_done(float("nan"))


def test_a_run_stopped_by_its_budget_is_stored_under_trained_with_its_loss_per_epoch(tmp_path, monkeypatch):
    store = generated_store(tmp_path)
    for key, value in {"image_size": [64, 64], "batch_size": 4, "budget_minutes": 0.0}.items():
        monkeypatch.setitem(MODELS["stfpm"].presets["cpu"], key, value)
    jobs = plan_grid(["part1"], ["stfpm"], None, 1, ["baseline"], "cpu", store)
    assert run_grid(jobs, store, show_progress=False).finished == 1
    run = runs(store).iloc[0]
    assert (run["stop_reason"], run["epochs"], bool(run["under_trained"])) == ("budget", 1, True)
    losses = run_training_losses(run["run_id"], store)
    assert losses["epoch"].tolist() == [1] and losses["loss"].iloc[0] > 0 and losses["seconds"].iloc[0] > 0
    settings = json.loads(run["config"])["settings"]
    assert training_note(run["stop_reason"], run["epochs"], settings["epochs"], settings["budget_minutes"]) == (
        "stopped by the 0-minute budget after 1 epochs, before its loss levelled off"
    )


def test_a_long_training_reports_its_epochs_now_and_then_and_says_when_it_stops():
    said: list[str] = []
    clock = TrainingClock({"epochs": 3, "budget_minutes": 60}, report=said.append)
    for loss in (0.9, 0.8, 0.7):
        clock.epoch_done(loss)
    assert said[-1].startswith("epoch 3, loss 0.7,") and said[-1].endswith("stopped: epoch_cap")
    assert len(said) <= 2  # the first and the last epoch within 30 s, not every epoch
