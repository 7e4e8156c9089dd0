"""Legacy camera check's registry entry beside its builder, which imports torch and anomalib only when it runs."""

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
