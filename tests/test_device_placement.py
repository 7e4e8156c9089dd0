"""Every model keeps its tensors on the job's device, checked without a GPU.

On a GPU a tensor made on the CPU inside model code meets the model's CUDA tensors and torch raises; on the CPU
alone nothing shows it. These tests run each model on a simulated second device (`tests.simulated_device`):
its tensors compute on the CPU but any mix with a tensor really on the CPU raises torch's own error. So a model
that fits and scores there, exactly as on the CPU, puts every tensor where `AnomalibDetector.to` put the module.
The CUDA runs themselves are in `tests/test_devices.py` (marked `cuda`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anomalib.data import InferenceBatch
from lightning.pytorch import seed_everything

from engine.models.cached_features import CachedLayers
from engine.models.catalogue import MODELS
from engine.models.feature_cache import FeatureCache
from engine.models.patchcore.model import FastKCenterGreedy, greedy_in_rounds, projection_reduces
from tests.simulated_device import SIMULATED, Simulated, on_cpu, simulated_device

pytestmark = pytest.mark.heavy  # fits every model twice

# Inputs as small as each model's architecture allows: CS-Flow reads stride 128, SuperSimpleNet's Perlin noise and EfficientAD's PDN need more than 64.
SIDE = {"csflow": 128, "supersimplenet": 128, "efficient_ad": 256}
NOT_SIMULATED = {
    "legacy": "the legacy check is numpy on the CPU and says so (its `to` returns 'cpu')",
    "draem": "kornia's SSIM, in DRAEM's loss, opens torch.autocast for its input's device type, which the simulated "
    "(meta) device has not; DRAEM's device is checked by the CUDA test only",
}


def _images(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 128), dtype=np.uint8) for _ in range(count)]


TRAIN, TEST = _images(20, 0), _images(3, 1)
# dfkde's PCA keeps 16 components; EfficientAD, at 256 x 256, takes one image a step and computes its teacher's statistics
# and its map quantiles from two; six images train every other model for one step.
TRAIN_IMAGES = {"dfkde": 20, "efficient_ad": 2}


def _settings(model: str) -> dict:
    """The `cpu` preset cut to one training step of two images on small inputs."""
    preset = MODELS[model].presets["cpu"]
    side = min(SIDE.get(model, 64), preset["image_size"][0])
    settings = {**preset, "image_size": [side, side], "epochs": 1, "batches_per_epoch": 1, "batch_size": 2}
    if "fiber_batch_size" in preset:
        settings["fiber_batch_size"] = 4
    if "teacher" in preset:
        settings["teacher_steps"] = 2
    return settings


def _fit_and_score(model: str, settings: dict, cache: FeatureCache | None, simulated: bool):
    """(scores, maps, the torch model's raw output on one test batch) of `model` fitted on `TRAIN`."""
    seed_everything(0, verbose=False)
    entry = MODELS[model]
    detector = entry.build(entry.default_backbone, "cpu", settings)
    if simulated:
        with simulated_device():
            assert detector.to(SIMULATED.type) == SIMULATED.type
            return _run(model, detector, cache)
    return _run(model, detector, cache)


def _run(model: str, detector, cache: FeatureCache | None):
    with detector.cached_features(cache):
        detector.fit(TRAIN[: TRAIN_IMAGES.get(model, 6)], None)
    prediction = detector.predict(TEST, batch_size=2)
    batch = torch.stack([detector.from_gray(image) for image in TEST[:2]]).to(detector.device)
    with torch.inference_mode():
        output = detector.module.model(batch)
    return prediction, output


def _tensors(output) -> dict[str, torch.Tensor]:
    if isinstance(output, InferenceBatch):
        return {name: value for name, value in output._asdict().items() if isinstance(value, torch.Tensor)}
    return {"output": output}


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(name, marks=pytest.mark.skip(reason=NOT_SIMULATED[name])) if name in NOT_SIMULATED else name
        for name in MODELS
    ],
)
def test_every_model_fits_and_scores_on_another_device_exactly_as_on_the_cpu(model, tmp_path):
    entry = MODELS[model]
    missing = entry.missing(entry.default_backbone)
    if missing:
        pytest.skip(missing)
    settings = _settings(model)
    frozen = bool(entry.frozen_paths(settings))
    # The CPU run fills the feature cache and the simulated run reads it back: cached features must arrive on the
    # device of the input that asked for them.
    cache = FeatureCache(tmp_path / "features") if frozen else None
    on_the_cpu, _ = _fit_and_score(model, settings, cache, simulated=False)
    elsewhere, output = _fit_and_score(model, settings, cache, simulated=True)
    if frozen:
        assert cache is not None and cache.hits > 0
    for name, tensor in _tensors(output).items():
        assert tensor.device == SIMULATED, f"{model}'s forward returned {name} on {tensor.device}"
    np.testing.assert_allclose(elsewhere.scores, on_the_cpu.scores, rtol=1e-5)
    if on_the_cpu.maps is not None:
        assert elsewhere.maps is not None
        np.testing.assert_allclose(elsewhere.maps, on_the_cpu.maps, rtol=1e-5, atol=1e-6)


