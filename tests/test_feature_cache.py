"""The frozen-feature cache: what its key covers, that it never changes a result, and how it keeps its size.

The extractors here are the ones the models use (anomalib's TimmFeatureExtractor on the packaged
EfficientNet-Lite0, a timm `features_only` network as FastFlow holds it); inputs are real pre-processed
images of a generated part.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.evaluation.evaluate import evaluate_job
from engine.ingest.part_data import load_part, study_augmentation
from engine.jobs import Job
from engine.models.anomalib_detector import TrainImages
from engine.models.backbones import ensure_offline_backbones
from engine.models.building import pre_processor
from engine.models.cached_features import CachedLayers, cached_submodules
from engine.models.catalogue import MODELS
from engine.models.feature_cache import FeatureCache, feature_cache_dir
from tests.conftest import generated_store

pytestmark = pytest.mark.heavy  # processes sharing a cache

BACKBONE = "tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def part_store(tmp_path_factory) -> Path:
    return generated_store(tmp_path_factory.mktemp("cache"), images=25)


@pytest.fixture(scope="module")
def images(part_store) -> list[np.ndarray]:
    return load_part("part1", part_store).train[:4]


def extractor(layers: list[str]):
    from anomalib.models.components import TimmFeatureExtractor

    ensure_offline_backbones()
    return TimmFeatureExtractor(BACKBONE, layers=layers).eval()


def batch(images: list[np.ndarray], size: int = 64, backbone: str = BACKBONE) -> torch.Tensor:
    transform = pre_processor(backbone, {"image_size": [size, size]}).transform
    return torch.stack([TrainImages(images, None, transform)[i].image for i in range(len(images))])


def counted(cache: FeatureCache, module, inputs: torch.Tensor) -> tuple[int, int, object]:
    """(hits, misses) of one call through the caching wrapper, and its output."""
    hits, misses = cache.hits, cache.misses
    output = CachedLayers(module, cache)(inputs)
    return cache.hits - hits, cache.misses - misses, output


def test_cached_features_equal_the_extractors_own_and_are_read_back_on_the_second_pass(tmp_path, images):
    cache, module, inputs = FeatureCache(tmp_path), extractor(["blocks.1", "blocks.2"]), batch(images)
    expected = module(inputs)
    hits, misses, first = counted(cache, module, inputs)
    assert (hits, misses) == (0, 8)  # 4 images x 2 layers, none there yet
    hits, misses, second = counted(cache, module, inputs)
    assert (hits, misses) == (8, 0)  # 4 images x 2 layers
    for layer in ("blocks.1", "blocks.2"):
        assert torch.equal(first[layer], expected[layer]) and torch.equal(second[layer], expected[layer])


def test_a_layer_computed_for_one_model_serves_another_model_on_the_same_weights(tmp_path, images):
    """PaDiM's blocks.2 and PatchCore's blocks.2 are the same features: one entry serves both."""
    cache, inputs = FeatureCache(tmp_path), batch(images)
    counted(cache, extractor(["blocks.1", "blocks.2"]), inputs)
    hits, misses, output = counted(cache, extractor(["blocks.2"]), inputs)
    assert (hits, misses) == (4, 0)
    assert torch.equal(output["blocks.2"], extractor(["blocks.2"])(inputs)["blocks.2"])
    hits, misses, _ = counted(cache, extractor(["blocks.4"]), inputs)  # a layer never computed: computed now
    assert misses >= 1


def test_other_weights_input_size_normalisation_or_augmentation_draw_never_hit(tmp_path, images):
    cache = FeatureCache(tmp_path)
    counted(cache, extractor(["blocks.2"]), batch(images))

    retrained = extractor(["blocks.2"])
    with torch.no_grad():
        retrained.feature_extractor.conv_stem.weight.mul_(1.01)
    assert counted(cache, retrained, batch(images))[:2] == (0, 4)

    assert counted(cache, extractor(["blocks.2"]), batch(images, size=96))[:2] == (0, 4)
    assert counted(cache, extractor(["blocks.2"]), batch(images, backbone="resnet18"))[:2] == (
        0,
        4,
    )  # ImageNet statistics

    augmented = TrainImages(
        images, study_augmentation(seed=0), pre_processor(BACKBONE, {"image_size": [64, 64]}).transform
    )
    draws = []
    for version in (0, 1, 0):
        augmented.set_epoch(version)
        draws.append(torch.stack([augmented[i].image for i in range(len(images))]))
    assert not torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    # Each of the three augmentations applies with p = 0.5, so an image's draw may leave its pixels as they
    # were: those (and only those) are the same input as one already cached.
    seen = [batch(images)]  # cached by the first call above
    for draw in draws:
        repeats = sum(any(torch.equal(sample, earlier[i]) for earlier in seen) for i, sample in enumerate(draw))
        assert counted(cache, extractor(["blocks.2"]), draw)[:2] == (repeats, len(images) - repeats)
        seen.append(draw)
    assert counted(cache, extractor(["blocks.2"]), draws[2])[:2] == (4, 0)  # the same draw again: read back


def test_the_least_recently_used_entries_go_first_when_the_cache_outgrows_its_limit(tmp_path):
    cache = FeatureCache(tmp_path, limit_gb=3 * 4096 / 2**30)  # room for three 4 KB entries
    for name in "abcd":
        cache.put(name * 40, torch.zeros(1024))
        time.sleep(0.01)
    os.utime(cache._path("a" * 40), (time.time() + 5, time.time() + 5))  # read most recently
    assert cache.evict() >= 1
    assert cache.get("a" * 40) is not None and cache.get("b" * 40) is None
    assert cache.size_bytes() <= cache.limit_bytes


def test_a_damaged_entry_is_a_miss_and_is_written_again(tmp_path, images):
    cache, module, inputs = FeatureCache(tmp_path), extractor(["blocks.2"]), batch(images)
    counted(cache, module, inputs)
    for path in tmp_path.rglob("*.npy"):
        path.write_bytes(b"\x93NUMPY garbage")
    hits, misses, output = counted(cache, module, inputs)
    assert hits == 0 and torch.equal(output["blocks.2"], module(inputs)["blocks.2"])
    assert counted(cache, module, inputs)[:2] == (4, 0)


def _hammer(folder: str, seed: int, rounds: int, results) -> None:
    cache, rng = FeatureCache(folder, limit_gb=20 * 4096 / 2**30), np.random.default_rng(seed)
    wrong = 0
    for _ in range(rounds):
        key = f"{rng.integers(40):02d}" * 20
        value = torch.full((1024,), float(int(key[:2])))
        found = cache.get(key)
        if found is None:
            cache.put(key, value)
        elif not torch.equal(found, value):
            wrong += 1
        if rng.random() < 0.1:
            cache.evict()
    results.put(wrong)


def test_two_processes_sharing_the_cache_never_read_a_partial_or_wrong_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(str(tmp_path), seed, 400, results)) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert [results.get(timeout=5), results.get(timeout=5)] == [0, 0]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("model", ["padim", "stfpm"])
def test_a_cached_run_gives_the_same_scores_and_metrics_as_an_uncached_one(model, part_store, tmp_path):
    """PaDiM fits in one pass; STFPM trains three epochs on a shuffled loader (its teacher's features cached)."""
    data = load_part("part1", part_store)
    settings = {**MODELS[model].presets["cpu"], "image_size": [64, 64]}
    if "epochs" in settings:
        settings |= {"epochs": 3, "batch_size": 4}
    job = Job("part1", model, BACKBONE, "cpu", 0, "baseline")
    cache = FeatureCache(feature_cache_dir(part_store))
    plain = evaluate_job(job, data, tmp_path, "plain", settings)
    cold = evaluate_job(job, data, tmp_path, "cold", settings, cache)
    hits_before = cache.hits
    warm = evaluate_job(job, data, tmp_path, "warm", settings, cache)
    assert cache.hits > hits_before
    for outcome in (cold, warm):
        assert np.allclose(outcome.image_scores["score"], plain.image_scores["score"], rtol=0, atol=1e-6)
        for metric, value in plain.metrics.items():
            assert outcome.metrics[metric] == pytest.approx(value, abs=1e-6), metric
        if plain.training is not None:
            assert outcome.training is not None
            assert np.allclose(outcome.training.losses, plain.training.losses, rtol=0, atol=1e-6)


def test_cached_submodules_puts_the_original_extractor_back(images):
    from anomalib.models.components import TimmFeatureExtractor

    module = torch.nn.Module()
    module.feature_extractor = extractor(["blocks.2"])
    original = module.feature_extractor
    with cached_submodules(module, ["feature_extractor"], FeatureCache("/nonexistent-cache-folder")):
        assert isinstance(module.feature_extractor, CachedLayers)
    assert module.feature_extractor is original and isinstance(original, TimmFeatureExtractor)
