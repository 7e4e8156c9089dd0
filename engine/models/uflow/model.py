"""U-Flow on any timm CNN backbone, at the input size the pre-processor sets.

anomalib's U-Flow accepts mcait, resnet18 and wide_resnet50_2 only, and its default pre-processor
always resizes to 448x448 (the mcait size). This subclass builds anomalib's layer-normalised feature
extractor on the given timm feature stages (ResNet layer1-3 are the stages anomalib uses) and its
U-shaped flow; loss, optimiser and scoring are anomalib's.
"""

from __future__ import annotations

from collections.abc import Sequence

from anomalib.models.components import AnomalibModule
from anomalib.models.image.uflow.anomaly_map import AnomalyMapGenerator
from anomalib.models.image.uflow.feature_extraction import LayerNormFeatureExtractor
from anomalib.models.image.uflow.lightning_model import Uflow
from anomalib.models.image.uflow.loss import UFlowLoss
from anomalib.models.image.uflow.torch_model import UflowModel
from torch import nn


class TimmUflowModel(UflowModel):
    def __init__(
        self,
        input_size: tuple[int, int],
        backbone: str,
        layers: Sequence[str],
        flow_steps: int,
        affine_clamp: float,
        subnet_ratio: float,
        permute_soft: bool,
    ):
        nn.Module.__init__(self)
        self.input_size = input_size
        self.affine_clamp, self.affine_subnet_channels_ratio, self.permute_soft = (
            affine_clamp,
            subnet_ratio,
            permute_soft,
        )
        self.feature_extractor = LayerNormFeatureExtractor(backbone, input_size, layers=tuple(layers)).eval()
        self.flow = self.build_flow(flow_steps)
        self.anomaly_map_generator = AnomalyMapGenerator(input_size)


class TimmUflow(Uflow):
    def __init__(
        self,
        backbone: str,
        layers: Sequence[str],
        flow_steps: int = 4,
        affine_clamp: float = 2.0,
        affine_subnet_channels_ratio: float = 1.0,
        permute_soft: bool = False,
        **components,
    ):
        AnomalibModule.__init__(self, **components)
        self.backbone, self.flow_steps, self.affine_clamp = backbone, flow_steps, affine_clamp
        self.affine_subnet_channels_ratio, self.permute_soft = affine_subnet_channels_ratio, permute_soft
        self.model = TimmUflowModel(
            tuple(self.input_size),
            backbone,
            layers,
            flow_steps,
            affine_clamp,
            affine_subnet_channels_ratio,
            permute_soft,
        )
        self.loss = UFlowLoss()
