"""False-alarm rates of the legacy bead check on generated parts (the study's part16 problem)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.ingest.synthetic.plant import plan_part, render_planned
from engine.models.legacy.inspector import LegacyInspector


@dataclass(frozen=True)
class LegacyRates:
    part: str
    false_positive_rate: float  # share of acceptable test images rejected
    detection_rate: float  # share of defective test images rejected
    n_normal: int
    n_defective: int


def legacy_rates(part: str, n_images: int, seed: int) -> LegacyRates:
    """Fit the legacy check on the part's training images and score its test images."""
    train, normal, defective = [], [], []
    for plan in plan_part(n_images):
        rendered, defect = render_planned(part, seed, plan)
        if defect is not None:
            defective.append(defect.image)
        else:
            (train if plan.split == "train" else normal).append(rendered.image)
    inspector = LegacyInspector().fit(train)
    false_alarms = sum(inspector.predict(image) for image in normal)
    detections = sum(inspector.predict(image) for image in defective)
    return LegacyRates(part, false_alarms / len(normal), detections / len(defective), len(normal), len(defective))
