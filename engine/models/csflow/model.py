"""CS-Flow on a timm EfficientNet trunk, without torchvision downloads.

anomalib's CS-Flow reads torchvision's EfficientNet-B5 at `features.6.8`, the end of its sixth stage
(stride 32, 304 channels), with weights it downloads, and its cross-scale flow hard-codes those 304
channels. Here the features come from a timm EfficientNet cut after the same stage (`blocks.5`:
tf_efficientnet_b5 gives 304 channels, EfficientNet-Lite0 192), loaded from local weights, and the
flow takes the channel count as a parameter. Scales, loss, optimiser and scoring are anomalib's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from anomalib.models.components import AnomalibModule
from anomalib.models.image.csflow.anomaly_map import AnomalyMapGenerator, AnomalyMapMode
from anomalib.models.image.csflow.lightning_model import Csflow
from anomalib.models.image.csflow.loss import CsFlowLoss
from anomalib.models.image.csflow.torch_model import (
    CrossScaleFlow,
    CsFlowModel,
    ParallelGlowCouplingLayer,
    ParallelPermute,
)
from FrEIA.framework import GraphINN, InputNode, Node, OutputNode
from torch import nn

from engine.models.backbones import create_backbone

STAGES = 6  # EfficientNet stages up to stride 32 that CS-Flow reads
SCALES = 3  # full, half and quarter input size


class StageTrunk(nn.Module):
    """A frozen timm EfficientNet from its stem to the end of stage six."""

    def __init__(self, backbone: str):
        super().__init__()
        network = create_backbone(backbone)
        self.stem = nn.Sequential(network.conv_stem, network.bn1)
        self.stages = network.blocks[:STAGES]
        self.requires_grad_(False)
        self.channels = self(torch.zeros(1, 3, 64, 64)).shape[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.eval()
        with torch.no_grad():
            return self.stages(self.stem(images))


class MultiScaleFeatures(nn.Module):
    """The trunk's features of the image at full, half and quarter size, as anomalib's extractor gives them."""

    def __init__(self, trunk: StageTrunk, input_size: tuple[int, int]):
        super().__init__()
        self.trunk, self.input_size = trunk, input_size

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        height, width = self.input_size
        return [
            self.trunk(F.interpolate(images, size=(height // 2**scale, width // 2**scale)) if scale else images)
            for scale in range(SCALES)
        ]


class ChannelsCrossScaleFlow(CrossScaleFlow):
    """anomalib's cross-scale flow graph for `channels` feature channels instead of a fixed 304."""

    def __init__(
        self,
        channels: int,
        input_dims: tuple[int, int, int],
        n_coupling_blocks: int,
        clamp: float,
        hidden_channels: int,
    ):
        self.channels = channels  # read by _create_graph, which the parent's __init__ calls
        super().__init__(input_dims, n_coupling_blocks, clamp, hidden_channels)

    def _create_graph(self) -> GraphINN:
        height, width = self.input_dims[1:]
        nodes = [
            InputNode(self.channels, height // stride, width // stride, name=name)
            for stride, name in ((32, "input"), (64, "input2"), (128, "input3"))
        ]
        for block in range(self.n_coupling_blocks):
            previous = (
                [nodes[-3].out0, nodes[-2].out0, nodes[-1].out0]
                if block == 0
                else [nodes[-1].out0, nodes[-1].out1, nodes[-1].out2]
            )
            nodes.append(
                Node(inputs=previous, module_type=ParallelPermute, module_args={"seed": block}, name=f"permute_{block}")
            )
            nodes.append(
                Node(
                    inputs=[nodes[-1].out0, nodes[-1].out1, nodes[-1].out2],
                    module_type=ParallelGlowCouplingLayer,
                    module_args={
                        "clamp": self.clamp,
                        "subnet_args": {
                            "channels_hidden": self.cross_conv_hidden_channels,
                            "kernel_size": self.kernel_sizes[block],
                        },
                    },
                    name=f"fc1_{block}",
                )
            )
        coupled = nodes[-1]
        nodes += [
            OutputNode([coupled.out0], name="output_end0"),
            OutputNode([coupled.out1], name="output_end1"),
            OutputNode([coupled.out2], name="output_end2"),
        ]
        return GraphINN(nodes)


class TrunkCsFlowModel(CsFlowModel):
    def __init__(
        self,
        backbone: str,
        input_size: tuple[int, int],
        hidden_channels: int,
        n_coupling_blocks: int,
        clamp: int,
        num_channels: int,
    ):
        nn.Module.__init__(self)
        self.input_dims = (num_channels, *input_size)
        self.clamp, self.cross_conv_hidden_channels = clamp, hidden_channels
        trunk = StageTrunk(backbone)
        self.feature_extractor = MultiScaleFeatures(trunk, input_size)
        self.graph = ChannelsCrossScaleFlow(trunk.channels, self.input_dims, n_coupling_blocks, clamp, hidden_channels)
        self.anomaly_map_generator = AnomalyMapGenerator(input_dims=self.input_dims, mode=AnomalyMapMode.ALL)


class TimmCsflow(Csflow):
    def __init__(
        self,
        backbone: str,
        cross_conv_hidden_channels: int = 1024,
        n_coupling_blocks: int = 4,
        clamp: int = 3,
        num_channels: int = 3,
        **components,
    ):
        AnomalibModule.__init__(self, **components)
        self.cross_conv_hidden_channels, self.n_coupling_blocks = cross_conv_hidden_channels, n_coupling_blocks
        self.clamp, self.num_channels = clamp, num_channels
        self.model = TrunkCsFlowModel(
            backbone, tuple(self.input_size), cross_conv_hidden_channels, n_coupling_blocks, clamp, num_channels
        )
        self.loss = CsFlowLoss()
