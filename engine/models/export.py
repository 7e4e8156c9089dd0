"""A fitted anomalib model as a deployable file: anomalib's own ONNX and OpenVINO exporters, with the run's
pre-processing and thresholds inside the graph, and the runtimes that execute the files.

anomalib exports the whole `AnomalibModule` (pre-processor, torch model, post-processor) with
`to_onnx` / `to_openvino` (torch's dynamo ONNX exporter, then OpenVINO's converter). Two things are set
before it does, so the file scores as the run's eager model scores:

- **Pre-processing.** anomalib exports a copy of the pre-processor's transform with antialiasing switched off
  (ONNX's Resize had none before opset 18, and OpenVINO still ignores it: measured here, a 480 x 640 -> 256 x
  256 resize differed by up to 0.48 in [0, 1] pixel units). Our runs resize with antialiasing, and without it
  a PaDiM score moved by 75 on a scale of 500. Each `Resize` is exported instead as `BandResize`: the same
  antialiased bilinear weights, read off torch's own resize of an identity matrix, applied as a gather and a
  weighted sum along each axis. The graph therefore takes the part's images at their stored size.
- **Thresholds.** `RunThresholds` replaces anomalib's post-processor (off in our runs: its min-max
  normalisation clamps scores). It passes the raw score and map through unchanged and adds the run's
  decisions: `pred_label = pred_score >= image threshold` (the run's F1-optimal threshold, the rule its
  per-image decisions in the store follow) and `pred_mask = anomaly_map >= pixel threshold`.

The exported input is `input`: float32 RGB in [0, 1], shape (batch, 3, H, W) at the part's image size, as
anomalib reads an image file; the outputs are `pred_score`, `pred_label`, `anomaly_map` and `pred_mask`
(the last two for models with maps).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import numpy as np
import torch
import torch.fx.config
from anomalib.data import InferenceBatch
from anomalib.models.components import AnomalibModule
from torch import nn
from torchvision.transforms.v2 import Compose, Normalize, Resize, Transform
from torchvision.transforms.v2.functional import resize

from store.deployments import FORMATS, RUNTIME_NAMES

OPSET = (
    18  # the exporter's own opset for these graphs; asking for 14 (anomalib's default) only adds a failing conversion
)
INPUT = "input"


class ExportError(ValueError):
    """A model that cannot be exported, or whose exported file does not score as its eager model does."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def band_weights(source: int, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, weights), each (target, taps): output position i is sum_k weights[i, k] * input[indices[i, k]].

    The weights are those of torch's antialiased bilinear resize from `source` to `target` positions, read
    off its resize of an identity matrix (resizing along one axis only; the other keeps its size, which is
    the identity). Rows shorter than the widest are padded with weight 0.
    """
    dense = resize(torch.eye(source)[None], [target, source], antialias=True)[0].double()  # (target, source)
    taps = int((dense != 0).sum(dim=1).max())
    weights = torch.zeros(target, taps, dtype=torch.float64)
    indices = torch.zeros(target, taps, dtype=torch.int64)
    for row in range(target):
        nonzero = torch.nonzero(dense[row]).reshape(-1)
        indices[row, : len(nonzero)] = nonzero
        weights[row, : len(nonzero)] = dense[row, nonzero]
    return indices, weights.float()


class BandResize(nn.Module):
    """An antialiased bilinear resize from a fixed input size, in ops every ONNX runtime implements alike."""

    rows: torch.Tensor
    row_weights: torch.Tensor
    columns: torch.Tensor
    column_weights: torch.Tensor

    def __init__(self, source: tuple[int, int], target: tuple[int, int]):
        super().__init__()
        rows, row_weights = band_weights(source[0], target[0])
        columns, column_weights = band_weights(source[1], target[1])
        self.register_buffer("rows", rows)
        self.register_buffer("row_weights", row_weights)
        self.register_buffer("columns", columns)
        self.register_buffer("column_weights", column_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        taller = images[..., self.rows.reshape(-1), :]  # (B, C, target_h * taps, W)
        taller = taller.reshape(*images.shape[:-2], *self.rows.shape, images.shape[-1])
        rows = (taller * self.row_weights[..., None]).sum(dim=-2)  # (B, C, target_h, W)
        wider = rows[..., self.columns.reshape(-1)].reshape(*rows.shape[:-1], *self.columns.shape)
        return (wider * self.column_weights).sum(dim=-1)  # (B, C, target_h, target_w)


def exportable_transform(transform: Transform | None, image_size: tuple[int, int]) -> nn.Module:
    """The run's pre-processing for images of `image_size` (H, W), in a form that exports unchanged.

    Resizes become `BandResize`, normalisations stay; any other transform is refused, naming it.
    """
    steps = [] if transform is None else list(transform.transforms) if isinstance(transform, Compose) else [transform]
    modules: list[nn.Module] = []
    size = image_size
    for step in steps:
        if isinstance(step, Resize):
            target = tuple(step.size) if len(step.size) == 2 else None
            if (
                target is None
                or step.max_size is not None
                or str(getattr(step.interpolation, "value", step.interpolation)) != "bilinear"
            ):
                raise ExportError(
                    f"the pre-processing's {step!r} has no exportable form here (bilinear to a fixed size)"
                )
            if not step.antialias:
                raise ExportError(f"the pre-processing's {step!r} resizes without antialiasing; gluelab's runs use it")
            modules.append(BandResize(size, target))
            size = target
        elif isinstance(step, Normalize):
            modules.append(copy.deepcopy(step))
        else:
            raise ExportError(f"the pre-processing step {type(step).__name__} has no exportable form here")
    return nn.Sequential(*modules)


class RunThresholds(nn.Module):
    """Raw scores and maps unchanged, plus the run's decisions at its image and pixel thresholds (raw units)."""

    image_threshold: torch.Tensor
    pixel_threshold: torch.Tensor

    def __init__(self, image_threshold: float, pixel_threshold: float):
        super().__init__()
        self.register_buffer("image_threshold", torch.tensor(image_threshold, dtype=torch.float32))
        self.register_buffer("pixel_threshold", torch.tensor(pixel_threshold, dtype=torch.float32))

    def forward(self, predictions: InferenceBatch) -> InferenceBatch:
        anomaly_map = predictions.anomaly_map
        return InferenceBatch(
            pred_score=predictions.pred_score,
            pred_label=predictions.pred_score >= self.image_threshold,
            anomaly_map=anomaly_map,
            pred_mask=None if anomaly_map is None else anomaly_map >= self.pixel_threshold,
        )


