"""Reverse Distillation on backbones anomalib has no decoder for, through 1x1 channel adapters.

anomalib pairs a ResNet encoder with a one-class bottleneck (OCBE) and a mirrored ResNet decoder, both
defined for ResNet-shaped backbones only. For another timm CNN this subclass keeps the frozen encoder
stages (strides 4, 8, 16) and wraps resnet18's bottleneck and decoder in 1x1 convolutions: encoder
channels to resnet18's (64, 128, 256) before the bottleneck, and back after the decoder. The adapters
belong to the bottleneck and decoder, so anomalib's optimiser trains them with the student; loss and
scoring are anomalib's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from anomalib.models.components import AnomalibModule, TimmFeatureExtractor
from anomalib.models.components.backbone import get_decoder
from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode, AnomalyMapGenerator
from anomalib.models.image.reverse_distillation.components import get_bottleneck_layer
from anomalib.models.image.reverse_distillation.lightning_model import ReverseDistillation
from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss
from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel
from torch import nn

ADAPTED_ARCHITECTURE = "resnet18"
ADAPTED_CHANNELS = (64, 128, 256)  # resnet18 layer1-3, what its bottleneck takes and its decoder gives


def _projections(channels_in: Sequence[int], channels_out: Sequence[int]) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Conv2d(c_in, c_out, kernel_size=1) for c_in, c_out in zip(channels_in, channels_out, strict=True)
    )


class AdaptedBottleneck(nn.Module):
    def __init__(self, encoder_channels: Sequence[int]):
        super().__init__()
        self.adapters = _projections(encoder_channels, ADAPTED_CHANNELS)
        self.bottleneck = get_bottleneck_layer(ADAPTED_ARCHITECTURE)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.bottleneck([adapt(feature) for adapt, feature in zip(self.adapters, features, strict=True)])


class AdaptedDecoder(nn.Module):
    def __init__(self, encoder_channels: Sequence[int]):
        super().__init__()
        self.decoder = get_decoder(ADAPTED_ARCHITECTURE)
        self.adapters = _projections(ADAPTED_CHANNELS, encoder_channels)

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        return [adapt(feature) for adapt, feature in zip(self.adapters, self.decoder(embedding), strict=True)]


class AdaptedReverseDistillationModel(ReverseDistillationModel):
    def __init__(
        self,
        backbone: str,
        input_size: tuple[int, int],
        layers: Sequence[str],
        anomaly_map_mode: AnomalyMapGenerationMode,
    ):
        nn.Module.__init__(self)
        self.tiler = None
        self.encoder = TimmFeatureExtractor(backbone=backbone, layers=list(layers))
        self.bottleneck = AdaptedBottleneck(self.encoder.out_dims)
        self.decoder = AdaptedDecoder(self.encoder.out_dims)
        self.anomaly_map_generator = AnomalyMapGenerator(image_size=input_size, mode=anomaly_map_mode)


class AdaptedReverseDistillation(ReverseDistillation):
    def __init__(
        self,
        backbone: str,
        layers: Sequence[str],
        anomaly_map_mode: AnomalyMapGenerationMode = AnomalyMapGenerationMode.ADD,
        **components,
    ):
        AnomalibModule.__init__(self, **components)
        self.backbone, self.pre_trained, self.layers, self.anomaly_map_mode = backbone, True, layers, anomaly_map_mode
        self.model = AdaptedReverseDistillationModel(backbone, tuple(self.input_size), layers, anomaly_map_mode)
        self.loss = ReverseDistillationLoss()
