"""Print synthetic-plant generation speed, written PNGs included (target: >= 20 images/s per core).

.venv/bin/python benchmarks/generation_speed.py [--images 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from engine.ingest.synthetic.plant import generate_part


def images_per_second(part: str, n_images: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        generate_part(part, 5, seed=1, out_dir=Path(out) / "warm-up", workers=1)
        start = time.perf_counter()
        generate_part(part, n_images, seed=0, out_dir=Path(out), workers=workers)
        return n_images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    for part in ("part1", "part16"):
        single = images_per_second(part, args.images, workers=1)
        every = images_per_second(part, args.images, workers=cores)
        print(
            f"{part:7s} {single:6.1f} images/s on 1 core; {every:6.1f} images/s on {cores} cores ({every / single:.2f}x)"
        )


if __name__ == "__main__":
    main()
