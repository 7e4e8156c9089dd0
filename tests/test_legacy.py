"""The legacy bead check: same rule for every part, and part16's brightness swings break it."""

from __future__ import annotations

import numpy as np

from benchmarks.legacy_rates import legacy_rates
from engine.ingest.synthetic.plant import plan_part, render_planned
from engine.models.legacy.inspector import LegacyInspector


def test_part16_false_alarms_are_several_times_part1():
    part1, part16 = legacy_rates("part1", 300, seed=0), legacy_rates("part16", 300, seed=0)
    print(
        f"\nlegacy false-positive rate: part1 {part1.false_positive_rate:.1%}, part16 {part16.false_positive_rate:.1%}"
        f" (of {part1.n_normal} acceptable test images each)"
    )
    assert 0 < part1.false_positive_rate < 0.1
    assert part16.false_positive_rate >= 3 * part1.false_positive_rate


def test_score_and_pixel_map_point_at_a_large_defect():
    plans = plan_part(100)
    train = [render_planned("part1", 0, plan)[0].image for plan in plans if plan.split == "train"]
    inspector = LegacyInspector().fit(train)
    extensive = next(p for p in plans if p.severity == "extensive" and p.defect_type == "pinch")
    rendered, defect = render_planned("part1", 0, extensive)
    result = inspector.score(defect.image)
    assert result.anomaly_map.shape == defect.image.shape and result.anomaly_map.dtype == np.float32
    assert result.score > inspector.score(rendered.image).score
    worst_column = int(np.argmax(result.anomaly_map.max(axis=0)))
    defect_columns = np.nonzero(defect.mask.any(axis=0))[0]
    assert defect_columns.min() - 5 <= worst_column <= defect_columns.max() + 5
