"""PaDiM with a streaming Gaussian fit and its Mahalanobis distances in one contiguous batched product.

anomalib keeps every training image's embedding (100 features x 4,096 positions, 1.6 MB each) and stacks them
before fitting, so a 760-image part held 1.2 GB of embeddings twice over, 4 GB at its peak. `StreamingPadimModel`
adds every 64 images' embeddings to per-position sums of x and x x' in float64 instead, 330 MB whatever the part's
size (and 100 MB of embeddings waiting), and fits from them: the mean and the unbiased covariance anomalib computes,
with its regularisation (0.01 I, then 1e-5 I), and the float32 inverse from Cholesky factors (`symmetric_inverse`).

anomalib computes each position's distance `delta' S delta` with `torch.matmul` on `delta` permuted to
(positions, batch, features), a view that is not contiguous: torch then copies and multiplies position by
position, 4,096 small products per image at 256 x 256 (three selects and a clone each), which took about 40 ms of
PaDiM's 90 ms at batch 1. Made contiguous first, the same products run as one `bmm`, bound by reading the
inverse covariances once (4,096 x 100 x 100 floats, 164 MB, about 11 ms on this machine). The arithmetic is
the same, and so are the distances.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from anomalib.models import Padim
from anomalib.models.image.padim.anomaly_map import AnomalyMapGenerator
from anomalib.models.image.padim.torch_model import PadimModel

SUMS_EVERY = 64  # training images whose embeddings (1.6 MB each at 256 x 256) are kept between additions to the sums


class BatchedMahalanobis(AnomalyMapGenerator):
    @staticmethod
    def compute_distance(embedding: torch.Tensor, stats: list[torch.Tensor]) -> torch.Tensor:
        """anomalib's per-position Mahalanobis distance, (batch, 1, height, width), with `delta` made contiguous."""
        batch, channel, height, width = embedding.shape
        mean, inv_covariance = stats
        delta = (embedding.reshape(batch, channel, height * width) - mean).permute(2, 0, 1).contiguous()
        distances = (torch.bmm(delta, inv_covariance) * delta).sum(2).permute(1, 0)
        return distances.reshape(batch, 1, height, width).clamp(0).sqrt()