def export_module(
    module: AnomalibModule,
    fmt: str,
    folder: Path,
    image_size: tuple[int, int],
    image_threshold: float,
    pixel_threshold: float,
) -> Path:
    """Export fitted `module` with anomalib's exporter to `folder/weights/<fmt>/model.{onnx,xml}`.

    The exported graph takes images of `image_size` and applies the module's own pre-processing and
    `RunThresholds`. Raises ExportError with the exporter's reason when the model does not export.
    """
    check_format(fmt)
    pre = module.pre_processor
    original = (pre.export_transform, module.post_processor)
    pre.export_transform = exportable_transform(pre.transform, image_size)
    module.post_processor = RunThresholds(image_threshold, pixel_threshold)
    try:
        with without_node_stack_traces():
            if fmt == "onnx":
                return module.to_onnx(folder, input_size=image_size, opset_version=OPSET)
            return module.to_openvino(folder, input_size=image_size, onnx_kwargs={"opset_version": OPSET})
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001 - torch's exporter and OpenVINO's converter fail in many ways
        raise ExportError(first_line(error)) from error
    finally:
        pre.export_transform, module.post_processor = original
        module.eval()


@contextlib.contextmanager
def without_node_stack_traces() -> Iterator[None]:
    """torch's tracing without a Python stack trace captured and symbolised for every graph node it creates
    (`torch.fx.config.do_not_emit_stack_traces`): about a third of an export's time (PaDiM: 12 of 34 s on one
    core), spent on debugging information the exported file does not keep. An export error still names its cause
    (`first_line`); only the traced graph's nodes lack the source lines they came from."""
    before = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = before


