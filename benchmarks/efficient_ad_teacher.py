"""EfficientAD's two offline teachers on the demo parts: image and pixel AUROC, training and distillation minutes.

Generates the demo parts as `make demo` does (part1, part6, part16; 200 images, seed 0) into a temporary folder
with its own GLUELAB_HOME (so every PDN teacher is distilled afresh and timed), then for each part and teacher
trains EfficientAD on the cpu preset with the same fixed number of student steps and evaluates it through the
engine's own job (`evaluate_job`):

- backbone: the backbone's frozen stride-4 and stride-8 features;
- pdn: a PDN distilled from those features on the part's training images (`engine.models.efficient_ad.pdn_teacher`).

Per part and teacher it prints image and pixel AUROC, the training minutes (the student and autoencoder, their
statistics and map quantiles; without the distillation), the distillation minutes and the training loss
(student + autoencoder terms) averaged over the first and the last tenth of the steps, which shows whether it
has levelled off. Run it with one torch thread beside other work:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/efficient_ad_teacher.py [--steps 60] \
        [--parts part1 part6 part16] [--teachers backbone pdn] [--distil-steps N] [--images 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from anomalib.models.image.efficient_ad.lightning_model import EfficientAd

from engine.cli import main as gluelab
from engine.evaluation.evaluate import evaluate_job
from engine.ingest.part_data import load_part
from engine.jobs import Job
from engine.models.catalogue import get_model
from engine.models.efficient_ad.pdn_teacher import teachers_dir
from engine.models.names import DEFAULT_BACKBONE

PARTS = ("part1", "part6", "part16")
TEACHERS = ("backbone", "pdn")


@dataclass(frozen=True)
class TeacherResult:
    part: str
    teacher: str
    image_auroc: float
    pixel_auroc: float
    train_minutes: float  # fit without the distillation
    distil_minutes: float  # 0 for the backbone teacher
    loss_first: float  # mean training loss over the first tenth of the steps
    loss_last: float  # ... and over the last tenth


def _recorded_losses() -> list[float]:
    """Record every EfficientAD training step's loss in this process (the fit itself is unchanged)."""
    losses: list[float] = []
    step = EfficientAd.training_step

    def recording(self, batch, *args, **kwargs):
        output = step(self, batch, *args, **kwargs)
        losses.append(output["loss"].item())
        return output

    EfficientAd.training_step = recording  # type: ignore[method-assign]
    return losses


def run_teacher(
    part: str, teacher: str, steps: int, distil_steps: int | None, store: Path, artifacts: Path, losses: list[float]
) -> TeacherResult:
    before = set(teachers_dir().glob("*.pt"))
    data = load_part(part, store)
    # A fixed schedule of `steps` single-image steps: whole epochs over the training images, the last one cut short.
    settings = {k: v for k, v in get_model("efficient_ad").presets["cpu"].items() if k != "budget_minutes"}
    epochs = -(-steps // len(data.train))
    settings |= {"epochs": epochs, "batches_per_epoch": -(-steps // epochs), "teacher": teacher}
    if distil_steps is not None:
        settings["teacher_steps"] = distil_steps
    job = Job(part, "efficient_ad", DEFAULT_BACKBONE, "cpu", 0, "baseline")
    del losses[:]
    outcome = evaluate_job(job, data, artifacts, settings=settings)
    distilled = [torch.load(path, weights_only=True) for path in set(teachers_dir().glob("*.pt")) - before]
    distil_seconds = sum(payload["seconds"] for payload in distilled)
    for payload in distilled:
        tenth = max(len(payload["losses"]) // 10, 1)
        first, last = sum(payload["losses"][:tenth]) / tenth, sum(payload["losses"][-tenth:]) / tenth
        print(f"  {part}: PDN distilled in {len(payload['losses'])} steps, loss {first:.3f} → {last:.3f}", flush=True)
    tenth = max(len(losses) // 10, 1)
    return TeacherResult(
        part,
        teacher,
        outcome.metrics["image_auroc"],
        outcome.metrics["pixel_auroc"],
        (outcome.train_seconds - distil_seconds) / 60,
        distil_seconds / 60,
        sum(losses[:tenth]) / tenth,
        sum(losses[-tenth:]) / tenth,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--parts", nargs="+", default=list(PARTS))
    parser.add_argument("--teachers", nargs="+", choices=TEACHERS, default=list(TEACHERS))
    parser.add_argument("--distil-steps", type=int, help="PDN distillation steps (default: the engine's)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="efficient_ad_teacher_") as folder:
        root = Path(folder)
        os.environ["GLUELAB_HOME"] = str(root / "home")
        store = root / "store.duckdb"
        generate = ["generate", "--parts", *args.parts, "--images", str(args.images), "--seed", str(args.seed)]
        assert gluelab([*generate, "--out", str(root / "data"), "--store", str(store), "--workers", "1"]) == 0
        losses = _recorded_losses()
        print(f"EfficientAD, {args.steps} student steps, {args.images} images per part", flush=True)
        header = "part    teacher   image AUROC  pixel AUROC  train min  distil min  loss first → last tenth"
        print(header, flush=True)
        results = []
        for part in args.parts:
            for teacher in args.teachers:
                start = time.perf_counter()
                r = run_teacher(part, teacher, args.steps, args.distil_steps, store, root / "artifacts", losses)
                results.append(r)
                print(
                    f"{r.part:7s} {r.teacher:9s} {r.image_auroc:11.3f}  {r.pixel_auroc:11.3f}  {r.train_minutes:9.1f}  "
                    f"{r.distil_minutes:10.1f}  {r.loss_first:8.2f} → {r.loss_last:.2f}"
                    f"   ({(time.perf_counter() - start) / 60:.1f} min with inference)",
                    flush=True,
                )
        for teacher in args.teachers:
            mine = [r for r in results if r.teacher == teacher]
            image = sum(r.image_auroc for r in mine) / len(mine)
            pixel = sum(r.pixel_auroc for r in mine) / len(mine)
            print(f"mean    {teacher:9s} {image:11.3f}  {pixel:11.3f}", flush=True)


if __name__ == "__main__":
    main()
