"""Legacy camera check's registry entry: its presets, the backbones it takes, how it departs from the study's setup, and
its builder. Importable without torch: the builder imports torch and anomalib when the model is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.registry import ModelEntry, nothing_missing, register

if TYPE_CHECKING:
    from engine.models.base import Detector


def _legacy(entry: ModelEntry, backbone: str, settings: dict) -> Detector:
    from engine.models.legacy.detector import LegacyDetector

    return LegacyDetector()


ENTRY = register(
    ModelEntry(
        "legacy", "Legacy camera check", _legacy, {"cpu": {}, "paper": {}}, missing=nothing_missing, paper_backbone=""
    )
)
