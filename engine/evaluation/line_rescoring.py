"""The line's frames scored again by other runs: what the Line monitor's re-evaluation asks for.

When a watch finds the line drifting, an engineer queues the deployed model's evaluation in the augmented
condition with the frames the deployment scored so far (`engine.jobs.LineFrames`). The worker runs that grid as
any other; then each of its finished runs is fitted again from its stored config and seed, as `gluelab deploy` does
(`deploy.refit_as_evaluated`: its test scores must be the run's), scores those frames in batches, and the scores are stored per frame
(`store.line.record_rescores`). The Line monitor sets that run's alarms on the same frames beside the deployed
model's. A frame the run has scored before is not scored again, so a resumed request redoes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engine.evaluation.deploy import refit_as_evaluated
from engine.ingest.part_data import load_part
from engine.jobs import LineFrames
from store.deployments import finished_run
from store.line import DeploymentKey, frames_to_rescore, record_rescores

BATCH = 16  # frames scored and stored together


def rescore_line(
    line: LineFrames,
    run_ids: list[str],
    store: Path | str,
    request_id: int | None = None,
    report: Callable[[str], None] = print,
) -> int:
    """Score `line`'s frames with each finished run of `run_ids`; returns how many frames were scored (all runs)."""
    key = DeploymentKey(line.run_id, line.format, line.runtime)
    scored = 0
    for run_id in run_ids:
        try:
            run = finished_run(run_id, store)
        except ValueError:  # failed or cancelled: the grid's summary says so
            continue
        pending = frames_to_rescore(store, key, line.up_to, run_id)
        if pending.empty:
            continue
        report(f"scoring {len(pending)} line frames of {key.label} again with {run_id}")
        data = load_part(str(run["part"]), store)
        detector, _, _ = refit_as_evaluated(run, data, store)
        for start in range(0, len(pending), BATCH):
            batch = pending.iloc[start : start + BATCH]
            frames = [
                (frame_id, _gray(Path(file))) for frame_id, file in zip(batch["frame_id"], batch["file"], strict=True)
            ]
            readable = [(frame_id, image) for frame_id, image in frames if image is not None]
            if readable:
                scores = detector.predict([image for _, image in readable], batch_size=len(readable)).scores
                record_rescores(store, run_id, request_id, [frame_id for frame_id, _ in readable], scores)
                scored += len(readable)
            if len(readable) < len(frames):
                report(f"{len(frames) - len(readable)} line frames are no longer readable and were left out")
    return scored


def _gray(path: Path) -> np.ndarray | None:
    """The frame as the deployment read it (8-bit grayscale), or None when it is gone or unreadable now."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint8:
        return None
    return raw if raw.ndim == 2 else cv2.cvtColor(raw, cv2.COLOR_BGRA2GRAY if raw.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
