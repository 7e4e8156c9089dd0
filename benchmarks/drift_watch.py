"""How the line watch's drift test behaves on generated streams: how often it flags a line that did not drift, and how
many frames after a drift starts it flags one that did.

For each seed, a stream of part1 frames (`gluelab generate --stream`, rendered without writing files) is tested
frame by frame against the training frames of a generated part1 (`engine.analysis.line_watch.first_drift`: the
last 30 frames' mean grey levels, and their sharpness, against the training frames', Kolmogorov-Smirnov,
p < 1e-6). Targets: no flag on a line without drift; a brightness or focus drift from frame 200 flagged within 50
frames, never before.

.venv/bin/python -m benchmarks.drift_watch [--seeds 20] [--frames 400] [--drift-from 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

from engine.analysis.line_watch import DRIFT_P_LIMIT, DRIFT_WINDOW, first_drift
from engine.frame_statistics import sharpness
from engine.ingest.synthetic.plant import MANIFEST_NAME, generate_part
from engine.ingest.synthetic.stream import DEFAULT_DEFECT_RATE, render_frame

STATISTICS = ("mean_brightness", "sharpness")


def statistics(task: tuple[int, str, int, int]) -> dict[str, list[float]]:
    seed, drift, frames, drift_from = task
    drawn = [render_frame("part1", seed, k, DEFAULT_DEFECT_RATE, drift, drift_from)[1] for k in range(frames)]  # type: ignore[arg-type]
    return {name: [getattr(frame, name) for frame in drawn] for name in STATISTICS}


def first_flag(values: dict[str, list[float]], reference: dict[str, list[float]]) -> int | None:
    """The first frame either statistic flags."""
    flags = [first_drift(values[name], reference[name]) for name in STATISTICS]
    return min((flag for flag in flags if flag is not None), default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--drift-from", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        part = generate_part("part1", 80, seed=0, out_dir=Path(folder), workers=args.workers)
        with open(part / MANIFEST_NAME) as manifest:
            rows = [row for row in csv.DictReader(manifest) if row["split"] == "train"]
        images = [cv2.imread(str(part / row["image_path"]), cv2.IMREAD_GRAYSCALE) for row in rows]
        reference = {
            "mean_brightness": [float(row["mean_brightness"]) for row in rows],
            "sharpness": [sharpness(image) for image in images],
        }
    print(
        f"part1, {args.frames} frames per stream, {args.seeds} seeds; window {DRIFT_WINDOW} frames, "
        f"p < {DRIFT_P_LIMIT:g}; reference: {len(rows)} training frames; a stream is flagged when its mean grey level "
        "or its sharpness is"
    )
    for drift in ("none", "brightness", "focus"):
        tasks = [(seed, drift, args.frames, args.drift_from) for seed in range(args.seeds)]
        with ProcessPoolExecutor(args.workers) as pool:
            flags = [first_flag(values, reference) for values in pool.map(statistics, tasks)]
        if drift == "none":
            flagged = [flag for flag in flags if flag is not None]
            print(
                f"no drift:   {len(flagged)} of {args.seeds} streams flagged (false-flag rate {len(flagged) / args.seeds:.0%})"
            )
            continue
        delays = [None if flag is None else flag - args.drift_from for flag in flags]
        early = sum(delay is not None and delay < 0 for delay in delays)
        found = sorted(delay for delay in delays if delay is not None and delay >= 0)
        missed = sum(delay is None for delay in delays)
        within = sum(delay < 50 for delay in found)
        median = found[len(found) // 2] if found else None
        print(
            f"{drift:<11} flagged {len(found)} of {args.seeds} (within 50 frames: {within}; before the drift: {early}; "
            f"never: {missed}); frames after the drift started: median {median}, range {found[0] if found else None}"
            f"-{found[-1] if found else None}"
        )


if __name__ == "__main__":
    main()
