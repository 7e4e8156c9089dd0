"""FastFlow on any timm CNN backbone.

anomalib's FastFlow accepts four named backbones only. This subclass builds the same normalising-flow
blocks on timm feature stages 1-3 (strides 4, 8, 16: ResNet layer1-3, EfficientNet-Lite blocks.1/2/4);
forward pass, loss and optimiser are anomalib's.
"""

from __future__ import annotations

import timm
from anomalib.models.components import AnomalibModule
from anomalib.models.image.fastflow.anomaly_map import AnomalyMapGenerator
from anomalib.models.image.fastflow.lightning_model import Fastflow
from anomalib.models.image.fastflow.loss import FastflowLoss
from anomalib.models.image.fastflow.torch_model import FastflowModel, create_fast_flow_block
from torch import nn

FEATURE_STAGES = (1, 2, 3)


class TimmFastflowModel(FastflowModel):
    def __init__(
        self, input_size: tuple[int, int], backbone: str, flow_steps: int, conv3x3_only: bool, hidden_ratio: float
    ):
        nn.Module.__init__(self)
        self.input_size = input_size
        self.feature_extractor = timm.create_model(
            backbone, pretrained=True, features_only=True, out_indices=FEATURE_STAGES
        )
        for parameter in self.feature_extractor.parameters():
            parameter.requires_grad = False
        shapes = [
            [channels, input_size[0] // stride, input_size[1] // stride]
            for channels, stride in zip(
                self.feature_extractor.feature_info.channels(),
                self.feature_extractor.feature_info.reduction(),
                strict=True,
            )
        ]
        self.norms = nn.ModuleList(nn.LayerNorm(shape, elementwise_affine=True) for shape in shapes)
        self.fast_flow_blocks = nn.ModuleList(
            create_fast_flow_block(shape, conv3x3_only=conv3x3_only, hidden_ratio=hidden_ratio, flow_steps=flow_steps)
            for shape in shapes
        )
        self.anomaly_map_generator = AnomalyMapGenerator(input_size=input_size)


class TimmFastflow(Fastflow):
    def __init__(
        self,
        backbone: str,
        flow_steps: int = 8,
        conv3x3_only: bool = True,
        hidden_ratio: float = 1.0,
        **components,
    ):
        AnomalibModule.__init__(self, **components)
        self.backbone, self.pre_trained, self.flow_steps = backbone, True, flow_steps
        self.conv3x3_only, self.hidden_ratio = conv3x3_only, hidden_ratio
        self.model = TimmFastflowModel(tuple(self.input_size), backbone, flow_steps, conv3x3_only, hidden_ratio)
        self.loss = FastflowLoss()
