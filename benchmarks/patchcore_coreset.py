"""Print PatchCore's fit at the study's 10 % coreset on a 760-image part, and its accuracy against anomalib's greedy.

Targets: gluelab's PatchCore `paper` fit (features of every training image, then the coreset) takes at most
5 minutes on a generated part of 760 training images; on a smaller part, image and pixel AUROC are within 0.01 of
PatchCore with the exact greedy coreset picked one patch per step.

gluelab's coreset is the greedy k-center selection itself, done in rounds (`engine.models.patchcore.model
.greedy_in_rounds`): no projection, pre-sampling or other approximation, so the run's deviations name none.
The step-by-step reference is anomalib's KCenterGreedy loop on the same (unprojected) patches, as gluelab ran
it before the rounds (tests/test_models.py checks that both pick anomalib's patches); anomalib's own class is not
timed here because its per-step allocations make it slow down to over a second per step after about a thousand
steps on this machine. Run it on a quiet machine.

.venv/bin/python -m benchmarks.patchcore_coreset [--train 760] [--test 580] [--small 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from engine.cli import main as gluelab
from engine.evaluation.evaluate import build_job_model
from engine.evaluation.metrics import image_metrics, pixel_metrics
from engine.ingest.part_data import PartData, load_part
from engine.jobs import Job
from engine.models.anomalib_detector import AnomalibDetector
from engine.models.patchcore.model import FastKCenterGreedy

BACKBONE = "tf_efficientnet_lite0"
JOB = Job("part1", "patchcore", BACKBONE, "paper", 0, "baseline")
FIT_TARGET_MINUTES, AUROC_TOLERANCE = 5.0, 0.01


def generated(root: Path, images: int, train: int) -> PartData:
    store = root / "gluelab.duckdb"
    command = ["generate", "--parts", "part1", "--images", str(images), "--train", str(train)]
    if gluelab([*command, "--out", str(root / "data"), "--store", str(store)]) != 0:
        raise SystemExit("generating the part failed")
    return load_part("part1", store)


def stepwise_greedy(features: torch.Tensor, size: int, first: int) -> list[int]:
    """The greedy k-center selection one pick per step: every patch's distance updated after each pick."""
    norms = features.pow(2).sum(dim=1)
    nearest = (norms - 2 * (features @ features[first]) + norms[first]).clamp_min_(0)
    nearest[first] = 0
    selected = [first]
    for _ in range(size - 1):
        index = int(nearest.argmax())
        selected.append(index)
        torch.minimum(nearest, (norms - 2 * (features @ features[index]) + norms[index]).clamp_min_(0), out=nearest)
        nearest[index] = 0
    return selected


class StepwiseKCenterGreedy(FastKCenterGreedy):
    greedy = staticmethod(stepwise_greedy)


def accuracy(detector: AnomalibDetector, data: PartData) -> dict[str, float]:
    """Fit on the part's training images; image and pixel AUROC on its test images."""
    detector.fit(data.train, None)
    prediction = detector.predict(data.test, batch_size=32)
    assert data.test_masks is not None
    image = image_metrics(data.test_labels, prediction.scores)["image_auroc"]
    pixel = pixel_metrics(detector.resize_masks(data.test_masks), prediction.maps)["pixel_auroc"]
    return {"image_auroc": image, "pixel_auroc": float(pixel or 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=760, help="training images of the large part")
    parser.add_argument("--test", type=int, default=580, help="test images of the large part")
    parser.add_argument("--small", type=int, default=200, help="images of the part both coresets are compared on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = generated(Path(scratch) / "large", args.train + args.test, args.train)
        detector, _ = build_job_model(JOB)
        assert isinstance(detector, AnomalibDetector)
        start = time.perf_counter()
        detector.fit(data.train, None)
        minutes = (time.perf_counter() - start) / 60
        bank = detector.module.model.memory_bank
        verdict = "met" if minutes <= FIT_TARGET_MINUTES else "missed"
        print(
            f"PatchCore `paper` on part1 of {len(data.train)} training images: fit in {minutes:.2f} min, "
            f"coreset of {bank.shape[0]:,} patches (target at most {FIT_TARGET_MINUTES:g} min): {verdict}"
        )
        print(f"deviations named in the run: {detector.config['deviations'] or 'none'}", flush=True)
        del detector, data

        small = generated(Path(scratch) / "small", args.small, round(args.small * 0.6))
        start = time.perf_counter()
        ours = accuracy(build_job_model(JOB)[0], small)  # type: ignore[arg-type]
        rounds_seconds = time.perf_counter() - start
        start = time.perf_counter()
        reference, _ = build_job_model(JOB)
        assert isinstance(reference, AnomalibDetector)
        reference.module.sampler = StepwiseKCenterGreedy
        theirs = accuracy(reference, small)
        print(
            f"part1 of {args.small} images ({len(small.train)} training), fit and score: rounds {rounds_seconds:.0f} s,"
            f" one pick per step {time.perf_counter() - start:.0f} s"
        )
        for metric in ("image_auroc", "pixel_auroc"):
            gap = ours[metric] - theirs[metric]
            verdict = "met" if abs(gap) <= AUROC_TOLERANCE else "missed"
            print(
                f"  {metric}: gluelab {ours[metric]:.4f}, exact step-by-step greedy {theirs[metric]:.4f}, "
                f"difference {gap:+.4f} (target within {AUROC_TOLERANCE}): {verdict}"
            )


if __name__ == "__main__":
    main()