def first_line(error: BaseException, limit: int = 240) -> str:
    """`Type: message` of the error's root cause, on one line and cut at `limit` characters: exporters wrap the
    reason in pages of generic advice, and runtimes spread one reason over several lines."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text if len(text) <= limit else text[: limit - 1] + '…'}"


def images_to_input(images: list[np.ndarray], size: tuple[int, int] | None = None) -> np.ndarray:
    """8-bit grayscale images (H, W) -> the exported graph's input (B, 3, H, W), as `anomalib_detector.to_tensor`.

    With `size` (H, W), each image of another size is first resized to it by torch's antialiased bilinear resize,
    the one the run's pre-processing applies: a graph exported for a part whose images differ in size takes its
    input at the model's input size (`input_size`), where its own resize is the identity.
    """
    gray = [image.astype(np.float32) / np.float32(255) for image in images]
    if size is not None:
        gray = [
            image
            if image.shape == size
            else resize(torch.from_numpy(image)[None], list(size), antialias=True)[0].numpy()
            for image in gray
        ]
    stacked = np.stack(gray)
    return np.ascontiguousarray(np.broadcast_to(stacked[:, None], (len(images), 3, *stacked.shape[1:])))


def input_size(images: list[np.ndarray], model_input: tuple[int, int]) -> tuple[tuple[int, int], bool]:
    """The (H, W) an exported graph takes for a part whose images are `images`, and whether frames are resized to
    it before the graph: the images' own size when they share one, else the model's input size `model_input`."""
    sizes = {image.shape[:2] for image in images}
    if len(sizes) == 1:
        return sizes.pop(), False
    return model_input, True


Scorer = Callable[[np.ndarray], np.ndarray]  # (B, 3, H, W) float32 in [0, 1] -> (B,) image scores


MapScorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]  # ... -> (scores, anomaly maps or None)


def open_runtime(path: Path, runtime: str) -> Scorer:
    """A function scoring a batch with exported file `path` in `runtime` (`RUNTIME_NAMES`), on the CPU."""
    scorer = open_runtime_with_maps(path, runtime)
    return lambda images: scorer(images)[0]


def open_runtime_with_maps(path: Path, runtime: str) -> MapScorer:
    """A function giving a batch's image scores and, for a graph that has them, its anomaly maps (B, H, W), with
    exported file `path` in `runtime`, on the CPU. The runtime runs the whole graph either way.

    OpenVINO computes in float32 (its CPU plugin would otherwise choose bf16 on processors that have it).
    """
    if runtime == "onnxruntime":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [name for name in ("pred_score", "anomaly_map") if name in {o.name for o in session.get_outputs()}]

        def onnx_scores(images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            found = session.run(names, {INPUT: images})
            return found[0].reshape(-1), _maps(found[1]) if len(found) > 1 else None

        return onnx_scores
    if runtime == "openvino":
        import openvino

        compiled = openvino.Core().compile_model(
            str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        )
        request = compiled.create_infer_request()
        score = compiled.output("pred_score")
        has_maps = any("anomaly_map" in output.get_names() for output in compiled.outputs)
        anomaly_map = compiled.output("anomaly_map") if has_maps else None

        def openvino_scores(images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            found = request.infer({INPUT: images})
            return found[score].reshape(-1), None if anomaly_map is None else _maps(found[anomaly_map])

        return openvino_scores
    raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIME_NAMES)}")


def _maps(found: np.ndarray) -> np.ndarray:
    """Anomaly maps as (B, H, W), whatever channel axis the graph keeps."""
    return found.reshape(found.shape[0], *found.shape[-2:])


def runtime_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("onnx", "onnxscript", "onnxruntime", "openvino")}


@dataclass(frozen=True)
class Timing:
    latency_ms: float  # median batch-1 latency after warm-up
    throughput_fps: float  # images per second at `batch_size`


def time_scorer(
    score: Callable[[list[np.ndarray]], object], images: list[np.ndarray], warmup: int, timed: int, batch: int
) -> tuple[Timing, np.ndarray]:
    """Median batch-1 latency over the first `timed` images after `warmup` of them, and throughput at `batch`
    over the first 2 x `batch` images; `score` takes a list of 8-bit grayscale images, conversion included.

    Returns the timing and the scores of the throughput passes, those of `images[:2 * batch]`: a caller checking
    the scores of every image needs to score only the images after them."""
    for image in images[:warmup]:
        score([image])
    times = []
    for image in images[:timed]:
        start = time.perf_counter()
        score([image])
        times.append(time.perf_counter() - start)
    window = images[: 2 * batch]
    scores = []
    start = time.perf_counter()
    for first in range(0, len(window), batch):
        scores.append(score(window[first : first + batch]))
    seconds = time.perf_counter() - start
    return Timing(1000 * median(times), len(window) / seconds), np.concatenate(
        [np.asarray(s).reshape(-1) for s in scores]
    )
