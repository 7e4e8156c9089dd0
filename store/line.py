"""The line: frames `gluelab inspect` scored with a deployment, and what a watch of them reads.

A deployment is a run's exported file in one runtime (`store.deployments`). Each frame it scored is one row of
`line_frames`, written in batches in one transaction each; a frame a deployment already scored is never recorded
(or scored) again, so a watch restarted on the same folder picks up where it stopped. A re-evaluation requested from
the Line monitor scores those frames again with other runs (`line_rescores`), once per run and frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from store.connection import DEFAULT_STORE, read_store, write_store

FRAME_COLUMNS = (
    "file",
    "written_at",
    "scored_at",
    "score",
    "threshold",
    "alarm",
    "mean_brightness",
    "clipped_share",
    "sharpness",
    "latency_ms",
    "rejected",
    "heatmap_path",
    "mask_path",
)


@dataclass(frozen=True)
class DeploymentKey:
    run_id: str
    format: str
    runtime: str

    @property
    def label(self) -> str:
        return f"{self.run_id} ({self.format} in {self.runtime})"


def deployment_rows(store: Path | str, run_id: str) -> pd.DataFrame:
    """Every deployment of `run_id` with its file, hash, operating point and the run's part and model."""
    with read_store(store) as con:
        return con.execute(
            """SELECT d.run_id, d.format, d.runtime, d.path, d.file_sha256, d.line_threshold, d.line,
                      r.part, r.model, r.condition, r.seed
               FROM deployments d JOIN runs r USING (run_id) WHERE d.run_id = ?
               ORDER BY d.format, d.runtime""",
            [run_id],
        ).df()


