"""Deployments: a finished run's model exported to a file and timed in a runtime, beside the run's eager figures.

`gluelab deploy` writes one row per (run, format, runtime) in one transaction, replacing that run's earlier
rows of the format, and only after the exported file has scored the part's test images as the eager model
did; a deployment that fails writes nothing. A forced re-run of the job drops its deployments with the
rest of the old run (`store.runs`), since its fitted model is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from store.connection import DEFAULT_STORE, read_store, write_store
from store.runs import HARDWARE_EXPRESSIONS, RUN_KEY

# The formats `gluelab deploy` exports, and the runtimes each format's file is timed in: OpenVINO reads ONNX
# files too, ONNX Runtime no OpenVINO IR.
FORMATS = ("onnx", "openvino")
RUNTIMES = {"onnx": ("onnxruntime", "openvino"), "openvino": ("openvino",)}
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}  # for people


@dataclass(frozen=True)
class Deployment:
    """One exported file timed in one runtime."""

    runtime: str  # onnxruntime | openvino
    latency_ms: float
    throughput_fps: float
    eager_latency_ms: float
    max_score_difference: float
    path: str


def finished_run(run_id: str, store: Path | str = DEFAULT_STORE) -> dict:
    """The run row of `run_id` as a dict; ValueError naming the run when it is unknown or not finished."""
    if not Path(store).exists():
        raise FileNotFoundError(f"no results store at {store}")
    with read_store(store) as con:
        found = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
    if found.empty:
        raise ValueError(
            f"no run {run_id!r} in {store}; the dashboard's Runtime page and `gluelab export runs --out runs.csv` list run ids"
        )
    run = found.iloc[0].to_dict()
    if run["status"] != "finished":
        reason = f": {run['error']}" if isinstance(run.get("error"), str) else ""
        raise ValueError(f"run {run_id!r} ({run['model']} on {run['part']}) is {run['status']}, not finished{reason}")
    return run


def run_thresholds(run_id: str, store: Path | str = DEFAULT_STORE) -> dict[str, float | None]:
    """The run's image and pixel thresholds in raw score units (None where the run has none)."""
    with read_store(store) as con:
        rows = con.execute(
            "SELECT metric, value FROM metrics WHERE run_id = ? AND metric IN ('image_threshold', 'pixel_threshold')",
            [run_id],
        ).fetchall()
    found = {metric: (None if value is None or value != value else float(value)) for metric, value in rows}
    return {name: found.get(name) for name in ("image_threshold", "pixel_threshold")}


@dataclass(frozen=True)
class LinePoint:
    """Where a deployment scores the line: a frame scoring at least `threshold` raises an alarm. `line` says how it
    was chosen (`policy`, the line's defect rate, miss cost and maximum escape rate) and the run's test-set rates
    there (`false_positive_rate`, `false_negative_rate`), from which a watch expects its alarm rate."""

    threshold: float
    line: dict


def record_deployments(
    run_id: str,
    fmt: str,
    deployments: list[Deployment],
    environment: dict,
    store: Path | str = DEFAULT_STORE,
    file_sha256: str | None = None,
    point: LinePoint | None = None,
) -> None:
    """Store the run's deployments of `fmt` in one transaction, replacing its earlier ones of that format, with the
    exported file's hash and the operating point it scores the line at.

    Refuses (ValueError, nothing written) when the run is no longer a finished run: a forced re-run may have
    replaced it while the model was exported.
    """
    with write_store(store) as con:
        row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None or row[0] != "finished":
            raise ValueError(f"run {run_id!r} is no longer a finished run in {store}; nothing was recorded")
        con.execute("DELETE FROM deployments WHERE run_id = ? AND format = ?", [run_id, fmt])
        for deployment in deployments:
            con.execute(
                "INSERT INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?, ?)",
                [
                    run_id,
                    fmt,
                    deployment.runtime,
                    deployment.latency_ms,
                    deployment.throughput_fps,
                    deployment.eager_latency_ms,
                    deployment.max_score_difference,
                    json.dumps(environment, sort_keys=True),
                    deployment.path,
                    file_sha256,
                    None if point is None else point.threshold,
                    None if point is None else json.dumps(point.line, sort_keys=True),
                ],
            )


def deployments(store: Path | str = DEFAULT_STORE, part: str | None = None) -> pd.DataFrame:
    """Every deployment of finished runs (of `part`), with the run key, its eager latency and the machine the
    deployment was timed on (processor, gpu, cpu_count, as `leaderboard(by_hardware=True)` tells machines apart)."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT d.run_id, {", ".join("r." + key for key in RUN_KEY)}, d.format, d.runtime, d.latency_ms,
                       d.throughput_fps, d.eager_latency_ms, r.inference_ms AS run_inference_ms,
                       d.max_score_difference, d.exported_at, d.path, {HARDWARE_EXPRESSIONS}
                FROM deployments d
                JOIN (SELECT run_id, {", ".join(RUN_KEY)}, inference_ms FROM runs WHERE status = 'finished') r
                    USING (run_id)
                WHERE ? IS NULL OR r.part = ?
                ORDER BY r.part, r.condition, r.model, r.backbone, r.preset, r.seed, d.runtime, d.format""",
            [part, part],
        ).df()
