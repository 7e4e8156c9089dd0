"""The synthetic plant's 20 parts and the knobs that make each one harder or easier.

`PART_KNOBS` is the single table of per-part difficulty; `docs/synthetic_plant.md` reproduces it
(a test keeps the two in step). Geometry (sheet metal, bead path, regions) is derived from the part
number alone, so a part looks the same whatever seed its images are drawn with.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

IMAGE_HEIGHT = 480
IMAGE_WIDTH = 640
REGIONS = ("A", "B", "C", "D", "E")
DEFECT_TYPES = ("push", "swirl", "bulge", "pinch")
SEVERITIES = ("small", "medium", "extensive")


@dataclass(frozen=True)
class PartKnobs:
    """Normal (acceptable) variation of one part's images. Brightness figures are in stops (log2)."""

    main_line: str  # "straight" or "curved"; every bead also branches once, region E is on the branch
    exposure_spread: float  # std of the per-image exposure, in stops
    overexposed_share: float  # share of acceptable images shot 0.8-1.3 stops too bright
    underexposed_share: float  # share of acceptable images shot 0.8-1.3 stops too dark
    light_changes: float  # mean number of local light or shadow patches per acceptable image
    gradient: float  # largest illumination gradient across the frame (fraction of exposure)
    noise: float  # sensor read noise, grey levels (8-bit)
    glints: float  # mean number of specular glints on the metal per image
    shake_px: float  # largest camera shake, pixels (the study's camera is fixed; < 10 px)
    rotation_deg: float  # largest in-plane rotation, degrees
    defocus_share: float  # share of images slightly out of focus
    width_tolerance: float  # bead width varies within +/- this fraction of nominal
    bead_contrast: float  # how much brighter the glue bead is than the metal around it


def _knobs(main_line, spread, over, under, light, grad, noise, glints, shake, rot, defocus, width, contrast):
    return PartKnobs(main_line, spread, over, under, light, grad, noise, glints, shake, rot, defocus, width, contrast)


# part16 is the study's hard case: strong brightness swings including over-exposed but acceptable
# images (section 5.2). part1 is "moderate, reflects the majority of cases" (section 3.2).
PART_KNOBS: dict[str, PartKnobs] = {
    "part1": _knobs("curved", 0.08, 0.03, 0.00, 0.08, 0.15, 2.0, 1.0, 4.0, 0.5, 0.10, 0.06, 0.22),
    "part2": _knobs("straight", 0.06, 0.00, 0.00, 0.0, 0.10, 1.5, 0.5, 3.0, 0.4, 0.05, 0.05, 0.25),
    "part3": _knobs("curved", 0.10, 0.00, 0.00, 0.0, 0.20, 2.0, 1.5, 5.0, 0.6, 0.10, 0.06, 0.20),
    "part4": _knobs("straight", 0.08, 0.00, 0.00, 0.0, 0.15, 2.5, 1.0, 4.0, 0.5, 0.15, 0.07, 0.22),
    "part5": _knobs("curved", 0.12, 0.02, 0.01, 0.0, 0.20, 2.0, 2.0, 5.0, 0.7, 0.10, 0.06, 0.20),
    "part6": _knobs("straight", 0.06, 0.00, 0.00, 0.0, 0.10, 1.5, 0.3, 2.5, 0.3, 0.05, 0.05, 0.24),
    "part7": _knobs("curved", 0.08, 0.00, 0.00, 0.0, 0.15, 2.0, 1.0, 4.0, 0.5, 0.10, 0.06, 0.24),
    "part8": _knobs("curved", 0.14, 0.03, 0.01, 0.0, 0.25, 2.5, 2.0, 6.0, 0.8, 0.15, 0.07, 0.18),
    "part9": _knobs("straight", 0.07, 0.00, 0.00, 0.0, 0.10, 1.5, 0.5, 3.0, 0.4, 0.05, 0.05, 0.26),
    "part10": _knobs("curved", 0.10, 0.00, 0.00, 0.0, 0.20, 2.0, 1.5, 5.0, 0.6, 0.10, 0.06, 0.21),
    "part11": _knobs("straight", 0.09, 0.00, 0.00, 0.0, 0.15, 3.5, 1.0, 4.0, 0.5, 0.25, 0.08, 0.20),
    "part12": _knobs("curved", 0.12, 0.02, 0.01, 0.0, 0.30, 2.0, 2.5, 5.0, 0.7, 0.10, 0.06, 0.19),
    "part13": _knobs("straight", 0.08, 0.00, 0.00, 0.0, 0.15, 2.0, 1.0, 8.0, 1.0, 0.10, 0.06, 0.22),
    "part14": _knobs("curved", 0.10, 0.00, 0.00, 0.0, 0.20, 2.5, 1.5, 5.0, 0.6, 0.30, 0.09, 0.17),
    "part15": _knobs("curved", 0.16, 0.04, 0.02, 0.0, 0.30, 2.5, 2.0, 6.0, 0.8, 0.15, 0.07, 0.18),
    "part16": _knobs("curved", 0.30, 0.35, 0.03, 0.4, 0.35, 2.5, 3.0, 5.0, 0.7, 0.15, 0.07, 0.20),
    "part17": _knobs("straight", 0.09, 0.00, 0.00, 0.0, 0.15, 2.0, 1.0, 4.0, 0.5, 0.10, 0.06, 0.23),
    "part18": _knobs("curved", 0.13, 0.02, 0.01, 0.0, 0.25, 3.0, 2.0, 6.0, 0.8, 0.20, 0.08, 0.19),
    "part19": _knobs("straight", 0.08, 0.00, 0.00, 0.0, 0.15, 2.0, 1.0, 4.0, 0.5, 0.10, 0.06, 0.22),
    "part20": _knobs("curved", 0.11, 0.01, 0.01, 0.0, 0.20, 2.5, 1.5, 9.0, 1.0, 0.15, 0.07, 0.20),
}


def part_number(part: str) -> int:
    """The number in a synthetic part's name; raises a message listing the valid names."""
    if part not in PART_KNOBS:
        raise ValueError(f"unknown synthetic part {part!r}; choose from part1 ... part{len(PART_KNOBS)}")
    return int(part.removeprefix("part"))


def knob_names() -> list[str]:
    return [f.name for f in fields(PartKnobs)]


def knobs_table() -> str:
    """`PART_KNOBS` as a Markdown table (reproduced in docs/synthetic_plant.md)."""
    names = knob_names()
    lines = ["| part | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for part, knobs in PART_KNOBS.items():
        lines.append(f"| {part} | " + " | ".join(str(getattr(knobs, name)) for name in names) + " |")
    return "\n".join(lines)