class StreamingPadimModel(PadimModel):
    """anomalib's PaDiM whose training pass adds to the Gaussian's sums instead of keeping the embeddings, and whose
    embedding picks its features before upsampling them."""

    def generate_embedding(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """anomalib's embedding, the same tensor: the features `idx` picks from the layers' concatenation, each
        upsampled (nearest) to the first layer's size, in `idx`'s order. anomalib upsamples and concatenates every
        feature of the layers, then keeps `idx`'s (100 of EfficientNet-Lite0's 176); picking each layer's share first
        upsamples and copies only those kept."""
        size = features[self.layers[0]].shape[-2:]
        picks, order = self._picks  # worked out from `idx` beforehand: an exported graph cannot read a buffer's values
        pieces = []
        for layer, pick in zip(self.layers, picks, strict=True):
            if not pick:
                continue
            chosen = torch.index_select(features[layer], 1, torch.tensor(pick, device=features[layer].device))
            pieces.append(chosen if chosen.shape[-2:] == size else F.interpolate(chosen, size=size, mode="nearest"))
        embedding = torch.cat(pieces, 1)  # the picked features, layer by layer
        return torch.index_select(embedding, 1, torch.tensor(order, device=embedding.device))

    def pick_features(self) -> None:
        """Work out which features of each layer `idx` picks (`_picks`); again whenever `idx` is loaded."""
        self._picks = _picks(self.idx.tolist(), list(self.feature_extractor.out_dims))

    def forward(self, input_tensor: torch.Tensor):  # noqa: ANN201 - anomalib's own return types
        output = super().forward(input_tensor)
        if self.training:
            self._add(self.memory_bank.pop())  # the embedding anomalib's forward has just kept
        return output

    def _add(self, embedding: torch.Tensor) -> None:
        batch, channel, height, width = embedding.shape
        if getattr(self, "_count", 0) == 0:
            self._sum: torch.Tensor | None = None
            self._outer: torch.Tensor | None = None
            self._count, self._pending = 0, []
        self._pending.append(embedding.reshape(batch, channel, height * width))
        self._count += batch
        if sum(len(pending) for pending in self._pending) >= SUMS_EVERY:
            self._add_pending()

    def _add_pending(self) -> None:
        """Add the kept embeddings' products to the sums: one batched product over all of them in float32, its sum
        in float64. Each addition reads and writes the 330 MB float64 sums, so they are added to every
        `SUMS_EVERY` images, not every batch (per batch of 8 this cost more than the backbone's passes); the first
        addition makes the sums, so a part of fewer images never allocates them empty to add to."""
        if not self._pending:
            return
        vectors = torch.cat(self._pending).permute(2, 0, 1).contiguous()  # (positions, images, features)
        self._pending = []
        vector_sum = vectors.sum(dim=1, dtype=torch.float64)
        outer = torch.bmm(vectors.transpose(1, 2), vectors)
        if self._sum is None or self._outer is None:
            self._sum, self._outer = vector_sum, outer.double()
        else:
            self._sum += vector_sum
            self._outer += outer

    def fit(self) -> None:
        """The Gaussian of every position from the sums, as `MultiVariateGaussian.fit` computes it, in place: the
        sums become the covariance (each of these steps on 4,096 x 100 x 100 float64 would otherwise allocate and
        fault in another 330 MB)."""
        count = getattr(self, "_count", 0)
        if count < 2:
            raise ValueError(f"PaDiM needs at least 2 training images to fit a covariance (got {count})")
        self._add_pending()
        assert self._sum is not None and self._outer is not None
        mean = self._sum.div_(count)
        covariance = self._outer.baddbmm_(mean[:, :, None], mean[:, None, :], alpha=-count).div_(count - 1)
        self._sum = self._outer = None
        self._count = 0
        stabilised = covariance.float()
        del covariance
        diagonal = stabilised.diagonal(dim1=1, dim2=2)
        diagonal += 0.01  # anomalib's `+ 0.01 * identity`, then its `+ 1e-5 * identity`, on the diagonal alone
        diagonal += 1e-5
        self.gaussian.mean = mean.T.float().contiguous()
        self.gaussian.inv_covariance = symmetric_inverse(stabilised)
        self.memory_bank = []


def symmetric_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """The inverses of a batch of symmetric positive definite matrices, from their Cholesky factors: half the work
    of the LU inverse `torch.linalg.inv` (4,096 of PaDiM's 100 x 100 covariances: 0.6 s instead of 1.2 s on one
    core), equal to it within float32 rounding. A matrix whose factorisation fails (not positive definite once
    rounded to float32) is inverted by `torch.linalg.inv`, as anomalib inverts them all."""
    factors, info = torch.linalg.cholesky_ex(matrices)
    inverse = torch.cholesky_inverse(factors)
    failed = info.nonzero().flatten()
    if len(failed):
        inverse[failed] = torch.linalg.inv(matrices[failed])
    return inverse


def _picks(idx: list[int], channels: list[int]) -> tuple[list[list[int]], list[int]]:
    """Per layer, the indices within it of the features `idx` picks from the layers' concatenation, in `idx`'s order;
    and where each feature of `idx`, in order, lies among those picks laid end to end layer by layer."""
    starts = [sum(channels[:index]) for index in range(len(channels))]
    layer_of = [max(index for index, start in enumerate(starts) if start <= feature) for feature in idx]
    picks: list[list[int]] = [[] for _ in channels]
    for feature, layer in zip(idx, layer_of, strict=True):
        picks[layer].append(feature - starts[layer])
    offsets = [sum(len(pick) for pick in picks[:layer]) for layer in range(len(channels))]
    seen = [0] * len(channels)
    order = []
    for layer in layer_of:
        order.append(offsets[layer] + seen[layer])
        seen[layer] += 1
    return picks, order


class BatchedPadim(Padim):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Method overrides only: the model's and the generator's state (its Gaussian blur) stay anomalib's.
        self.model.__class__ = StreamingPadimModel
        self.model.anomaly_map_generator.__class__ = BatchedMahalanobis
        model = cast("StreamingPadimModel", self.model)
        model.pick_features()
        model.register_load_state_dict_post_hook(lambda module, _: module.pick_features())
