"""Learning curves: a job may fit on fewer of its part's training images, drawn by its seed and nested, as a run of
its own; sizes a part or a model cannot take are refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cli import main as gluelab
from engine.ingest.part_data import load_part
from engine.jobs import Job, plan_grid
from store import training_split_sizes
from store.runs import leaderboard, runs
from store.stages import run_stages
from tests.conftest import file_digest, generated_store

pytestmark = pytest.mark.heavy  # learning-curve sweeps and Chromium


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """part1 with 25 images: 15 for training."""
    return generated_store(tmp_path_factory.mktemp("sizes"))


def positions(images: list[np.ndarray], among: list[np.ndarray]) -> list[int]:
    """Where each image of `images` lies in `among` (by its pixels)."""
    keys = [image.tobytes() for image in among]
    return [keys.index(image.tobytes()) for image in images]


def test_a_smaller_training_size_draws_images_among_those_of_a_larger_one_for_the_same_seed(store):
    data = load_part("part1", store)
    assert len(data.train) == training_split_sizes(store)["part1"] == 15
    for seed in (0, 1):
        five, ten = (positions(data.training_subset(size, seed).train, data.train) for size in (5, 10))
        assert len(set(five)) == 5 and len(set(ten)) == 10 and set(five) <= set(ten)
        assert five == sorted(five)  # kept in their stored order
    assert positions(data.training_subset(5, 0).train, data.train) != positions(
        data.training_subset(5, 1).train, data.train
    )
    assert data.training_subset(None, 0) is data and data.training_subset(5, 0).test is data.test


def test_a_sweep_and_a_full_run_are_separate_runs_and_only_the_full_run_is_compared(store, capsys):
    command = ["evaluate", "--parts", "part1", "--models", "padim", "--store", str(store)]
    assert gluelab([*command, "--train-sizes", "5", "10"]) == 0
    assert gluelab(command) == 0  # all the training images, as before sizes existed
    table = runs(store).set_index("run_id")
    full = Job("part1", "padim", "tf_efficientnet_lite0", "cpu", 0, "baseline")
    assert full.run_id in table.index and full.key() == {  # the id a run on every image always had
        "part": "part1", "model": "padim", "backbone": "tf_efficientnet_lite0", "preset": "cpu", "seed": 0,
        "condition": "baseline",
    }  # fmt: skip
    sized = {size: Job(*full.key().values(), train_size=size).run_id for size in (5, 10)}
    assert len({full.run_id, *sized.values()}) == 3
    assert table.loc[sized[5], "n_train"] == 5 and table.loc[sized[10], "n_train"] == 10
    assert table.loc[full.run_id, "n_train"] == 15 and pd.isna(table.loc[full.run_id, "train_size"])
    assert "part1 padim/tf_efficientnet_lite0 seed 0 baseline on 5 training images" in capsys.readouterr().err
    compared = leaderboard(store, "part1")
    assert set(compared.loc[compared.metric == "image_auroc", "n_seeds"]) == {1}  # the sweep is not averaged in
    # The sweep's runs are there for their accuracy: not timed (their speed is the full run's), every test image scored.
    assert table.loc[[*sized.values()], ["inference_ms", "throughput_fps"]].isna().all().all()
    assert table.loc[full.run_id, "inference_ms"] > 0 and table.loc[full.run_id, "throughput_fps"] > 0
    stages = run_stages(store, [full.run_id, *sized.values()]).groupby("run_id")["stage"].apply(set)
    assert "timing" in stages[full.run_id] and all("timing" not in stages[run] for run in sized.values())
    assert (table.loc[[full.run_id, *sized.values()], "n_test"] == table.loc[full.run_id, "n_test"]).all()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--models", "padim", "--train-sizes", "16"], "training size 16: part 'part1' has only 15 training images"),
        (["--models", "dfkde", "--train-sizes", "10"], "training size 10: DFKDE fits on at least 16 training images"),
    ],
)
def test_a_size_the_part_or_the_model_cannot_take_is_refused_by_name_and_the_store_is_untouched(
    store, arguments, named, capsys
):
    before = file_digest(store)
    assert gluelab(["evaluate", "--parts", "part1", *arguments, "--store", str(store)]) == 2
    assert named in capsys.readouterr().err
    assert file_digest(store) == before


def test_a_size_that_is_not_a_number_is_refused_by_the_command_line(store, capsys):
    with pytest.raises(SystemExit):
        gluelab(["evaluate", "--parts", "part1", "--models", "padim", "--train-sizes", "ten", "--store", str(store)])
    assert "give a whole number of images or all (got 'ten')" in capsys.readouterr().err
    with pytest.raises(ValueError, match="training size 0: give a whole number"):
        plan_grid(["part1"], ["padim"], None, 1, ["baseline"], "cpu", store, [0])


def test_part_drill_down_shows_how_many_images_a_part_needs_in_chromium(store):
    """On the store holding the sweep above (PaDiM on 5, 10 and all 15 training images): the section's chart and one
    sentence naming the fewest images reaching 95 % of PaDiM's image AUROC, as `learning_curves` computes it."""
    from playwright.sync_api import expect, sync_playwright

    from engine.analysis import learning_curves
    from engine.analysis.candidates import with_candidates
    from engine.analysis.results_table import LOCAL_SOURCE
    from store.queries import learning_curve_runs
    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS, gluelab_dashboard, settled

    table = learning_curves.curves(with_candidates(learning_curve_runs(store, "part1", "baseline"), LOCAL_SOURCE))
    assert table["n_train"].tolist() == [5, 10, 15]
    (sentence,) = learning_curves.sentences(table)
    assert sentence.startswith("PaDiM / EfficientNet-Lite0 (cpu) reaches 95 % of its image AUROC")
    assert f"with {learning_curves.smallest_reaching(table)} images" in sentence
    with gluelab_dashboard(store) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 3000})
        page.goto(f"{url}/part_drilldown")
        settled(page)
        expect(page.get_by_role("heading", name="How many images?")).to_be_visible(timeout=60_000)
        expect(page.get_by_text(sentence)).to_be_visible(timeout=60_000)
        expect(page.locator(".plotly .gtitle", has_text="How many training images?")).to_have_count(1, timeout=60_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "part-drilldown-how-many-images.png", full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()


def test_an_engineer_queues_a_sweep_from_the_runs_page_and_a_wrong_size_is_named(store, tmp_path, monkeypatch):
    import shutil

    from store.requests import requests_table
    from tests.test_roles import WITH_PASSPHRASE, checked, runs_page, sign_in

    copy = Path(shutil.copy(store, tmp_path / "store.duckdb"))
    app = sign_in(runs_page(copy, WITH_PASSPHRASE, monkeypatch))
    app.multiselect(key="submit_models").set_value(["padim"])
    app.text_input(key="submit_train_sizes").input("ten all")
    checked(app.button(key="submit_request").click().run())
    assert "training size 'ten': give a whole number of images of at least 1, or all" in app.error[0].value
    assert requests_table(copy).empty
    app.text_input(key="submit_train_sizes").input("5, 10 all")
    checked(app.button(key="submit_request").click().run())
    grid = requests_table(copy)["grid"].iloc[0]
    assert json.loads(grid)["train_sizes"] == [5, 10, None]
    assert "training images 5, 10, all" in " ".join(str(cell) for cell in app.dataframe[0].value["grid"])
