"""The registry of models: one `ModelEntry` per model, and what is derived from it.

An entry holds everything gluelab knows about a model: its command-line name, how the study names it
(the dashboard's display name), the backbones it takes, its `cpu` and `paper` presets, how it departs
from the paper's setup, what this machine may lack to run it, and its builder. The entries live in
`engine.models.catalog`, each beside its builder, and register themselves; `MODELS`, `get_model`,
`model_states`, `gluelab models` and the dashboard's model names all read them.

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


MODELS: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add `entry` to `MODELS` (in the order models are listed); a second entry of the same name is refused."""
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is already registered")
    MODELS[entry.name] = entry
    return entry


def get_model(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def model_name(model: str) -> str:
    """The study's name of a registered model; other names (the published figures' own) as they are."""
    return MODELS[model].paper_name if model in MODELS else model


def model_states() -> list[dict]:
    """Every model x backbone with `runnable` or exactly what is missing on this machine."""
    rows = []
    for entry in MODELS.values():
        for backbone in entry.backbones or ("",):
            problem = entry.missing(backbone)
            rows.append(
                {
                    "model": entry.name,
                    "paper_name": entry.paper_name,
                    "backbone": backbone,
                    "state": problem or "runnable",
                }
            )
    return rows


def _register_catalog() -> None:
    import engine.models.catalog  # noqa: F401  (each of its entries registers itself)


_register_catalog()
