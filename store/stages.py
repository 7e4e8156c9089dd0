"""The stages a run's time is split into, in the order they run (`engine.evaluation.stage_clock` times them), and the
store's reads of them.

A stage a run did not go through (no masks: no pixel metrics; a part already read by the grid's previous job: no
reading) has no row. The frozen backbone's passes are counted apart from the stage that made them, over the training
images while the model fits and over the test images it scores after the timing windows (the windows' passes,
backbone included, are all `timing`: each of their passes scores test images of its own, the first ~190, whose results
are kept); with the feature cache
they are the cache's reads and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from store.connection import read_store

STAGES: dict[str, str] = {
    "read": "read and decode the part's images",
    "hand_over": "start the job's process (a grid's first job: the server that imports the models), hand it the "
    "images, take its results back",
    "build": "build the model (load its weights)",
    "backbone_train": "frozen backbone over the training images",
    "fit": "fit: pre-processing, augmentation and the model's own fit or training",
    "backbone_test": "frozen backbone over the test images",
    "timing": "timing windows: batch-1 latency and throughput passes, each scoring test images of its own",
    "scoring": "score the remaining test images and their anomaly maps",
    "image_metrics": "image metrics (AUROC, F1, threshold)",
    "pixel_metrics": "pixel metrics (AUROC, F1, threshold)",
    "aupro": "AUPRO",
    "heatmaps": "example heatmaps and masks written",
    "store": "store writes",
}


def run_stages(store: Path | str, run_ids: Sequence[str]) -> pd.DataFrame:
    """`run_id`, `stage`, `seconds` of `run_ids`, stages in `STAGES` order."""
    if not run_ids:
        return pd.DataFrame(columns=["run_id", "stage", "seconds"])
    with read_store(store) as con:
        table = con.execute(
            "SELECT run_id, stage, seconds FROM run_stages WHERE list_contains(?, run_id)", [list(run_ids)]
        ).df()
    order = {name: index for index, name in enumerate(STAGES)}
    return table.sort_values(
        ["run_id", "stage"], key=lambda column: column.map(order) if column.name == "stage" else column
    ).reset_index(drop=True)
