"""Datasets (one per part) and their images."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from pathlib import Path

import pandas as pd

from store.connection import DEFAULT_STORE, insert_frame, read_store, write_store


@dataclass(frozen=True)
class DatasetRecord:
    part: str
    layout: str  # mvtec | folder | elpv
    root: str  # folder the image paths are relative to
    source: str  # where the images came from, for people
    n_images: int
    has_masks: bool
    has_manifest: bool


@dataclass(frozen=True)
class ImageRecord:
    image_path: str
    split: str  # train | test
    label: str  # normal | anomalous
    defect_type: str  # "good" or the defect folder name
    mask_path: str | None
    width: int
    height: int
    original_mode: str  # PIL mode of the file; engines always read it as 8-bit grayscale
    mean_brightness: float
    over_exposed: bool | None = None
    region: str | None = None
    severity: str | None = None
    defect_area_px: int | None = None
    exposure_stops: float | None = None


IMAGE_COLUMNS = [f.name for f in fields(ImageRecord)]


def register_dataset(dataset: DatasetRecord, images: list[ImageRecord], store: Path | str = DEFAULT_STORE) -> None:
    """Add (or replace) the dataset of `dataset.part` and all its images in one transaction."""
    frame = pd.DataFrame([astuple(image) for image in images], columns=IMAGE_COLUMNS)
    frame.insert(0, "part", dataset.part)
    with write_store(store) as con:
        con.execute("DELETE FROM images WHERE part = ?", [dataset.part])
        con.execute("DELETE FROM datasets WHERE part = ?", [dataset.part])
        con.execute(
            "INSERT INTO datasets (part, layout, root, source, n_images, has_masks, has_manifest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                dataset.part,
                dataset.layout,
                dataset.root,
                dataset.source,
                dataset.n_images,
                dataset.has_masks,
                dataset.has_manifest,
            ],
        )
        insert_frame(con, "images", frame)


def dataset_parts(store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """One row per registered part."""
    with read_store(store) as con:
        return con.execute("SELECT * FROM datasets ORDER BY part").df()


def training_split_sizes(store: Path | str = DEFAULT_STORE) -> dict[str, int]:
    """How many training images each registered part has."""
    with read_store(store) as con:
        rows = con.execute("SELECT part, count(*) FROM images WHERE split = 'train' GROUP BY part").fetchall()
    return {part: int(count) for part, count in rows}


def part_images(part: str, store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """Every image of `part` with its manifest fields, paths made absolute."""
    with read_store(store) as con:
        frame = con.execute(
            """
            SELECT i.*, d.root FROM images i JOIN datasets d USING (part)
            WHERE part = ? ORDER BY split DESC, label, image_path
            """,
            [part],
        ).df()
    if frame.empty:
        raise KeyError(f"part {part!r} is not in the store {store}")
    return frame
