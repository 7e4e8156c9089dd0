"""Print the legacy bead check's false-positive rate on part1 and part16 (study: part16 ~5x part1).

.venv/bin/python benchmarks/legacy_false_alarms.py [--images 1000] [--seed 0]
"""

from __future__ import annotations

import argparse

from benchmarks.legacy_rates import legacy_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images per part (20%% are acceptable test images)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rates = {part: legacy_rates(part, args.images, args.seed) for part in ("part1", "part16")}
    for r in rates.values():
        print(
            f"{r.part:7s} false-positive rate {r.false_positive_rate:6.1%} of {r.n_normal} acceptable images, "
            f"detection rate {r.detection_rate:6.1%} of {r.n_defective} defective"
        )
    ratio = rates["part16"].false_positive_rate / max(rates["part1"].false_positive_rate, 1e-9)
    print(f"part16 / part1 false-positive ratio: {ratio:.1f}x")


if __name__ == "__main__":
    main()
