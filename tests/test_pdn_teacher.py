"""EfficientAD's distilled PDN teacher: cached per backbone, image set, input size and settings; a job runs with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.transforms.v2.functional import resize

from engine.evaluation.grid import run_grid
from engine.ingest.part_data import load_part
from engine.jobs import plan_grid
from engine.models.anomalib_detector import to_tensor
from engine.models.backbones import ensure_offline_backbones
from engine.models.building import LAYERS, normalisation
from engine.models.catalogue import MODELS
from engine.models.efficient_ad.model import BackboneTeacher
from engine.models.efficient_ad.pdn_teacher import Distillation, distilled_teacher, teachers_dir
from engine.models.names import DEFAULT_BACKBONE
from store.runs import run_metrics, runs
from tests.conftest import generated_store

pytestmark = pytest.mark.heavy  # EfficientAD jobs at 256 x 256

TWO_STEPS = Distillation(steps=2)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """part1 with 12 images (8 train, 2 good test, 2 defective), registered in a fresh store: EfficientAD at 256 x 256
    with a PDN teacher scores about two images a second on one core."""
    return generated_store(tmp_path_factory.mktemp("pdn_teacher"), images=12)


@pytest.fixture(scope="module")
def source() -> BackboneTeacher:
    ensure_offline_backbones()
    return BackboneTeacher(DEFAULT_BACKBONE, LAYERS[DEFAULT_BACKBONE][:2], *normalisation(DEFAULT_BACKBONE))


def _training_images(store: Path, count: int, size: int) -> torch.Tensor:
    """The part's first `count` training images as the model sees them at `size` x `size`."""
    train = load_part("part1", store).train[:count]
    return torch.stack([resize(to_tensor(gray), [size, size], antialias=True) for gray in train])


def test_a_distilled_teacher_is_cached_and_reused_until_images_size_or_settings_change(small_store, source):
    images = _training_images(small_store, 4, 64)
    first = distilled_teacher(source, images, TWO_STEPS)
    assert first.distilled_now and first.path.parent == teachers_dir() and len(first.losses) == 2
    written = first.path.stat().st_mtime_ns

    again = distilled_teacher(source, images, TWO_STEPS)
    assert not again.distilled_now and again.path == first.path and again.losses == first.losses
    assert all(torch.equal(again.state[name], first.state[name]) for name in first.state)
    assert first.path.stat().st_mtime_ns == written

    other_images = distilled_teacher(source, images[:3], TWO_STEPS)
    other_size = distilled_teacher(source, _training_images(small_store, 4, 96), TWO_STEPS)
    other_settings = distilled_teacher(source, images, Distillation(steps=3))
    assert all(t.distilled_now for t in (other_images, other_size, other_settings))
    assert len({first.path, other_images.path, other_size.path, other_settings.path}) == 4
    assert not list(teachers_dir().glob("*.tmp"))  # each file was written whole, then renamed


def test_the_pdn_teacher_refuses_to_run_before_it_is_distilled():
    settings = {**MODELS["efficient_ad"].presets["cpu"], "teacher": "pdn"}
    module = MODELS["efficient_ad"].build(DEFAULT_BACKBONE, "cpu", settings).module
    with pytest.raises(RuntimeError, match="before it was distilled"):
        module.model.teacher(torch.rand(1, 3, 64, 64))


def test_the_recorded_deviation_names_the_chosen_teacher_and_an_unknown_one_is_refused():
    entry = MODELS["efficient_ad"]
    pdn = entry.deviations(DEFAULT_BACKBONE, {"teacher": "pdn", "teacher_steps": 40})[0]
    backbone = entry.deviations(DEFAULT_BACKBONE, {"teacher": "backbone"})[0]
    assert "PDN distilled in 40 steps" in pdn and "training images" in pdn
    assert backbone.startswith(f"teacher: frozen {DEFAULT_BACKBONE} features")
    with pytest.raises(ValueError, match="teacher 'wide_resnet'"):
        entry.deviations(DEFAULT_BACKBONE, {"teacher": "wide_resnet"})


def test_a_job_with_the_pdn_teacher_runs_end_to_end_and_caches_its_teacher(small_store, monkeypatch):
    tiny = {"image_size": [256, 256], "epochs": 1, "batches_per_epoch": 2, "teacher": "pdn", "teacher_steps": 2}
    for key, value in tiny.items():
        monkeypatch.setitem(MODELS["efficient_ad"].presets["cpu"], key, value)
    cached_before = set(teachers_dir().glob("*.pt"))
    jobs = plan_grid(["part1"], ["efficient_ad"], None, 1, ["baseline"], "cpu", small_store)
    summary = run_grid(jobs, small_store, show_progress=False)
    assert (summary.finished, summary.failed) == (1, 0)

    run = runs(small_store).set_index("run_id").loc[jobs[0].run_id]
    config = json.loads(run.config)
    assert config["anomalib_class"] == "PdnTeacherEfficientAd"
    assert any("PDN distilled in 2 steps" in deviation for deviation in config["deviations"])
    metrics = run_metrics(small_store).query("run_id == @jobs[0].run_id").set_index("metric")["value"]
    assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1
    assert len(set(teachers_dir().glob("*.pt")) - cached_before) == 1
