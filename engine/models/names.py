"""Display names: gluelab's command-line identifiers as the study writes them.

Kept free of heavy imports so the dashboard can label models without loading torch or anomalib.
"""

from __future__ import annotations

MODEL_NAMES = {
    "legacy": "Legacy camera check",
    "padim": "PaDiM",
    "patchcore": "PatchCore",
    "dfm": "DFM",
    "dfkde": "DFKDE",
    "stfpm": "STFPM",
    "fastflow": "FastFlow",
    "efficient_ad": "EfficientAD",
    "cfa": "CFA",
    "cflow": "CFlow",
    "csflow": "CSFlow",
    "draem": "DRAEM",
    "dsr": "DSR",
    "ganomaly": "GANomaly",
    "reverse_distillation": "ReverseDistillation",
    "uflow": "UFlow",
    "supersimplenet": "SuperSimpleNet",
}
BACKBONE_NAMES = {
    "tf_efficientnet_lite0": "EfficientNet-Lite0",
    "tf_efficientnet_lite1": "EfficientNet-Lite1",
    "tf_efficientnet_lite2": "EfficientNet-Lite2",
    "resnet18": "ResNet18",
    "wide_resnet50_2": "WideResNet50",
    "tf_efficientnet_b5": "EfficientNet-B5",
}


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def backbone_name(backbone: str) -> str:
    return BACKBONE_NAMES.get(backbone, backbone)
