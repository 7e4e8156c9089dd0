"""What a model's registry entry is (`ModelEntry`), and `register`, which each entry calls.

An entry holds everything gluelab knows about a model: its command-line name, how the study names it
(the dashboard's display name), the backbones it takes, its `cpu` and `paper` presets, how it departs
from the paper's setup, what this machine may lack to run it, and its builder. Each model's entry lives in its
own package beside its anomalib subclass (`engine/models/<model>/entry.py`) and registers itself when the package
is imported; `engine.models.catalogue` imports them all and is where the models are asked for (`MODELS`,
`get_model`, `model_states`). This module knows no model.

Importable without torch: builders import torch, anomalib and gluelab's anomalib subclasses only when a
model is built, and the weights checks only when they run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from store.runs import PRESETS

if TYPE_CHECKING:
    from engine.models.base import Detector

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def no_deviations(backbone: str, settings: dict) -> list[str]:
    return []


def backbone_weights_missing(backbone: str) -> str | None:
    """What this machine lacks to run `backbone` with pretrained weights (and how to import it), or None."""
    from engine.models.backbones import backbone_status

    return backbone_status(backbone)


def nothing_missing(backbone: str) -> str | None:
    """For models trained from scratch: they need no weights from outside."""
    return None


@dataclass(frozen=True)
class ModelEntry:
    name: str  # command-line identifier, lower case
    paper_name: str  # as the study names it; the dashboard shows this
    builder: Callable[[ModelEntry, str, dict], Detector]  # (entry, backbone, preset settings) -> Detector
    presets: Mapping[str, dict]  # preset name (store.runs.PRESETS) -> settings
    backbones: tuple[str, ...] = ()  # timm names it accepts, default first; empty for models without a backbone
    deviations: Callable[[str, dict], list[str]] = field(default=no_deviations)  # (backbone, settings) -> departures
    missing: Callable[[str], str | None] = field(default=backbone_weights_missing)  # backbone -> what is lacking
    paper_backbone: str = "ResNet"  # what the study ran it on, named in the packaged-backbone deviation
    # Frozen feature extractors inside the anomalib torch model (dotted paths under `module.model`, or a function
    # of the preset settings giving them); their outputs come from the feature cache while the model fits and
    # scores (engine.models.feature_cache).
    frozen_features: tuple[str, ...] | Callable[[dict], tuple[str, ...]] = ()
    # The fewest training images the model fits on (a covariance needs two, a PCA as many as its components): a
    # training-size sweep below it is refused before anything runs.
    min_train_images: int = 2

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"model name {self.name!r} must be lower case letters, digits and underscores")
        if set(self.presets) != set(PRESETS):
            raise ValueError(f"model {self.name!r} has presets {sorted(self.presets)}; it needs {list(PRESETS)}")

    def frozen_paths(self, settings: dict) -> tuple[str, ...]:
        return self.frozen_features(settings) if callable(self.frozen_features) else self.frozen_features

    @property
    def default_backbone(self) -> str:
        return self.backbones[0] if self.backbones else ""

    def build(self, backbone: str, preset: str, settings: dict | None = None) -> Detector:
        """The model for one job; `settings` (the preset's, as the grid resolved them) default to this process's."""
        problem = self.missing(backbone)
        if problem:
            raise RuntimeError(problem)
        return self.builder(self, backbone, self.presets[preset] if settings is None else settings)


_REGISTERED: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add `entry` to the registered models (in the order models are listed); a second entry of the same name is
    refused."""
    if entry.name in _REGISTERED:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTERED[entry.name] = entry
    return entry


def registered() -> dict[str, ModelEntry]:
    """The registered entries by name, in registration order: the one dict `engine.models.catalogue.MODELS` is."""
    return _REGISTERED
