"""Print a full PaDiM evaluation at the study's settings against plain anomalib, and every demo model's peak memory.

Targets: on a generated part of 760 training and 580 test images, gluelab's PaDiM `paper` evaluation (fit, score,
metrics, example heatmaps: everything `gluelab evaluate` does, through the engine's own grid runner) is at least 10x
faster than plain anomalib `Engine.fit` + `Engine.test` with the same backbone, layers, features, input size and
seed, with image and pixel AUROC within 0.005 of it; its peak resident memory is at most 3 GB. Then each model of
`make demo` on a 200-image part, with its peak memory (the gradient-trained ones for `--epochs` epochs of at most
`--steps` batches: memory does not grow with the number of epochs).

The plain run is anomalib's own `Padim` with the backbone's timm normalisation, its MVTec AD datamodule on the
generated folder (test images also used for validation, as a user without a validation split would), and
`Engine(accelerator="cpu")`, without a post-processor or metrics (Engine.test then only scores the test images).
Its AUROCs come from `Engine.predict`'s raw scores and maps, afterwards and untimed, through the same metric code
as ours: anomalib's post-processor normalises scores with a clamp that ties the highest ones (tests/test_parity.py).
Run it on a quiet machine (docs/engine.md).

.venv/bin/python -m benchmarks.padim_paper [--train 760] [--test 580] [--demo-images 200] [--skip-demo]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.models import Padim
from anomalib.pre_processing import PreProcessor
from lightning.pytorch import seed_everything
from timm import create_model
from torchvision.transforms.v2 import Compose, Normalize, Resize

from benchmarks.deployment_latency import short_training
from engine.cli import main as gluelab
from engine.evaluation.grid import run_grid
from engine.evaluation.metrics import image_metrics, pixel_metrics
from engine.jobs import plan_grid
from engine.models.backbones import ensure_offline_backbones
from engine.models.building import LAYERS
from engine.models.catalogue import MODELS
from store.runs import run_metrics, runs

BACKBONE = "tf_efficientnet_lite0"
DEMO_MODELS = ["legacy", "padim", "patchcore", "dfm", "dfkde", "stfpm", "fastflow", "efficient_ad"]
SPEED_TARGET, AUROC_TOLERANCE, MEMORY_TARGET_GB = 10.0, 0.005, 3.0


def generate(root: Path, images: int, train: int | None) -> Path:
    store = root / "gluelab.duckdb"
    command = ["generate", "--parts", "part1", "--images", str(images), "--out", str(root / "data")]
    if gluelab([*command, *(["--train", str(train)] if train else []), "--store", str(store)]) != 0:
        raise SystemExit("generating the part failed")
    return store


def ours(store: Path) -> tuple[float, dict, float]:
    """Wall seconds of gluelab's PaDiM `paper` evaluation, its metrics and its peak memory in GB."""
    jobs = plan_grid(["part1"], ["padim"], [BACKBONE], 1, ["baseline"], "paper", store)
    start = time.perf_counter()
    summary = run_grid(jobs, store, show_progress=False)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise SystemExit(f"gluelab's PaDiM run failed; see `gluelab runs --store {store}`")
    metrics = run_metrics(store).set_index("metric")["value"].to_dict()
    peak = float(runs(store).set_index("run_id").loc[jobs[0].run_id, "peak_memory_mb"]) / 1024
    return seconds, metrics, peak


def plain_anomalib_run(data: Path, scratch: Path, preset: str, seed: int, visualize: bool = True):
    """anomalib's own Padim (timm normalisation, no post-processor or metrics), its MVTec AD datamodule on the
    generated `data` folder (test images also used for validation) and a CPU Engine, seeded with `seed`."""
    settings = MODELS["padim"].presets[preset]
    ensure_offline_backbones()
    weights = create_model(BACKBONE, pretrained=False).pretrained_cfg
    transform = Compose(
        [Resize(tuple(settings["image_size"]), antialias=True), Normalize(weights["mean"], weights["std"])]
    )
    seed_everything(seed)
    model = Padim(
        backbone=BACKBONE,
        layers=list(LAYERS[BACKBONE][: settings["n_layers"]]),
        n_features=settings["n_features"],
        pre_processor=PreProcessor(transform=transform),
        post_processor=False,
        evaluator=False,
        **({} if visualize else {"visualizer": False}),
    )
    datamodule = MVTecAD(
        root=data,
        category="part1",
        train_batch_size=32,
        eval_batch_size=32,
        num_workers=0,
        val_split_mode="same_as_test",
    )
    engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=scratch, enable_progress_bar=False)
    return model, datamodule, engine


