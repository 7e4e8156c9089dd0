"""`gluelab inspect`: a line's frames scored with a deployed model, each recorded in the store as it is scored.

A deployment (`gluelab deploy`) is found by its folder or its run id. Its file must hash as `deploy` wrote it, or it
is refused: a changed file is not the model that was checked. Frames are scored in the runtime at the operating point
stored with the deployment (the run's least-cost threshold on the line); a deployment from before operating points
were stored is scored at the run's F1-optimal threshold, and says so.

Each frame is read, checked, scored in batches (`BATCH`) and recorded with its mean grey level, clipped-pixel share
and sharpness (`engine.frame_statistics`), its score and verdict, and its share of its batch's time (read, pre-process,
score). A frame that cannot be scored (unreadable or cut short, 16-bit, of another size than the model takes) is
recorded as rejected with the reason and the line's record goes on. An alarm keeps its anomaly map and predicted
mask as PNGs under the store's artifact folder. A file the deployment has already recorded is never scored again, so
a watch restarted on a folder picks up where it stopped.

`watch` follows a folder with `watchdog` as the camera fills it: a new file is scored once its size has stopped
changing (a camera writing in place), or at once when it was renamed into place (`generate --stream`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from engine.evaluation.deploy import DESCRIPTION, files_sha256
from engine.frame_statistics import clipped_share, sharpness
from engine.models.export import MapScorer, images_to_input, open_runtime_with_maps
from store.deployments import run_thresholds
from store.line import DeploymentKey, deployment_rows, line_of, record_frames, run_map_range, scored_files
from store.runs import artifacts_dir

BATCH = 8  # frames scored together: a line's camera writes faster than one frame per model call on 2 cores
FRAME_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
SETTLE_SECONDS = 0.2  # a file written in place is read once its size has not changed for this long


@dataclass(frozen=True)
class Deployed:
    key: DeploymentKey
    path: Path  # the exported model file
    part: str
    threshold: float
    threshold_source: str  # how the threshold was chosen, in words
    line: dict  # `store.line.line_of`: the operating point's line and test-set rates ({} without one)
    image_size: tuple[int, int]  # (H, W) the graph takes
    resize_on_host: bool
    pixel_threshold: float | None
    map_range: tuple[float, float] | None  # the run's kept heatmaps' range, to scale an alarm's heatmap alike


def resolve_deployment(spec: str, store: Path | str, runtime: str | None = None) -> Deployed:
    """The deployment `spec` names: a folder `gluelab deploy` wrote (or its `weights/FORMAT` folder), or a run id.

    ValueError naming what is missing or changed: no such deployment, a runtime the format does not run in, a file
    whose hash differs from the one `deploy` recorded.
    """
    run_id, fmt = _run_and_format(spec)
    rows = deployment_rows(store, run_id)
    if fmt is not None:
        rows = rows[rows["format"] == fmt]
    if rows.empty:
        raise ValueError(
            f"no deployment of run {run_id!r} in {store}: deploy it first, e.g. "
            f"`gluelab deploy {run_id} --format onnx --out DIR --store {store}`"
        )
    if runtime is not None:
        rows = rows[rows["runtime"] == runtime]
        if rows.empty:
            raise ValueError(f"run {run_id!r} has no deployment in runtime {runtime!r} in {store}")
    row = rows.iloc[0]
    path = Path(row["path"])
    if not path.is_file():
        raise ValueError(f"the deployed file {path} of run {run_id!r} is no longer on disk; deploy it again")
    recorded = row["file_sha256"]
    if isinstance(recorded, str) and files_sha256(path.parent) != recorded:
        raise ValueError(
            f"the deployed files in {path.parent} changed since `gluelab deploy` wrote them (sha256 differs from the "
            f"store's): they are not the model that was checked. Deploy run {run_id} again"
        )
    description = json.loads((path.parent / DESCRIPTION).read_text())
    thresholds = run_thresholds(run_id, store)
    line = line_of(row)
    if row["line_threshold"] is not None and row["line_threshold"] == row["line_threshold"]:
        threshold = float(row["line_threshold"])
        source = (
            f"least expected cost at {100 * line['defect_rate']:g} % defective and a miss costing "
            f"{line['miss_cost']:g} line stops, letting at most {100 * line['max_escape_rate']:g} % of defects pass "
            "(stored with the deployment)"
        )
    else:
        threshold = float(thresholds["image_threshold"] or 0.0)
        source = "the run's F1-optimal threshold: no operating point was stored with this deployment (deploy it again)"
    return Deployed(
        key=DeploymentKey(run_id, str(row["format"]), str(row["runtime"])),
        path=path,
        part=str(row["part"]),
        threshold=threshold,
        threshold_source=source,
        line=line,
        image_size=(int(description["input"]["shape"][2]), int(description["input"]["shape"][3])),
        resize_on_host=bool(description["input"].get("resize_on_host", False)),
        pixel_threshold=thresholds["pixel_threshold"],
        map_range=run_map_range(store, run_id),
    )


def _run_and_format(spec: str) -> tuple[str, str | None]:
    folder = Path(spec)
    if not folder.exists():
        return spec, None
    descriptions = (
        [folder / DESCRIPTION] if (folder / DESCRIPTION).is_file() else sorted(folder.glob(f"weights/*/{DESCRIPTION}"))
    )
    if not descriptions:
        raise ValueError(f"{folder} holds no {DESCRIPTION}: name the folder `gluelab deploy --out` wrote, or a run id")
    description = json.loads(descriptions[0].read_text())
    return str(description["run_id"]), str(description["format"])


def frame_files(paths: Iterable[Path]) -> list[Path]:
    """Image files among `paths` and inside the folders among them, in name order; hidden files are being written."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if _is_frame(p))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no frame or folder at {path}")
    return [path.resolve() for path in found]


