"""EfficientAD's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import (
    CNN_BACKBONES,
    IMAGE_256,
    LAYERS,
    UNTIL_CONVERGED,
    anomalib_builder,
    lean,
    normalisation,
    resize_only,
)
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule

    from engine.models.anomalib_detector import AnomalibDetector
    from engine.models.efficient_ad.pdn_teacher import Distillation

TEACHERS = ("backbone", "pdn")


def _efficient_ad(backbone: str, s: dict) -> AnomalibModule:
    """EfficientAD-S with the preset's `teacher`: "backbone" (frozen backbone features) or "pdn" (a PDN distilled
    from them on the training images, cached; `teacher_steps` overrides its number of distillation steps)."""
    from engine.models.efficient_ad.model import BackboneTeacher, BackboneTeacherEfficientAd
    from engine.models.sample_images import penalty_image_folder

    teacher = BackboneTeacher(backbone, LAYERS[backbone][:2], *normalisation(backbone))
    common = {
        "imagenet_dir": penalty_image_folder(),
        "model_size": "small",
        "lr": 1e-4,
        "weight_decay": 1e-5,
        **lean(backbone, s, resize_only(s)),
    }
    if _teacher(s) == "pdn":
        from engine.models.efficient_ad.pdn_teacher import PdnTeacherEfficientAd

        return PdnTeacherEfficientAd(teacher, _distillation(s), **common)
    return BackboneTeacherEfficientAd(teacher, **common)


def _teacher(s: dict) -> str:
    teacher = s.get("teacher", "backbone")
    if teacher not in TEACHERS:
        raise ValueError(f"EfficientAD teacher {teacher!r}: choose one of {', '.join(TEACHERS)}")
    return teacher


def _distillation(s: dict) -> Distillation:
    from engine.models.efficient_ad.pdn_teacher import Distillation

    return Distillation(steps=s.get("teacher_steps", Distillation.steps))


def _efficient_ad_detector() -> type[AnomalibDetector]:
    from engine.models.efficient_ad.model import EfficientAdDetector

    return EfficientAdDetector


def _efficient_ad_deviations(backbone: str, s: dict) -> list[str]:
    if _teacher(s) == "pdn":
        teacher = (
            f"teacher: a PDN distilled in {_distillation(s).steps} steps from frozen {backbone} features at strides "
            "4 and 8 on the part's training images, not from WideResNet-101 on ImageNet (downloads)"
        )
    else:
        teacher = (
            f"teacher: frozen {backbone} features at strides 4 and 8, not the PDN distilled from WideResNet-101 "
            "on ImageNet (downloads)"
        )
    return [
        teacher,
        "penalty images: scikit-image's sample photos, not ImageNet/imagenette (a download)",
        "map quantiles from the training images, not a validation split",
    ]


ENTRY = register(
    ModelEntry(
        "efficient_ad",
        "EfficientAD",
        anomalib_builder(_efficient_ad, _efficient_ad_detector),
        # The teacher: a distilled PDN was no better than the frozen backbone features after 60 student steps
        # (both at chance on the demo parts; benchmarks/efficient_ad_teacher.py), and it costs a distillation and
        # a 4x slower teacher pass, so the frozen backbone stays until a converged comparison says otherwise.
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "epochs": 200, "teacher": "backbone"},
            "paper": {**IMAGE_256, "epochs": 200, "teacher": "backbone"},
        },
        CNN_BACKBONES,
        deviations=_efficient_ad_deviations,
        # The distilled PDN teacher is not cached: its weights change inside `fit`, after the cache's key is taken.
        frozen_features=lambda settings: ("teacher.features",) if settings.get("teacher") == "backbone" else (),
    )
)