def test_efficient_ad_distils_its_pdn_teacher_on_the_device_of_the_model():
    """The PDN teacher is distilled from a backbone teacher kept outside the module's parameters; it moves with the
    module and distils there. The simulated run distils first, so the CPU run reads its teacher from the cache."""
    settings = {**_settings("efficient_ad"), "teacher": "pdn"}
    elsewhere, _ = _fit_and_score("efficient_ad", settings, None, simulated=True)
    on_the_cpu, _ = _fit_and_score("efficient_ad", settings, None, simulated=False)
    np.testing.assert_allclose(elsewhere.scores, on_the_cpu.scores, rtol=1e-5)


def test_patchcore_greedy_coreset_runs_on_the_features_device_and_picks_as_on_the_cpu():
    """The issue's traceback (`patchcore.py:92`): the distances the greedy keeps were made on the CPU."""
    features = torch.randn(600, 24, generator=torch.Generator().manual_seed(0))
    expected = greedy_in_rounds(features, 40, 7, pool=16)
    with simulated_device():
        assert greedy_in_rounds(Simulated(features), 40, 7, pool=16) == expected


def test_patchcore_coreset_is_sampled_on_the_device_of_the_embeddings():
    """anomalib's random projection (these 2,000 patches project to fewer dimensions) and the greedy's random
    start, as `FastCoresetPatchcore.fit` samples its memory bank."""
    embedding = torch.randn(2000, 400, generator=torch.Generator().manual_seed(1))
    assert projection_reduces(*embedding.shape)
    seed_everything(0, verbose=False)
    expected = FastKCenterGreedy(embedding, 0.01).sample_coreset()
    seed_everything(0, verbose=False)
    with simulated_device():
        bank = FastKCenterGreedy(Simulated(embedding), 0.01).sample_coreset()
        assert bank.device == SIMULATED
    torch.testing.assert_close(on_cpu(bank), expected)


def test_cached_features_come_back_on_the_device_of_the_input(tmp_path):
    import timm

    network = timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(1, 2)).eval()
    cache = FeatureCache(tmp_path)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    cached = CachedLayers(network, cache)
    with torch.no_grad():
        computed = cached(images)  # computed and kept
        with simulated_device():
            read = cached(Simulated(images))  # read back: every sample is a hit
    assert cache.hits == 4 and all(tensor.device == SIMULATED for tensor in read)
    for fresh, again in zip(computed, read, strict=True):
        torch.testing.assert_close(on_cpu(again), fresh)


def test_the_simulated_device_refuses_a_mix_as_cuda_does():
    with simulated_device():
        elsewhere = Simulated(torch.ones(3))
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            elsewhere + torch.ones(3)
        assert (elsewhere + torch.tensor(1.0)).device == SIMULATED  # a CPU scalar may join, as on CUDA
        assert elsewhere[torch.tensor([0, 2])].device == SIMULATED  # and a CPU index
        assert torch.zeros(2, device=elsewhere.device).device == SIMULATED
        assert elsewhere.cpu().device.type == "cpu"
