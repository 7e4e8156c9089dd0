"""Print each frozen-feature model's batch-1 latency against the forward pass of its truncated backbone.

Target: PaDiM, PatchCore, DFM and DFKDE at both presets score one image at batch 1 (after warm-up) in at most
1.3x the time the same backbone, cut after the deepest layer the model reads, takes for one forward pass.

Generates part1 with the synthetic plant, fits each model on its training images exactly as an evaluation does
(`engine.evaluation.evaluate.build_job_model`, seed 0), then, in the same process and one after the other, times:
- the model's batch-1 latency as the evaluation records it (`time_inference`: a raw 480 x 640 frame in, score and
  anomaly map out, its resize and normalisation included);
- the truncated backbone: the full timm network of the model's backbone, cut by torch.fx after the deepest layer
  the model reads (timm's `create_feature_extractor`, independent of gluelab's own cut), on an already resized
  and normalised 256 x 256 input.
The two are timed in alternation, image by image (3 warm-up rounds, then the median of 3 x 20), so a change in
the machine's speed during the run affects both alike. The ratio is the first over the second. Run it on a
quiet machine (docs/engine.md).

.venv/bin/python -m benchmarks.inference_overhead [--images 200] [--models ...] [--presets cpu paper]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

import torch
from timm.models import create_feature_extractor

from engine.cli import main as gluelab
from engine.evaluation.evaluate import LATENCY_IMAGES, LATENCY_WARMUP, build_job_model, time_inference
from engine.ingest.part_data import load_part
from engine.jobs import Job
from engine.models.anomalib_detector import AnomalibDetector
from engine.models.backbones import create_backbone

MODELS = ["padim", "patchcore", "dfm", "dfkde"]
PRESETS = ["cpu", "paper"]
BACKBONE = "tf_efficientnet_lite0"
TARGET = 1.3  # batch-1 latency at most this many times the truncated backbone's forward pass


ROUNDS = 3


def truncated_backbone(detector: AnomalibDetector, backbone: str) -> tuple[str, torch.nn.Module]:
    """The deepest layer the model reads, and the backbone's full timm network cut by torch.fx after it."""
    extractor = detector.module.model.feature_extractor
    deepest = str((getattr(extractor, "layers", None) or [extractor.layer])[-1])
    return deepest, create_feature_extractor(create_backbone(backbone).eval(), return_nodes=[deepest])


def latencies_ms(detector: AnomalibDetector, network: torch.nn.Module, frames: list) -> tuple[float, float]:
    """Median batch-1 ms of the model on raw frames and of `network` on their pre-processed inputs, alternating."""
    inputs = [detector.from_gray(frame)[None] for frame in frames]
    model, backbone = [], []
    with torch.inference_mode():
        for frame, image in zip(frames[:LATENCY_WARMUP], inputs, strict=False):
            detector.predict([frame], batch_size=1)
            network(image)
        for _ in range(ROUNDS):
            for frame, image in zip(frames, inputs, strict=True):
                start = time.perf_counter()
                detector.predict([frame], batch_size=1)
                middle = time.perf_counter()
                network(image)
                model.append(middle - start)
                backbone.append(time.perf_counter() - middle)
    return 1000 * median(model), 1000 * median(backbone)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images of the generated part (default 200)")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "gluelab.duckdb"
        generate = ["generate", "--parts", "part1", "--images", str(args.images), "--out", str(Path(scratch) / "data")]
        if gluelab([*generate, "--store", str(store)]) != 0:
            raise SystemExit("generating the part failed")
        data = load_part("part1", store)
        print(
            f"part1, {args.images} images ({len(data.train)} training), {torch.get_num_threads()} torch threads; "
            f"batch-1 latency in ms, median of {ROUNDS} x {LATENCY_IMAGES} alternating with the truncated backbone"
        )
        header = f"{'model':<11}{'preset':<8}{'deepest layer':<15}{'backbone':>9}{'model':>9}{'ratio':>8}  target"
        print(f"{header}   (model as the evaluation times it, alone)")
        for model in args.models:
            for preset in args.presets:
                detector, augment = build_job_model(Job("part1", model, BACKBONE, preset, 0, "baseline"))
                assert isinstance(detector, AnomalibDetector)
                detector.fit(data.train, augment)
                layer, network = truncated_backbone(detector, BACKBONE)
                ms, forward = latencies_ms(detector, network, data.test[:LATENCY_IMAGES])
                timing, _ = time_inference(detector, data.test)
                ratio = ms / forward
                met = "met" if ratio <= TARGET else f"missed (> {TARGET}x)"
                contended = f", timed under load: {timing.load['reason']}" if timing.load.get("contended") else ""
                print(
                    f"{model:<11}{preset:<8}{layer:<15}{forward:>9.2f}{ms:>9.2f}{ratio:>7.2f}x  {met:<17}"
                    f"({timing.inference_ms:.2f} ms{contended})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
