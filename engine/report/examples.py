"""What the recommended model fails on, in pictures: per part, its five highest-scoring acceptable images (the false
alarms it comes closest to, or raises) and its five lowest-scoring defective ones (the escapes it comes closest to,
or lets through), each the image with the run's kept heatmap over it.

The run shown is the candidate's lowest-seed finished run of the part in the question's condition, as the Failure
browser shows it: a run keeps the heatmaps of its highest-scoring acceptable images and every defective one
(`engine.evaluation.evaluate`), so these ten are always kept. Pictures are downsized and stored as palette PNGs, so
a report of three parts stays small. Files are opened only inside the part's root and the store's artifact folder
(`store.files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from engine.analysis.candidates import with_candidates
from engine.analysis.pictures import heat_overlay
from engine.analysis.results_table import LOCAL_SOURCE
from store import files, queries
from store.runs import artifacts_dir

EACH = 5  # images of each kind
WIDTH = 240  # pixels across a downsized picture
COLOURS = 96  # a palette this size keeps the heatmap's gradient and a grayscale image readable


@dataclass(frozen=True)
class Example:
    png: bytes
    caption: str


@dataclass(frozen=True)
class PartExamples:
    part: str
    run: str  # the run shown in words: "seed 0, run <id>"
    acceptable: list[Example]  # highest-scoring acceptable images, highest first
    defective: list[Example]  # lowest-scoring defective images, lowest first
    missing: list[str]  # pictures that could not be shown, each with why


def part_examples(store: Path | str, part: str, condition: str, candidate: str) -> PartExamples | None:
    """`candidate`'s ten pictures on `part`, or None when it has no kept heatmap there (no local run)."""
    kept = with_candidates(queries.part_examples(store, part, condition), LOCAL_SOURCE)
    kept = kept[(kept["candidate"] == candidate) & kept["score"].notna()]
    if kept.empty:
        return None
    acceptable = kept[kept["label"] == "normal"].sort_values(["score", "image_path"], ascending=[False, True])
    defective = kept[kept["label"] == "anomalous"].sort_values(["score", "image_path"])
    missing: list[str] = []
    artifacts = artifacts_dir(store)
    return PartExamples(
        part=part,
        run=f"seed {int(kept['seed'].iloc[0])}, run {kept['run_id'].iloc[0]}",
        acceptable=_pictures(acceptable.head(EACH), artifacts, missing),
        defective=_pictures(defective.head(EACH), artifacts, missing),
        missing=missing,
    )


def _pictures(rows: pd.DataFrame, artifacts: Path, missing: list[str]) -> list[Example]:
    pictures = []
    for _, row in rows.iterrows():
        try:
            image = files.read_part_image(row["root"], row["image_path"])
            heatmap = files.read_artifact(artifacts, row["anomaly_map_path"])
        except files.OutsideFolder as refused:
            missing.append(f"{row['image_path']}: {refused}")
            continue
        if image is None or heatmap is None:
            missing.append(f"{row['image_path']}: its image or kept heatmap is no longer on disk")
            continue
        pictures.append(Example(downsized_png(heat_overlay(image, heatmap)), caption(row)))
    return pictures


def caption(row: pd.Series) -> str:
    """'test/crack/003.png · score 512 · flagged · crack · brightness 128'."""
    verdict = "flagged" if row["predicted_anomalous"] else "passed"
    words = [str(row["image_path"]), f"score {row['score']:.4g}", verdict]
    if isinstance(row["defect_type"], str) and row["defect_type"] not in ("", "good"):
        words.append(row["defect_type"])
    if pd.notna(row["mean_brightness"]):
        words.append(f"brightness {row['mean_brightness']:.0f}")
    return " · ".join(words)


def downsized_png(rgb: np.ndarray) -> bytes:
    """`rgb` at `WIDTH` pixels across, as a palette PNG."""
    height = max(1, round(rgb.shape[0] * WIDTH / rgb.shape[1]))
    small = cv2.resize(rgb, (WIDTH, height), interpolation=cv2.INTER_AREA)
    palette = Image.fromarray(small).quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