def watched_deployments(store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """Deployments that scored at least one frame, with how many and when the last one was scored."""
    with read_store(store) as con:
        return con.execute(
            """SELECT f.run_id, f.format, f.runtime, r.part, r.model, r.backbone, r.preset, r.seed,
                      count(*) AS frames, max(f.scored_at) AS last_scored
               FROM line_frames f JOIN runs r USING (run_id)
               GROUP BY ALL ORDER BY last_scored DESC""",
        ).df()


def scored_files(store: Path | str, key: DeploymentKey) -> set[str]:
    """The frame files `key` has scored or rejected."""
    if not Path(store).exists():
        return set()
    with read_store(store) as con:
        rows = con.execute(
            "SELECT file FROM line_frames WHERE run_id = ? AND format = ? AND runtime = ?",
            [key.run_id, key.format, key.runtime],
        ).fetchall()
    return {row[0] for row in rows}


def record_frames(store: Path | str, key: DeploymentKey, frames: Sequence[dict]) -> int:
    """Store `frames` (dicts of FRAME_COLUMNS) scored by `key` in one transaction; a file already recorded for the
    deployment is kept as it was. Returns how many were new."""
    if not frames:
        return 0
    rows = [[key.run_id, key.format, key.runtime, *(frame.get(column) for column in FRAME_COLUMNS)] for frame in frames]
    columns = ", ".join(("run_id", "format", "runtime", *FRAME_COLUMNS))
    marks = ", ".join("?" * (3 + len(FRAME_COLUMNS)))
    count = "SELECT count(*) FROM line_frames"
    with write_store(store) as con:
        before = con.execute(count).fetchone()
        con.executemany(f"INSERT INTO line_frames ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows)
        after = con.execute(count).fetchone()
    return int(after[0] if after else 0) - int(before[0] if before else 0)


def line_frames(store: Path | str, key: DeploymentKey) -> pd.DataFrame:
    """Every frame `key` scored or rejected, in the order they were scored."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT frame_id, {", ".join(FRAME_COLUMNS)} FROM line_frames
                WHERE run_id = ? AND format = ? AND runtime = ? ORDER BY frame_id""",
            [key.run_id, key.format, key.runtime],
        ).df()


def line_of(row: pd.Series | dict) -> dict:
    """A deployment row's `line` JSON as a dict ({} for a deployment from before operating points were stored)."""
    value = row["line"]
    return json.loads(value) if isinstance(value, str) and value else {}


def run_map_range(store: Path | str, run_id: str) -> tuple[float, float] | None:
    """The lowest and highest value of the run's kept heatmaps (None without any): an alarm's heatmap on the line is
    scaled by it, so it reads like the run's own."""
    with read_store(store) as con:
        row = con.execute("SELECT min(map_min), max(map_max) FROM artifacts WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None or row[0] is None else (float(row[0]), float(row[1]))


def run_acceptable_scores(store: Path | str, run_id: str) -> list[float]:
    """The run's scores of the part's acceptable test images: what the model scored the line's good parts when it was
    chosen."""
    with read_store(store) as con:
        rows = con.execute(
            "SELECT score FROM image_scores WHERE run_id = ? AND label = 'normal' ORDER BY image_path", [run_id]
        ).fetchall()
    return [float(row[0]) for row in rows]


def scored_frames_up_to(store: Path | str, key: DeploymentKey, up_to: int) -> int:
    """How many frames `key` scored (not rejected) up to and including frame `up_to`."""
    with read_store(store) as con:
        row = con.execute(
            """SELECT count(*) FROM line_frames WHERE run_id = ? AND format = ? AND runtime = ? AND frame_id <= ?
               AND rejected IS NULL""",
            [key.run_id, key.format, key.runtime, up_to],
        ).fetchone()
    return int(row[0]) if row else 0


def frames_to_rescore(store: Path | str, key: DeploymentKey, up_to: int, run_id: str) -> pd.DataFrame:
    """`frame_id` and `file` of the frames `key` scored up to frame `up_to` that `run_id` has not scored again yet."""
    with read_store(store) as con:
        return con.execute(
            """SELECT f.frame_id, f.file FROM line_frames f
               WHERE f.run_id = ? AND f.format = ? AND f.runtime = ? AND f.frame_id <= ? AND f.rejected IS NULL
                 AND NOT EXISTS (SELECT 1 FROM line_rescores s WHERE s.run_id = ? AND s.frame_id = f.frame_id)
               ORDER BY f.frame_id""",
            [key.run_id, key.format, key.runtime, up_to, run_id],
        ).df()


def record_rescores(
    store: Path | str, run_id: str, request_id: int | None, frame_ids: Sequence[int], scores: Iterable[float]
) -> None:
    """Store `run_id`'s scores of the line's frames `frame_ids` in one transaction (a frame it scored before is kept)."""
    rows = [[run_id, int(frame), request_id, float(score)] for frame, score in zip(frame_ids, scores, strict=True)]
    if rows:
        with write_store(store) as con:
            con.executemany(
                """INSERT INTO line_rescores (run_id, frame_id, request_id, score, scored_at)
                   VALUES (?, ?, ?, ?, now()) ON CONFLICT DO NOTHING""",
                rows,
            )


def line_rescores(store: Path | str, key: DeploymentKey) -> pd.DataFrame:
    """Every other run's score of a frame `key` scored, beside the deployment's own: `run_id` (the other run), its
    `model`, `condition` and `seed`, `request_id`, `frame_id`, `written_at`, `score`, and the deployment's
    `deployed_score` and `deployed_alarm`."""
    with read_store(store) as con:
        return con.execute(
            """SELECT s.run_id, r.model, r.condition, r.seed, s.request_id, s.frame_id, f.written_at, s.score,
                      f.score AS deployed_score, f.alarm AS deployed_alarm
               FROM line_rescores s JOIN line_frames f USING (frame_id) JOIN runs r ON r.run_id = s.run_id
               WHERE f.run_id = ? AND f.format = ? AND f.runtime = ?
               ORDER BY s.run_id, s.frame_id""",
            [key.run_id, key.format, key.runtime],
        ).df()


def image_aurocs(store: Path | str, run_ids: Sequence[str]) -> dict[str, float]:
    """Image AUROC of each of `run_ids` that has one."""
    with read_store(store) as con:
        rows = con.execute(
            "SELECT run_id, value FROM metrics WHERE metric = 'image_auroc' AND list_contains(?, run_id)",
            [list(run_ids)],
        ).fetchall()
    return {str(run_id): float(value) for run_id, value in rows if value is not None}
