"""A line's camera, simulated: frames of one part written one file at a time into a folder, as the camera of an
inspection station fills it, with a drift from a chosen frame on.

Frame k is drawn like one of the part's acceptable test images, the line's own frames with their exposure swings
(`render.render_normal`); with probability `defect_rate` it carries a defect, its type, region and severity drawn
by the frame's own generator, seeded by (seed, part number, `FIRST_FRAME` + k), so a stream is the same whatever
its rate and never repeats an image of the generated part. From frame `drift_from` on, the drift changes what the
camera sees:

- `brightness`: the light doubles (`BRIGHTNESS_DRIFT_STOPS`, one stop), the way part16's lighting swings broke
  image-level detection in the study;
- `focus`: the lens goes out of focus (a Gaussian blur of `FOCUS_DRIFT_SIGMA` pixels);
- `none`: the line stays as it was.

Each frame is written under a hidden temporary name and renamed into place, so a watcher never reads half a
frame; `stream.csv` beside the frames says what each one shows (the ground truth a watch is checked against).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from engine.frame_statistics import sharpness
from engine.ingest.synthetic.parts import DEFECT_TYPES, REGIONS, SEVERITIES, part_number
from engine.ingest.synthetic.plant import ImagePlan, image_rng, render_planned

Drift = Literal["none", "brightness", "focus"]
DRIFTS: tuple[Drift, ...] = ("none", "brightness", "focus")
BRIGHTNESS_DRIFT_STOPS = 1.0
FOCUS_DRIFT_SIGMA = 2.5
FIRST_FRAME = 1_000_000  # frame k is drawn as image FIRST_FRAME + k: never an image of the generated part
DEFAULT_DEFECT_RATE = 0.005
MANIFEST = "stream.csv"


@dataclass(frozen=True)
class Frame:
    index: int
    file: str
    defective: bool
    defect_type: str  # "good" or the defect's type
    drifted: bool
    mean_brightness: float
    sharpness: float  # `engine.frame_statistics.sharpness`


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"


def render_frame(
    part: str, seed: int, index: int, defect_rate: float, drift: Drift, drift_from: int
) -> tuple[np.ndarray, Frame]:
    """Frame `index` of the stream as (8-bit image, `Frame`)."""
    rng = image_rng(seed, part, FIRST_FRAME + index)
    defective = bool(rng.random() < defect_rate)
    if defective:
        kind, region, severity = (str(rng.choice(values)) for values in (DEFECT_TYPES, REGIONS, SEVERITIES))
        plan = ImagePlan(FIRST_FRAME + index, "test", kind, region, severity, "", "")
    else:
        plan = ImagePlan(FIRST_FRAME + index, "test", "good", "", "", "", "")
    rendered, defect = render_planned(part, seed, plan)
    image = rendered.image if defect is None else defect.image
    drifted = drift != "none" and index >= drift_from
    if drifted and drift == "brightness":
        image = np.clip(np.rint(image.astype(np.float32) * 2.0**BRIGHTNESS_DRIFT_STOPS), 0, 255).astype(np.uint8)
    elif drifted and drift == "focus":
        image = cv2.GaussianBlur(image, (0, 0), FOCUS_DRIFT_SIGMA)
    frame = Frame(
        index, frame_name(index), defective, plan.defect_type, drifted, round(float(image.mean()), 3),
        round(sharpness(image), 6),
    )  # fmt: skip
    return image, frame


def write_frame(folder: Path, name: str, image: np.ndarray) -> Path:
    """`image` as `folder/name`, written under a hidden name first and renamed into place in one step."""
    final = folder / name
    hidden = folder / f".{name}.part.png"
    if not cv2.imwrite(str(hidden), image):
        raise OSError(f"could not write {hidden}")
    os.replace(hidden, final)
    return final


def stream_frames(
    part: str,
    frames: int,
    out: Path,
    drift: Drift = "none",
    drift_from: int = 0,
    rate: float = 0.0,
    seed: int = 0,
    defect_rate: float = DEFAULT_DEFECT_RATE,
    on_frame: Callable[[Frame], None] | None = None,
) -> list[Frame]:
    """Write `frames` frames of `part` into `out`, one at a time, at `rate` frames per second (0: as fast as they
    are drawn), the drift starting at frame `drift_from`; `stream.csv` lists them. Returns the frames written."""
    part_number(part)
    if drift not in DRIFTS:
        raise ValueError(f"unknown drift {drift!r}; choose from {', '.join(DRIFTS)}")
    if frames < 1 or not 0 <= drift_from <= frames or rate < 0 or not 0 <= defect_rate <= 1:
        raise ValueError(
            f"--frames must be at least 1, --drift-from between 0 and --frames, --rate at least 0 and the defect rate "
            f"between 0 and 1 (got {frames}, {drift_from}, {rate}, {defect_rate})"
        )
    out.mkdir(parents=True, exist_ok=True)
    written: list[Frame] = []
    start = time.monotonic()
    with open(out / MANIFEST, "w", newline="") as manifest:
        writer = csv.DictWriter(manifest, fieldnames=list(Frame.__dataclass_fields__))
        writer.writeheader()
        for index in range(frames):
            image, frame = render_frame(part, seed, index, defect_rate, drift, drift_from)
            if rate > 0:
                time.sleep(max(0.0, start + index / rate - time.monotonic()))
            write_frame(out, frame.file, image)
            writer.writerow(asdict(frame))
            manifest.flush()
            written.append(frame)
            if on_frame is not None:
                on_frame(frame)
    return written
