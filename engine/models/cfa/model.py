"""CFA on any timm CNN backbone, without torchvision downloads.

anomalib's CFA builds torchvision ResNet/VGG feature extractors, whose weights it downloads, and sizes
its CoordConv descriptor by backbone name. This subclass reads timm feature stages through anomalib's
TimmFeatureExtractor (so locally registered weights load) and sizes the descriptor to their summed
channels. Loss, optimiser, centroid initialisation and scoring are anomalib's; the centroids are built
from the pre-processed batches the training loop hands out (see TrainerStandIn).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from anomalib.models.components import AnomalibModule, TimmFeatureExtractor
from anomalib.models.components.feature_extractors import dryrun_find_featuremap_dims
from anomalib.models.image.cfa.anomaly_map import AnomalyMapGenerator
from anomalib.models.image.cfa.lightning_model import Cfa
from anomalib.models.image.cfa.loss import CfaLoss
from anomalib.models.image.cfa.torch_model import CfaModel, CoordConv2d, Descriptor
from torch import nn


class ChannelsDescriptor(Descriptor):
    """anomalib's descriptor (3x3 average pooling, 1x1 CoordConv) for `channels` input channels."""

    def __init__(self, gamma_d: int, channels: int):
        nn.Module.__init__(self)
        self.backbone = "timm"  # anything but efficientnet_b5, which anomalib scales differently
        self.layer = CoordConv2d(in_channels=channels, out_channels=channels // gamma_d, kernel_size=1)


class TimmCfaModel(CfaModel):
    def __init__(
        self,
        backbone: str,
        layers: Sequence[str],
        gamma_c: int,
        gamma_d: int,
        neighbors: int,
        hard_negatives: int,
        radius: float,
    ):
        nn.Module.__init__(self)
        self.gamma_c, self.gamma_d = gamma_c, gamma_d
        self.num_nearest_neighbors, self.num_hard_negative_features = neighbors, hard_negatives
        self.register_buffer("memory_bank", torch.tensor(0.0))
        self.backbone = backbone
        self.feature_extractor = TimmFeatureExtractor(backbone, layers=list(layers)).eval()
        self.descriptor = ChannelsDescriptor(gamma_d, sum(self.feature_extractor.out_dims))
        self.radius = torch.ones(1, requires_grad=True) * radius
        self.anomaly_map_generator = AnomalyMapGenerator(num_nearest_neighbors=neighbors)

    def get_scale(self, input_size: tuple[int, int] | torch.Size) -> torch.Size:
        """Resolution of the finest feature stage (sets the centroid count when gamma_c > 1)."""
        layers = self.feature_extractor.layers
        dims = dryrun_find_featuremap_dims(self.feature_extractor, (input_size[0], input_size[1]), layers)
        return torch.Size(dims[layers[0]]["resolution"])


class TimmCfa(Cfa):
    def __init__(
        self,
        backbone: str,
        layers: Sequence[str],
        gamma_c: int = 1,
        gamma_d: int = 1,
        num_nearest_neighbors: int = 3,
        num_hard_negative_features: int = 3,
        radius: float = 1e-5,
        **components,
    ):
        AnomalibModule.__init__(self, **components)
        self.model = TimmCfaModel(
            backbone, layers, gamma_c, gamma_d, num_nearest_neighbors, num_hard_negative_features, radius
        )
        self.loss = CfaLoss(
            num_nearest_neighbors=num_nearest_neighbors,
            num_hard_negative_features=num_hard_negative_features,
            radius=radius,
        )
