"""Backbones load real ImageNet weights offline, through timm's normal pretrained path, or fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from anomalib.models.components import TimmFeatureExtractor
from safetensors.torch import save_file as save_safetensors
from skimage import data

from engine.models.backbones import (
    DEFAULT_BACKBONE,
    PACKAGED_BACKBONES,
    MissingWeightsError,
    backbone_status,
    create_backbone,
    ensure_offline_backbones,
    import_weights,
)
from engine.paths import weights_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
TABBY_TO_EGYPTIAN_CAT = range(281, 286)  # ImageNet's domestic-cat classes
ESPRESSO = 967


@pytest.fixture(scope="session", autouse=True)
def gluelab_home(tmp_path_factory):
    """One converted-weights folder for the session; never ~/.gluelab."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("gluelab_home")
        patch.setenv("GLUELAB_HOME", str(home))
        yield home


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """An empty GLUELAB_HOME, for tests that import weights."""
    home = tmp_path / "home"
    monkeypatch.setenv("GLUELAB_HOME", str(home))
    return home


@pytest.fixture
def resnet18_checkpoint(tmp_path):
    state_dict = timm.create_model("resnet18", pretrained=False).state_dict()
    file = tmp_path / "resnet18_imagenet.pth"
    torch.save(state_dict, file)
    return file, state_dict


def _imagenet_class(model: torch.nn.Module, image) -> int:
    size = model.pretrained_cfg["input_size"][1:]
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return int(model((pixels - 0.5) / 0.5).argmax())


@pytest.mark.parametrize("name", PACKAGED_BACKBONES)
def test_packaged_backbones_recognise_imagenet_photos(name):
    model = create_backbone(name).eval()
    assert _imagenet_class(model, data.chelsea()) in TABBY_TO_EGYPTIAN_CAT
    assert _imagenet_class(model, data.coffee()) == ESPRESSO


def test_conversion_happens_once():
    ensure_offline_backbones()
    files = [weights_dir() / f"{name}.pth" for name in PACKAGED_BACKBONES]
    written = [file.stat().st_mtime_ns for file in files]
    started = time.perf_counter()
    ensure_offline_backbones()
    assert time.perf_counter() - started < 0.1
    assert [file.stat().st_mtime_ns for file in files] == written
    assert backbone_status(DEFAULT_BACKBONE) is None


def test_anomalib_feature_extractor_gets_the_packaged_weights():
    ensure_offline_backbones()
    layers = ["blocks.1", "blocks.2", "blocks.4"]
    extractor = TimmFeatureExtractor(backbone=DEFAULT_BACKBONE, layers=layers, pre_trained=True).eval()
    reference = timm.create_model(DEFAULT_BACKBONE, features_only=True, out_indices=extractor.idx)
    converted = torch.load(weights_dir() / f"{DEFAULT_BACKBONE}.pth", weights_only=True)
    reference.load_state_dict({key: converted[key] for key in reference.state_dict()})
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        features, expected = extractor(images), reference.eval()(images)
    assert extractor.reductions == [4, 8, 16]
    for layer, want in zip(layers, expected, strict=True):
        torch.testing.assert_close(features[layer], want)


@pytest.mark.parametrize("name", ["resnet18", "wide_resnet50_2"])
def test_missing_weights_fail_fast_with_the_fix(name):
    started = time.perf_counter()
    with pytest.raises(MissingWeightsError) as error:
        create_backbone(name)
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert f"gluelab weights import FILE --name {name}" in message
    assert backbone_status(name) == message


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="not a timm model"):
        create_backbone("resnet_does_not_exist")
    assert "not a timm model" in backbone_status("resnet_does_not_exist")


@pytest.mark.parametrize("layout", ["raw", "state_dict", "model", "safetensors"])
def test_imported_weights_are_used(fresh_home, resnet18_checkpoint, layout):
    file, state_dict = resnet18_checkpoint
    if layout == "safetensors":
        file = file.with_suffix(".safetensors")
        save_safetensors(state_dict, file)
    elif layout != "raw":
        torch.save({layout: state_dict, "epoch": 90}, file)
    stored = import_weights(file, "resnet18")
    assert stored == weights_dir() / "resnet18.pth"
    assert stored.is_relative_to(fresh_home)
    assert backbone_status("resnet18") is None
    loaded = create_backbone("resnet18").state_dict()
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[key], value) for key, value in state_dict.items())


def test_imported_weights_survive_a_new_process(fresh_home, resnet18_checkpoint):
    file, _ = resnet18_checkpoint
    import_weights(file, "resnet18")
    check = (
        "import torch; from engine.models.backbones import create_backbone; "
        "m = create_backbone('resnet18', features_only=True); "
        f"assert torch.equal(m.conv1.weight, torch.load({str(file)!r}, weights_only=True)['conv1.weight'])"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, env=env, check=True, timeout=60)


def test_checkpoint_with_a_wrong_shape_is_refused(fresh_home, resnet18_checkpoint):
    file, state_dict = resnet18_checkpoint
    torch.save({**state_dict, "fc.weight": torch.zeros(10, 512)}, file)
    with pytest.raises(ValueError) as error:
        import_weights(file, "resnet18")
    assert str(file) in str(error.value) and "fc.weight" in str(error.value)
    assert not (weights_dir() / "resnet18.pth").exists()
    assert backbone_status("resnet18") is not None


def test_checkpoint_with_a_missing_key_is_refused(fresh_home, resnet18_checkpoint):
    file, state_dict = resnet18_checkpoint
    torch.save({key: value for key, value in state_dict.items() if key != "fc.bias"}, file)
    with pytest.raises(ValueError, match="missing key 'fc.bias'") as error:
        import_weights(file, "resnet18")
    assert str(file) in str(error.value)


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b""])
def test_file_that_is_not_a_checkpoint_is_refused(fresh_home, tmp_path, content):
    file = tmp_path / "notes.pth"
    file.write_bytes(content)
    with pytest.raises(ValueError) as error:
        import_weights(file, "resnet18")
    assert str(file) in str(error.value)
    assert not (weights_dir() / "resnet18.pth").exists()


def test_checkpoint_for_an_unknown_model_name_is_refused(resnet18_checkpoint):
    file, _ = resnet18_checkpoint
    with pytest.raises(ValueError, match="not a timm model"):
        import_weights(file, "resnet_does_not_exist")


def test_the_first_model_built_in_a_process_draws_the_same_random_choices_as_the_next(tmp_path, monkeypatch):
    """Converting the packaged weights (first build only) must not move torch's seeded random state."""
    from lightning.pytorch import seed_everything

    from engine.models.catalogue import get_model

    monkeypatch.setenv("GLUELAB_HOME", str(tmp_path))  # a home without converted weights: the first build converts
    settings = {**get_model("padim").presets["cpu"], "image_size": [64, 64]}
    chosen = []
    for _ in range(2):
        seed_everything(0)
        chosen.append(get_model("padim").build("tf_efficientnet_lite0", "cpu", settings).module.model.idx.tolist())
    assert chosen[0] == chosen[1]
