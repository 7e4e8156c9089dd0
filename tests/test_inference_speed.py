"""What gluelab changes to make scoring faster computes what anomalib computes.

Each speed-up (benchmarks/inference_overhead.py times them) is checked here against anomalib's own code on the
same inputs: features, distances, nearest patches and smoothed maps agree to float rounding.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from anomalib.models.components import TimmFeatureExtractor
from anomalib.models.components.filters import GaussianBlur2d
from anomalib.models.image.padim.anomaly_map import AnomalyMapGenerator
from anomalib.models.image.patchcore.torch_model import PatchcoreModel

from engine.models.anomalib_detector import gray_input, to_tensor
from engine.models.backbones import drop_unused_stages, ensure_offline_backbones
from engine.models.blur import SeparableGaussianBlur, separate_blurs
from engine.models.building import LAYERS, pre_processor, resize_only
from engine.models.padim.model import BatchedMahalanobis
from engine.models.patchcore.model import NearestPatches

BACKBONE = "tf_efficientnet_lite0"


def test_efficientnet_extractors_stop_after_their_deepest_stage_with_the_same_features():
    ensure_offline_backbones()
    full = TimmFeatureExtractor(BACKBONE, layers=list(LAYERS[BACKBONE]), pre_trained=True).eval()
    cut = copy.deepcopy(full)
    assert drop_unused_stages(cut) == 2  # blocks.5 and blocks.6: PaDiM reads up to blocks.4
    assert len(cut.feature_extractor.blocks) == 5
    image = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        expected, got = full(image), cut(image)
    assert expected.keys() == got.keys()
    for layer in expected:
        torch.testing.assert_close(got[layer], expected[layer], rtol=0, atol=0)


def test_separable_blur_smooths_as_anomalibs_dense_33x33_blur():
    dense = GaussianBlur2d(kernel_size=(33, 33), sigma=(4, 4), channels=1)
    holder = torch.nn.Sequential(copy.deepcopy(dense))
    assert separate_blurs(holder) == 1
    assert isinstance(holder[0], SeparableGaussianBlur)
    maps = torch.rand(3, 1, 64, 80) * 7
    torch.testing.assert_close(holder(maps), dense(maps), rtol=1e-5, atol=1e-5)


def test_batched_mahalanobis_distances_equal_anomalibs():
    torch.manual_seed(0)
    batch, features, height, width = 2, 20, 8, 12
    factors = torch.randn(height * width, features, features)
    inv_covariance = factors @ factors.transpose(1, 2) / features
    mean = torch.randn(features, height * width)
    embedding = torch.randn(batch, features, height, width)
    expected = AnomalyMapGenerator.compute_distance(embedding, [mean, inv_covariance])
    got = BatchedMahalanobis.compute_distance(embedding, [mean, inv_covariance])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_nearest_patches_are_anomalibs_in_and_across_its_chunks():
    torch.manual_seed(0)
    model = PatchcoreModel(backbone=BACKBONE, layers=["blocks.2"], pre_trained=False, num_neighbors=9)
    model.memory_bank = torch.randn(700, 24)
    patches = torch.randn(2500, 24)  # more than anomalib's chunk of 1,024: both take the chunked path
    expected_distances, expected_locations = model.nearest_neighbors(patches, n_neighbors=1)
    model.__class__ = NearestPatches
    distances, locations = model.nearest_neighbors(patches, n_neighbors=1)
    torch.testing.assert_close(distances, expected_distances, rtol=1e-4, atol=1e-4)
    assert (locations == expected_locations).float().mean() > 0.999  # exact ties may break either way


@pytest.mark.parametrize("transform", ["efficientnet", "imagenet", "resize only"])
def test_a_grayscale_frame_is_resized_once_and_gives_the_same_pixels(transform):
    settings = {"image_size": [256, 256]}
    made = {
        "efficientnet": lambda: pre_processor(BACKBONE, settings),
        "imagenet": lambda: pre_processor("resnet18", settings),
        "resize only": lambda: resize_only(settings),
    }[transform]().transform
    gray = (np.random.default_rng(0).random((480, 640)) * 255).astype(np.uint8)
    torch.testing.assert_close(gray_input(made)(gray), made(to_tensor(gray)), rtol=0, atol=0)


@pytest.mark.parametrize("batches", [3, 30])  # 15 images: added at the fit; 150: added every 64 images and at the fit
def test_streaming_padim_fits_the_gaussian_anomalib_fits_from_kept_embeddings(batches):
    from anomalib.models.components.stats import MultiVariateGaussian

    from engine.models.padim.model import SUMS_EVERY, StreamingPadimModel

    torch.manual_seed(0)
    embeddings = [torch.randn(5, 12, 4, 6) * 3 + 1 for _ in range(batches)]  # batches of 5 images
    assert (5 * batches > SUMS_EVERY) == (batches == 30)
    expected_mean, expected_inverse = MultiVariateGaussian().fit(torch.vstack(embeddings))
    model = StreamingPadimModel(backbone=BACKBONE, layers=["blocks.1"], pre_trained=False, n_features=12)
    for embedding in embeddings:
        model._add(embedding)
    model.fit()
    torch.testing.assert_close(model.gaussian.mean, expected_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.gaussian.inv_covariance, expected_inverse, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(("images", "scale"), [(18, 3.0), (30, 5.0), (200, 1.0)])
def test_the_symmetric_inverse_is_as_accurate_as_torch_s_and_falls_back_to_it_where_cholesky_fails(images, scale):
    """On PaDiM's covariances, of fewer images than features (rank-deficient but for the 0.01 I) or more: each
    inverse is as close to the float64 inverse as torch's float32 LU inverse is, within a factor of two."""
    from engine.models.padim.model import symmetric_inverse

    torch.manual_seed(images)
    vectors = torch.randn(64, images, 100) * scale
    covariances = vectors.transpose(1, 2) @ vectors / (images - 1) + 0.01 * torch.eye(100)
    covariances[7] = torch.diag(torch.linspace(-1.0, 2.0, 100))  # indefinite
    truth = torch.linalg.inv(covariances.double())

    def error(inverse: torch.Tensor) -> torch.Tensor:
        return (inverse.double() - truth).norm(dim=(1, 2)) / truth.norm(dim=(1, 2))

    inverse, torch_s = symmetric_inverse(covariances), torch.linalg.inv(covariances)
    assert error(inverse).max() <= 2 * error(torch_s).max() and error(inverse).max() < 1e-3
    assert torch.equal(inverse[7], torch_s[7])  # not positive definite: torch's own inverse


@pytest.mark.parametrize("n_features", [100, 3])  # 3 of 176: a layer may give none
def test_padim_s_embedding_picks_its_features_before_upsampling_and_equals_anomalib_s(n_features):
    from anomalib.models.image.padim.torch_model import PadimModel

    from engine.models.padim.model import StreamingPadimModel

    torch.manual_seed(n_features)
    model = StreamingPadimModel(
        backbone=BACKBONE, layers=["blocks.1", "blocks.2", "blocks.4"], pre_trained=False, n_features=n_features
    )
    assert model.idx.tolist() != sorted(model.idx.tolist())  # anomalib draws the features in no order
    model.pick_features()
    features = {
        "blocks.1": torch.randn(2, 24, 16, 16),
        "blocks.2": torch.randn(2, 40, 8, 8),
        "blocks.4": torch.randn(2, 112, 4, 4),
    }
    assert torch.equal(model.generate_embedding(features), PadimModel.generate_embedding(model, features))
