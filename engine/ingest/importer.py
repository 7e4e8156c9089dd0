"""Bring a dataset into the store: discover, validate every file, then register all or nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from engine.ingest.brightness import is_over_exposed
from engine.ingest.layouts import LAYOUTS, MANIFEST_FIELDS, Candidate, Discovery, discover
from engine.ingest.validation import ImageFacts, check_mask, outside_root, read_image
from store import DEFAULT_STORE, DatasetRecord, ImageRecord, register_dataset

__all__ = ["LAYOUTS", "ImportRefused", "import_dataset"]


class ImportRefused(ValueError):
    """The dataset has problems; nothing was written. `problems` holds (path, why) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = "\n".join(f"  {path}: {why}" for path, why in problems)
        super().__init__(f"import of {source} refused, {len(problems)} problem(s); the store was not changed:\n{lines}")


def _check_file(path: Path, root: Path, problems: list, mask: bool = False) -> ImageFacts | None:
    if outside_root(path, root):
        problems.append((str(path), f"symlink leads outside {root}"))
        return None
    try:
        facts = read_image(path)
        if mask:
            check_mask(path)
        return facts
    except ValueError as error:
        problems.append((str(path), str(error)))
        return None


def _manifest_fields(manifest: pd.DataFrame | None, relative: str) -> dict:
    if manifest is None or relative not in manifest.index:
        return {}
    row = manifest.loc[relative]
    return {name: (None if row[name] in ("", None) else row[name]) for name in MANIFEST_FIELDS}


def _size_problems(records: list[ImageRecord], root: Path) -> list[tuple[str, str]]:
    """Every image whose size differs from the most common one: models need one size per part."""
    sizes = Counter((record.width, record.height) for record in records)
    if len(sizes) < 2:
        return []
    (width, height), count = sizes.most_common(1)[0]
    return [
        (
            str(root / record.image_path),
            f"image is {record.width}x{record.height} but {count} of the {len(records)} images are "
            f"{width}x{height}; all images of a part must have one size",
        )
        for record in records
        if (record.width, record.height) != (width, height)
    ]


def _record(candidate: Candidate, discovery: Discovery, problems: list) -> ImageRecord | None:
    facts = _check_file(candidate.image, discovery.root, problems)
    mask = _check_file(candidate.mask, discovery.root, problems, mask=True) if candidate.mask else None
    if facts is None or (candidate.mask and mask is None):
        return None
    if mask is not None and (mask.width, mask.height) != (facts.width, facts.height):
        problems.append(
            (str(candidate.mask), f"mask is {mask.width}x{mask.height} but its image is {facts.width}x{facts.height}")
        )
        return None
    relative = candidate.image.relative_to(discovery.root).as_posix()
    extra = _manifest_fields(discovery.manifest, relative)
    return ImageRecord(
        image_path=relative,
        split=candidate.split,
        label=candidate.label,
        defect_type=candidate.defect_type,
        mask_path=candidate.mask.relative_to(discovery.root).as_posix() if candidate.mask else None,
        width=facts.width,
        height=facts.height,
        original_mode=facts.mode,
        mean_brightness=round(float(facts.gray.mean()), 3),
        over_exposed=is_over_exposed(facts.gray),
        region=extra.get("region"),
        severity=extra.get("severity"),
        defect_area_px=None if extra.get("defect_area_px") is None else int(float(extra["defect_area_px"])),
        exposure_stops=None if extra.get("exposure_stops") is None else float(extra["exposure_stops"]),
    )


def _empty_split_problems(discovery: Discovery) -> list[tuple[str, str]]:
    problems = []
    if not any(c.split == "train" for c in discovery.candidates):
        problems.append((str(discovery.root), "no training images (normal images for the train split)"))
    if not any(c.split == "test" and c.label == "normal" for c in discovery.candidates):
        problems.append((str(discovery.root), "no normal test images"))
    if not any(c.label == "anomalous" for c in discovery.candidates):
        problems.append((str(discovery.root), "no anomalous test images"))
    return problems


def import_dataset(
    layout: str, part: str, path: Path | str | None, store: Path | str = DEFAULT_STORE, limit: int | None = None
) -> DatasetRecord:
    """Validate the whole dataset and register it as `part`; raise ImportRefused listing every problem."""
    if not part or not part.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"part name {part!r} must be letters, digits, '_' or '-'")
    if limit is not None and layout != "elpv":
        raise ValueError(f"--limit {limit} applies only to --layout elpv; the {layout} layout imports every image")
    discovery = discover(layout, None if path is None else Path(path), limit)
    problems = list(discovery.problems)
    if not problems:
        problems += _empty_split_problems(discovery)
    checked = [_record(candidate, discovery, problems) for candidate in discovery.candidates]
    records = [record for record in checked if record is not None]
    if not problems:
        problems += _size_problems(records, discovery.root)
    if problems:
        raise ImportRefused(discovery.source, problems)
    dataset = DatasetRecord(
        part=part,
        layout=layout,
        root=str(discovery.root),
        source=discovery.source,
        n_images=len(records),
        has_masks=any(record.mask_path for record in records),
        has_manifest=discovery.manifest is not None,
    )
    register_dataset(dataset, records, store)
    return dataset
