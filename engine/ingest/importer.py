"""Bring a dataset into the store: discover, validate every file, then register all or nothing.

A part's images may differ in size, as real sets cropped per part or per defect do: every model resizes each
image to its input size where it reads it (`engine.models`), masks with their images. What the import refuses
is what no resize can mend: a mask of another size than its own image, and an image whose shorter side is under
`MIN_SIDE_PX`. An image whose aspect ratio is more than `[import] max_aspect_change` times wider or narrower than
the part's median would be distorted against the others by that resize: it is named in a warning, or refused
where the plant's config asks for `[import] strict = true`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import pandas as pd

from engine.frame_statistics import is_over_exposed
from engine.ingest.layouts import LAYOUTS, MANIFEST_FIELDS, Candidate, Discovery, discover
from engine.ingest.validation import ImageFacts, check_mask, outside_root, read_image
from engine.plant_config import read_table
from store import DEFAULT_STORE, DatasetRecord, ImageRecord, register_dataset

__all__ = ["LAYOUTS", "MIN_SIDE_PX", "ImportRefused", "ImportRules", "import_dataset"]

MIN_SIDE_PX = 32  # below this, a model's 256 x 256 input would be mostly interpolation


@dataclass(frozen=True)
class ImportRules:
    """How far an image's aspect ratio may stray from its part's median before it is named, from the `[import]`
    table of the plant's config: `max_aspect_change` (a factor, at least 1) and `strict` (refuse such images
    instead of warning about them)."""

    max_aspect_change: float = 1.5
    strict: bool = False

    @classmethod
    def from_config(cls) -> ImportRules:
        rules = read_table("import", cls)
        if rules.max_aspect_change < 1:
            raise ValueError(f"[import] max_aspect_change must be at least 1 (got {rules.max_aspect_change})")
        return rules


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


def _aspect_outliers(records: list[ImageRecord], root: Path, rules: ImportRules) -> list[tuple[str, str]]:
    """(path, why) for every image whose width/height ratio is over `rules.max_aspect_change` times the part's
    median ratio, or under its inverse: resized to a model's input with the others, its content would be
    stretched against theirs by that factor."""
    if not records:
        return []
    typical = median(record.width / record.height for record in records)
    outliers = []
    for record in records:
        change = (record.width / record.height) / typical
        if max(change, 1 / change) > rules.max_aspect_change:
            outliers.append(
                (
                    str(root / record.image_path),
                    f"aspect ratio {record.width / record.height:.2f} ({record.width}x{record.height}) is "
                    f"{max(change, 1 / change):.1f} times {'wider' if change > 1 else 'narrower'} than the part's "
                    f"median {typical:.2f}: resizing it to a model's input distorts it against the other images",
                )
            )
    return outliers


def _record(candidate: Candidate, discovery: Discovery, problems: list) -> ImageRecord | None:
    facts = _check_file(candidate.image, discovery.root, problems)
    mask = _check_file(candidate.mask, discovery.root, problems, mask=True) if candidate.mask else None
    if facts is None or (candidate.mask and mask is None):
        return None
    if min(facts.width, facts.height) < MIN_SIDE_PX:
        problems.append(
            (
                str(candidate.image),
                f"image is {facts.width}x{facts.height}: its shorter side is under the {MIN_SIDE_PX}-pixel minimum",
            )
        )
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
    layout: str,
    part: str,
    path: Path | str | None,
    store: Path | str = DEFAULT_STORE,
    limit: int | None = None,
    warn: Callable[[str, str], None] | None = None,
    rules: ImportRules | None = None,
) -> DatasetRecord:
    """Validate the whole dataset and register it as `part`; raise ImportRefused listing every problem.

    Images whose aspect ratio strays from the part's (`ImportRules`, by default from the plant's config) are passed
    to `warn(path, why)` and imported, or refused with the rest where the rules are strict.
    """
    rules = rules or ImportRules.from_config()
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
    outliers = _aspect_outliers(records, discovery.root, rules) if not problems else []
    if rules.strict:
        problems += [(path, f"{why} (refused: [import] strict = true)") for path, why in outliers]
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
    for path, why in outliers:
        if warn is not None:
            warn(path, why)
    return dataset