def _is_frame(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in FRAME_SUFFIXES


def read_frame(path: Path, deployed: Deployed) -> tuple[np.ndarray | None, str | None]:
    """The frame as 8-bit grayscale, or None with the reason it cannot be scored."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return None, "unreadable: not an image, or cut short"
    if raw.dtype != np.uint8:
        return None, f"{raw.dtype.itemsize * 8}-bit frame: the model was fitted on 8-bit images"
    gray = raw if raw.ndim == 2 else cv2.cvtColor(raw, cv2.COLOR_BGRA2GRAY if raw.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if gray.shape != deployed.image_size and not deployed.resize_on_host:
        height, width = deployed.image_size
        return None, f"wrong size {gray.shape[1]}x{gray.shape[0]}: the deployed model takes {width}x{height} frames"
    return gray, None


@dataclass
class Totals:
    """What an inspection did so far."""

    scored: int = 0
    alarms: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> frames
    seconds: float = 0.0  # spent reading, scoring and recording
    model_seconds: float = 0.0  # of which in the runtime, scoring

    @property
    def frames_per_second(self) -> float:
        return (self.scored + sum(self.rejected.values())) / self.seconds if self.seconds else 0.0


class Inspector:
    """Scores frames with one deployment and records them; `inspect` a batch of files at a time."""

    def __init__(self, deployed: Deployed, store: Path | str):
        self.deployed, self.store = deployed, store
        self.scorer: MapScorer = open_runtime_with_maps(deployed.path, deployed.key.runtime)
        self.done = scored_files(store, deployed.key)
        self.totals = Totals()
        self.artifacts = (
            artifacts_dir(store) / "line" / deployed.key.run_id / f"{deployed.key.format}-{deployed.key.runtime}"
        )

    def inspect(self, files: Iterable[Path], on_batch: Callable[[Totals], None] | None = None) -> Totals:
        """Score and record every file not yet recorded, `BATCH` at a time."""
        pending = [path for path in files if str(path) not in self.done]
        for start in range(0, len(pending), BATCH):
            self._batch(pending[start : start + BATCH])
            if on_batch is not None:
                on_batch(self.totals)
        return self.totals

    def _batch(self, paths: list[Path]) -> None:
        started = time.perf_counter()
        frames, images = [], []
        for path in paths:
            image, reason = read_frame(path, self.deployed)
            frames.append(_frame_row(path, image, reason))
            if image is not None:
                images.append(image)
        scored = [frame for frame in frames if frame["rejected"] is None]
        if images:
            size = self.deployed.image_size if self.deployed.resize_on_host else None
            batch = images_to_input(images, size)
            model_started = time.perf_counter()
            scores, maps = self.scorer(batch)
            self.totals.model_seconds += time.perf_counter() - model_started
            for index, (frame, score) in enumerate(zip(scored, scores, strict=True)):
                frame["score"], frame["threshold"] = float(score), self.deployed.threshold
                frame["alarm"] = bool(score >= self.deployed.threshold)
                if frame["alarm"] and maps is not None:
                    frame["heatmap_path"], frame["mask_path"] = self._keep(Path(frame["file"]), maps[index])
        elapsed = time.perf_counter() - started
        for frame in frames:
            frame["latency_ms"] = 1000 * elapsed / len(frames)
        record_frames(self.store, self.deployed.key, frames)
        self.done.update(frame["file"] for frame in frames)
        self.totals.scored += len(scored)
        self.totals.alarms += sum(bool(frame["alarm"]) for frame in scored)
        self.totals.rejected.update(frame["rejected"] for frame in frames if frame["rejected"] is not None)
        self.totals.seconds += time.perf_counter() - started

    def _keep(self, frame: Path, anomaly_map: np.ndarray) -> tuple[str, str]:
        """An alarm's heatmap (8-bit, scaled by the run's kept heatmaps' range) and predicted mask, relative to the
        store's artifact folder."""
        low, high = self.deployed.map_range or (float(anomaly_map.min()), float(anomaly_map.max()))
        heat = np.clip((anomaly_map - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
        pixel = self.deployed.pixel_threshold
        mask = (anomaly_map >= (pixel if pixel is not None else np.inf)).astype(np.uint8) * 255
        self.artifacts.mkdir(parents=True, exist_ok=True)
        names = []
        for suffix, picture in (("map", heat), ("mask", mask)):
            target = self.artifacts / f"{frame.stem}_{suffix}.png"
            cv2.imwrite(str(target), picture)
            names.append(str(target.relative_to(artifacts_dir(self.store))))
        return names[0], names[1]


def _frame_row(path: Path, image: np.ndarray | None, reason: str | None) -> dict:
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None) if path.exists() else None
    row: dict[str, object] = {
        "file": str(path),
        "written_at": written,
        "scored_at": datetime.now(UTC).replace(tzinfo=None),
        "rejected": reason,
    }
    if image is not None:
        row |= {
            "mean_brightness": float(image.mean()),
            "clipped_share": clipped_share(image),
            "sharpness": sharpness(image),
        }
    return row


def watch(
    inspector: Inspector,
    folder: Path,
    stop: threading.Event,
    idle_seconds: float | None = None,
    on_batch: Callable[[Totals], None] | None = None,
) -> Totals:
    """Score the frames already in `folder`, then each new one as it lands, until `stop` is set (or nothing new
    has landed for `idle_seconds`)."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    landed: list[Path] = []
    lock = threading.Lock()

    class Landing(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type not in ("created", "moved", "closed"):
                return
            target = Path(str(event.dest_path if event.event_type == "moved" else event.src_path))
            if _is_frame(target):
                with lock:
                    landed.append(target.resolve())

    observer = Observer()
    observer.schedule(Landing(), str(folder), recursive=False)
    observer.start()
    last = time.monotonic()
    try:
        inspector.inspect(frame_files([folder]), on_batch)  # what the camera wrote before the watch began
        while not stop.is_set():
            with lock:
                ready = [path for path in dict.fromkeys(landed) if _settled(path)]
                landed[:] = [path for path in landed if path not in ready]
            if ready:
                inspector.inspect(sorted(ready), on_batch)
                last = time.monotonic()
            elif idle_seconds is not None and time.monotonic() - last > idle_seconds:
                break
            stop.wait(SETTLE_SECONDS / 2)
    finally:
        observer.stop()
        observer.join()
    return inspector.totals


def _settled(path: Path) -> bool:
    """Whether `path` is complete: its size has not changed for `SETTLE_SECONDS`."""
    try:
        before = path.stat()
    except FileNotFoundError:
        return False
    if time.time() - before.st_mtime >= SETTLE_SECONDS:
        return True
    time.sleep(SETTLE_SECONDS)
    try:
        return path.stat().st_size == before.st_size
    except FileNotFoundError:
        return False