def raw_metrics(batches: list) -> dict:
    """Image and pixel metrics of `Engine.predict`'s raw scores and maps, through gluelab's metric code."""
    labels = np.concatenate([batch.gt_label.numpy() for batch in batches])
    masks = np.concatenate([batch.gt_mask.numpy() for batch in batches]).astype(bool)
    maps = np.concatenate(
        [batch.anomaly_map.reshape(len(batch.gt_label), *masks.shape[-2:]).numpy() for batch in batches]
    )
    metrics = image_metrics(labels, np.concatenate([batch.pred_score.reshape(-1).numpy() for batch in batches]))
    return metrics | pixel_metrics(masks, maps)


def plain_anomalib(data: Path, scratch: Path) -> tuple[float, dict]:
    """Wall seconds of anomalib's Engine.fit + Engine.test, and AUROCs from its raw predictions."""
    model, datamodule, engine = plain_anomalib_run(data, scratch, "paper", 0)
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    engine.test(model=model, datamodule=datamodule, verbose=False)
    seconds = time.perf_counter() - start
    return seconds, raw_metrics(engine.predict(model=model, datamodule=datamodule))  # predict is not timed


def demo_peaks(root: Path, images: int, epochs: int, steps: int) -> None:
    store = generate(root, images, None)
    short_training(DEMO_MODELS, epochs, steps)
    jobs = plan_grid(["part1"], DEMO_MODELS, None, 1, ["baseline"], "cpu", store)
    summary = run_grid(jobs, store, show_progress=False)
    table = runs(store).set_index("run_id")
    print(f"\npeak resident memory of each demo model, part1 of {images} images, `cpu` presets, one process per job")
    for job in jobs:
        row = table.loc[job.run_id]
        peak = f"{row.peak_memory_mb / 1024:.2f} GB" if row.status == "finished" else f"not measured ({row.status})"
        print(f"  {job.model:<13}{peak}")
    if summary.failed:
        print(f"  ({summary.failed} job(s) failed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=760)
    parser.add_argument("--test", type=int, default=580)
    parser.add_argument("--demo-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the gradient-trained demo models")
    parser.add_argument("--steps", type=int, default=20, help="at most this many batches per epoch")
    parser.add_argument("--skip-demo", action="store_true", help="only the PaDiM comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        store = generate(root / "big", args.train + args.test, args.train)
        print(f"part1: {args.train} training and {args.test} test images; PaDiM `paper`, {BACKBONE}, seed 0")
        our_seconds, our_metrics, peak_gb = ours(store)
        print(f"  gluelab evaluation (grid runner, fit + score + metrics + artifacts): {our_seconds:.1f} s", flush=True)
        plain_seconds, plain_metrics = plain_anomalib(root / "big" / "data", root / "anomalib")
        print(f"  anomalib Engine.fit + Engine.test: {plain_seconds:.1f} s")
        ratio = plain_seconds / our_seconds
        print(
            f"  speed-up {ratio:.1f}x (target at least {SPEED_TARGET:g}x): {'met' if ratio >= SPEED_TARGET else 'missed'}"
        )
        for metric in ("image_auroc", "pixel_auroc"):
            gap = our_metrics[metric] - plain_metrics[metric]
            verdict = "met" if abs(gap) <= AUROC_TOLERANCE else "missed"
            print(
                f"  {metric}: gluelab {our_metrics[metric]:.4f}, anomalib {plain_metrics[metric]:.4f}, "
                f"difference {gap:+.4f} (target within {AUROC_TOLERANCE}): {verdict}"
            )
        verdict = "met" if peak_gb <= MEMORY_TARGET_GB else "missed"
        print(f"  gluelab peak resident memory {peak_gb:.2f} GB (target at most {MEMORY_TARGET_GB:g} GB): {verdict}")
        if not args.skip_demo:
            demo_peaks(root / "demo", args.demo_images, args.epochs, args.steps)


if __name__ == "__main__":
    main()
