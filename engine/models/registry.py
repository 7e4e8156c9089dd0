"""The registry of models: command-line name -> what it is, which backbones it takes, its presets.

`paper` presets follow the study's Table B.8; `cpu` presets are sized so one run on a 300-image part
takes about a minute or two on 2 CPU cores. Each entry can say what is missing on this machine
(backbone weights, DSR's codebook) and the command that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.models.base import Detector
from engine.models.names import model_name


@dataclass(frozen=True)
class ModelEntry:
    name: str  # command-line identifier, lower case
    paper_name: str  # as the study names it
    build_detector: Callable[[str, dict], Detector]  # (backbone, preset settings) -> Detector
    presets: dict[str, dict]  # preset name -> settings
    backbones: tuple[str, ...] = ()  # timm names it accepts; empty for models without a backbone
    missing: Callable[[str], str | None] = field(default=lambda backbone: None)  # what this machine lacks

    @property
    def default_backbone(self) -> str:
        return self.backbones[0] if self.backbones else ""

    def build(self, backbone: str, preset: str) -> Detector:
        problem = self.missing(backbone)
        if problem:
            raise RuntimeError(problem)
        return self.build_detector(backbone, self.presets[preset])


def _legacy(backbone: str, settings: dict) -> Detector:
    from engine.models.legacy.detector import LegacyDetector

    return LegacyDetector()


def _all_models() -> dict[str, ModelEntry]:
    from engine.models.catalog import ANOMALIB_MODELS

    entries = [ModelEntry("legacy", model_name("legacy"), _legacy, {"cpu": {}, "paper": {}})]
    entries += [
        ModelEntry(name, model_name(name), entry.build, entry.presets, entry.backbones, entry.missing)
        for name, entry in ANOMALIB_MODELS.items()
    ]
    return {entry.name: entry for entry in entries}


MODELS: dict[str, ModelEntry] = _all_models()


def get_model(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


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
