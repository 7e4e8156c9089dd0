"""What a job's process runs, with every model's libraries loaded: the fork server of `job_process` imports this
module once per grid, so each job's process starts with anomalib, lightning, torch and albumentations (the
augmented condition's) already in memory, and the grid process, which only watches its jobs, never loads them."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # libraries' notices about themselves, said once per grid in its fork server
    warnings.simplefilter("ignore", FutureWarning)
    import albumentations  # noqa: F401  (`engine.ingest.part_data.study_augmentation` imports it where it is used)

    from engine.evaluation.evaluate import evaluate_job, retime_job

TASKS = {"evaluate": evaluate_job, "retime": retime_job}
