"""Requests are taken as meant: repeated values run once, flags that do not apply are named, nothing is overwritten.

Each test here guards a way a request used to do something other than what it said without a word:
run a job twice, drop a backbone or replace a registered part's images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main as gluelab
from engine.jobs import plan_grid
from store import part_images
from tests.conftest import file_digest


@pytest.fixture(scope="module")
def part1_store(tmp_path_factory) -> Path:
    """part1 with 10 generated images, registered in a fresh store."""
    root = tmp_path_factory.mktemp("requests")
    store = root / "store.duckdb"
    command = ["generate", "--parts", "part1", "--images", "10", "--out", str(root / "data"), "--store", str(store)]
    assert gluelab(command) == 0
    return store


def test_repeated_parts_models_and_conditions_plan_each_job_once_in_order(part1_store):
    jobs = plan_grid(
        ["part1", "part1"], ["padim", "legacy", "padim"], None, 1, ["baseline", "baseline"], "cpu", part1_store
    )
    assert [(job.part, job.model, job.condition) for job in jobs] == [
        ("part1", "padim", "baseline"),
        ("part1", "legacy", "baseline"),
    ]
    assert (
        len(plan_grid(["part1"], ["padim"], ["tf_efficientnet_lite0"] * 2, [0, 0, 1], ["baseline"], "cpu", part1_store))
        == 2
    )


def test_a_model_given_twice_runs_once_and_is_counted_once(part1_store, capsys):
    code = gluelab(
        ["evaluate", "--parts", "part1", "part1", "--models", "legacy", "legacy", "--store", str(part1_store)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1 runs finished, 0 failed, 0 already done" in out, out


def test_backbones_for_models_that_take_none_are_refused_naming_the_value(part1_store, capsys):
    code = gluelab(
        ["evaluate", "--parts", "part1", "--models", "legacy", "--backbones", "tf_efficientnet_lite1"]
        + ["--store", str(part1_store)]
    )
    assert code == 2
    assert (
        "--backbones tf_efficientnet_lite1: legacy takes no backbone; leave --backbones out" in capsys.readouterr().err
    )


def test_backbones_beside_a_model_without_one_are_named_in_a_warning(part1_store, caplog):
    with caplog.at_level(logging.WARNING, logger="gluelab"):
        jobs = plan_grid(["part1"], ["legacy", "padim"], ["tf_efficientnet_lite1"], 1, ["baseline"], "cpu", part1_store)
    assert [(job.model, job.backbone) for job in jobs] == [("legacy", ""), ("padim", "tf_efficientnet_lite1")]
    assert "--backbones tf_efficientnet_lite1: legacy takes no backbone" in caplog.text


def test_generate_refuses_to_overwrite_a_registered_part_unless_asked_to_replace_it(tmp_path, capsys):
    store, out = tmp_path / "store.duckdb", tmp_path / "data"
    command = ["generate", "--parts", "part1", "--images", "10", "--out", str(out), "--store", str(store)]
    assert gluelab([*command, "--seed", "0"]) == 0
    manifest, store_before = out / "part1" / "manifest.csv", file_digest(store)
    manifest_before = file_digest(manifest)
    capsys.readouterr()

    assert gluelab([*command, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'part1'} holds part1, registered in {store}" in err and "--replace" in err
    assert file_digest(manifest) == manifest_before and file_digest(store) == store_before

    assert gluelab([*command, "--seed", "1", "--replace"]) == 0
    assert file_digest(manifest) != manifest_before
    registered = part_images("part1", store).set_index("image_path")["mean_brightness"].sort_index()
    written = pd.read_csv(manifest).set_index("image_path")["mean_brightness"].sort_index()
    assert (registered - written).abs().max() < 1e-3  # registered again from the new images
