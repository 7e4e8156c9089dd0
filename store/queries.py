"""Read-only queries behind the dashboard: one function per view, each a single short read.

Every function takes the store path first and returns a pandas DataFrame (empty when there is
nothing to show); none of them writes. `store_stamp` changes whenever anything is written, so
callers can cache the others on (store, stamp).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from store.connection import read_store
from store.runs import COMPARED, HARDWARE_EXPRESSIONS


def store_stamp(store: Path | str) -> str | None:
    """When the store was last written (None: there is no store file yet)."""
    if not Path(store).exists():
        return None
    with read_store(store) as con:
        row = con.execute("SELECT value FROM store_meta WHERE key = 'last_write'").fetchone()
    return row[0] if row else ""


def result_parts(store: Path | str) -> list[str]:
    """Every part with images, runs or published figures."""
    with read_store(store) as con:
        rows = con.execute(
            "SELECT part FROM datasets UNION SELECT part FROM runs UNION SELECT part FROM published_results"
        ).fetchall()
    return [row[0] for row in rows]


def run_status_counts(store: Path | str) -> pd.DataFrame:
    """How many runs are running, finished, failed or cancelled, per part."""
    with read_store(store) as con:
        return con.execute("SELECT part, status, count(*) AS runs FROM runs GROUP BY ALL ORDER BY part, status").df()


# The limits a run's training stopped at, from the preset settings in its config: the epoch cap and the
# wall-clock budget in minutes (NULL where the preset sets none).
TRAINING_LIMITS = """TRY_CAST(json_extract_string(config, '$.settings.epochs') AS INTEGER) AS epoch_cap,
                      TRY_CAST(json_extract_string(config, '$.settings.budget_minutes') AS DOUBLE) AS budget_minutes"""


def recent_runs(store: Path | str, limit: int = 200) -> pd.DataFrame:
    """The latest runs of any status, with their error if they failed, the size (width x height) their model read
    images at, and how they trained and whether they were timed under load if they finished."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT run_id, part, model, backbone, preset,
                      json_extract_string(config, '$.input_size[1]') || 'x' || json_extract_string(config, '$.input_size[0]')
                          AS input_size,
                      seed, condition, coalesce(CAST(train_size AS VARCHAR), 'all') AS train_size, status, error,
                      started_at, finished_at,
                      epochs, stop_reason, under_trained, timing_contended, {TRAINING_LIMITS}
               FROM (SELECT * FROM runs ORDER BY started_at DESC LIMIT ?)  -- configs are read for these rows only
               ORDER BY started_at DESC""",
            [limit],
        ).df()


def runtime_table(store: Path | str, part: str) -> pd.DataFrame:
    """Training time, batch-1 latency, throughput (and the batch it was timed at; NULL for runs from before it was
    recorded) and peak memory of `part`'s finished runs, with their device, hardware and whether they were timed under
    load (NULL: the run recorded no load)."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT run_id, part, condition, model, backbone, preset, seed, device, train_seconds, inference_ms,
                      throughput_fps, CAST(hardware[5] AS INTEGER) AS throughput_batch, peak_memory_mb, n_train, n_test,
                      timing_contended, timing_note, retimed_at, hardware[1] AS processor,
                      CAST(hardware[2] AS INTEGER) AS cpu_count, CAST(hardware[3] AS INTEGER) AS torch_threads,
                      hardware[4] AS gpu
               FROM (
                   SELECT *, json_extract_string(  -- a list of paths: each environment is parsed once, not five times
                       environment,
                       ['$.hardware.processor', '$.hardware.cpu_count', '$.hardware.torch_threads', '$.hardware.gpu',
                        '$.timing.throughput_batch']
                   ) AS hardware
                   FROM runs WHERE {COMPARED} AND part = ?
               )""",
            [part],
        ).df()


def run_deviations(store: Path | str, part: str) -> pd.DataFrame:
    """How each model/backbone/preset of `part`'s finished runs departs from the study's setup (one row each)."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT model, backbone, preset,
                      any_value(CAST(json_extract(config, '$.deviations') AS VARCHAR[])) AS deviations
               FROM runs WHERE part = ? AND {COMPARED} GROUP BY ALL ORDER BY model, backbone, preset""",
            [part],
        ).df()


def operating_points(store: Path | str, parts: list[str]) -> pd.DataFrame:
    """Per finished run of `parts`: alarm counts at its F1-optimal threshold and at zero escapes.

    At zero escapes the threshold is the lowest anomalous score, so every defective image is flagged
    and the false alarms are the good images scoring at least that high.
    """
    with read_store(store) as con:
        return con.execute(
            f"""
            WITH chosen AS (SELECT * FROM runs WHERE {COMPARED} AND list_contains(?, part)),
            lowest_anomalous AS (
                SELECT run_id, min(score) AS zero_escape_threshold FROM image_scores
                WHERE label = 'anomalous' AND run_id IN (SELECT run_id FROM chosen) GROUP BY run_id
            )
            SELECT c.run_id, c.part, c.condition, c.model, c.backbone, c.preset, c.seed,
                   count(*) FILTER (s.label = 'normal') AS n_good,
                   count(*) FILTER (s.label = 'anomalous') AS n_defective,
                   count(*) FILTER (s.label = 'normal' AND s.predicted_anomalous) AS false_alarms_f1,
                   count(*) FILTER (s.label = 'anomalous' AND NOT s.predicted_anomalous) AS missed_f1,
                   count(*) FILTER (s.label = 'normal' AND s.score >= l.zero_escape_threshold) AS false_alarms_zero_escape
            FROM chosen c JOIN image_scores s USING (run_id) LEFT JOIN lowest_anomalous l USING (run_id)
            GROUP BY ALL
            """,
            [parts],
        ).df()


def finished_run_scores(store: Path | str, parts: list[str], condition: str) -> pd.DataFrame:
    """Every test image's label ('normal'/'anomalous') and score of the finished runs of `parts` in `condition`."""
    with read_store(store) as con:
        return con.execute(
            """SELECT s.run_id, s.label, s.score FROM image_scores s JOIN runs r USING (run_id)
               WHERE r.status = 'finished' AND r.train_size IS NULL AND list_contains(?, r.part) AND r.condition = ?
               ORDER BY s.run_id, s.image_path""",
            [parts, condition],
        ).df()


def part_images_summary(store: Path | str, part: str) -> pd.DataFrame:
    """Every image of `part` with split, label, defect type, region, brightness and size (empty if unknown part)."""
    with read_store(store) as con:
        return con.execute(
            """SELECT image_path, split, label, defect_type, region, severity, mean_brightness, over_exposed,
                      defect_area_px, width, height
               FROM images WHERE part = ? ORDER BY split DESC, label, image_path""",
            [part],
        ).df()


def scored_images(store: Path | str, run_id: str) -> pd.DataFrame:
    """One run's per-image scores with the image's brightness, region, defect type and threshold margin."""
    with read_store(store) as con:
        return con.execute(
            """SELECT s.image_path, s.label, s.score, s.predicted_anomalous,
                      s.score - m.value AS margin, m.value AS threshold,
                      i.mean_brightness, i.over_exposed, i.region, i.defect_type, i.severity
               FROM image_scores s JOIN runs r USING (run_id)
               JOIN images i ON i.part = r.part AND i.image_path = s.image_path
               LEFT JOIN metrics m ON m.run_id = s.run_id AND m.metric = 'image_threshold'
               WHERE s.run_id = ? ORDER BY s.image_path""",
            [run_id],
        ).df()


EXAMPLE_COLUMNS = """a.run_id, r.model, r.backbone, r.preset, r.seed, r.condition, a.image_path,
    a.anomaly_map_path, a.pred_mask_path, a.map_min, a.map_max,
    i.label, i.defect_type, i.region, i.severity, i.mask_path, i.mean_brightness, d.root,
    s.score, s.predicted_anomalous"""


def part_examples(store: Path | str, part: str, condition: str) -> pd.DataFrame:
    """Kept heatmaps of `part` in `condition`, from each model's lowest-seed finished run, with ground truth and location."""
    with read_store(store) as con:
        return con.execute(
            f"""WITH chosen AS (
                   SELECT * FROM runs WHERE part = ? AND condition = ? AND {COMPARED}
                   QUALIFY seed = min(seed) OVER (PARTITION BY model, backbone, preset)
               )
               SELECT {EXAMPLE_COLUMNS}
               FROM artifacts a JOIN chosen r USING (run_id)
               JOIN images i ON i.part = r.part AND i.image_path = a.image_path
               JOIN datasets d ON d.part = r.part
               LEFT JOIN (  -- only the chosen runs' scores, not every score in the store
                   SELECT run_id, image_path, score, predicted_anomalous FROM image_scores
                   WHERE run_id IN (SELECT run_id FROM chosen)
               ) s ON s.run_id = a.run_id AND s.image_path = a.image_path
               ORDER BY a.image_path, r.model, r.backbone, r.preset""",
            [part, condition],
        ).df()


def run_example(store: Path | str, run_id: str, image_path: str) -> pd.DataFrame:
    """The kept heatmap of one image in one run (empty when that image's heatmap was not kept)."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT {EXAMPLE_COLUMNS}
               FROM artifacts a JOIN runs r USING (run_id)
               JOIN images i ON i.part = r.part AND i.image_path = a.image_path
               JOIN datasets d ON d.part = r.part
               LEFT JOIN image_scores s ON s.run_id = a.run_id AND s.image_path = a.image_path
               WHERE a.run_id = ? AND a.image_path = ?""",
            [run_id, image_path],
        ).df()


def part_root(store: Path | str, part: str) -> str | None:
    """Folder the part's image paths are relative to."""
    with read_store(store) as con:
        row = con.execute("SELECT root FROM datasets WHERE part = ?", [part]).fetchone()
    return row[0] if row else None


def part_training(store: Path | str, part: str) -> pd.DataFrame:
    """How each finished run of `part` trained: epochs, stop reason, under-trained flag and the limits it had.

    `stop_reason` is NULL for models fitted in one pass over the training images.
    """
    with read_store(store) as con:
        return con.execute(
            f"""SELECT run_id, part, condition, model, backbone, preset, seed, train_seconds,
                       epochs, stop_reason, under_trained, {TRAINING_LIMITS}
                FROM runs WHERE part = ? AND {COMPARED}
                ORDER BY condition, model, backbone, preset, seed""",
            [part],
        ).df()


def flagged_runs(store: Path | str, parts: list[str]) -> pd.DataFrame:
    """The finished runs of `parts` whose figures are flagged: under-trained, or timed under load.

    Run id and key, n_seeds (finished runs of its part, condition, model, backbone and preset), processor, gpu,
    cpu_count (as `leaderboard(by_hardware=True)` tells machines apart), epochs, stop_reason, under_trained,
    the preset's epoch_cap and budget_minutes from the run's config (`settings.epochs`,
    `settings.budget_minutes`), timing_contended and timing_note. Only flagged runs are read in full, so the query
    stays cheap on a large store.
    """
    with read_store(store) as con:
        return con.execute(
            f"""WITH chosen AS (
                   SELECT *, count(*) OVER (PARTITION BY part, condition, model, backbone, preset) AS n_seeds
                   FROM runs WHERE {COMPARED} AND list_contains(?, part)
               )
               SELECT run_id, part, condition, model, backbone, preset, seed, n_seeds, {HARDWARE_EXPRESSIONS},
                      epochs, stop_reason, under_trained, {TRAINING_LIMITS}, timing_contended, timing_note
               FROM chosen WHERE under_trained OR timing_contended
               ORDER BY part, condition, model, backbone, preset, seed""",
            [parts],
        ).df()


def finished_runs_on(store: Path | str, parts: list[str], condition: str) -> pd.DataFrame:
    """The finished runs of `parts` in `condition`, by run id, with the machine each ran on (`HARDWARE_COLUMNS`) and
    its memory in GB."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT run_id, part, model, backbone, preset, seed, {HARDWARE_EXPRESSIONS},
                       TRY_CAST(json_extract_string(environment, '$.hardware.memory_gb') AS DOUBLE) AS memory_gb
                FROM runs WHERE {COMPARED} AND list_contains(?, part) AND condition = ?
                ORDER BY run_id""",
            [parts, condition],
        ).df()


def learning_curve_runs(store: Path | str, part: str, condition: str) -> pd.DataFrame:
    """Every finished run of `part` in `condition`, on all its training images or fewer, with the number it fitted
    on (`n_train`), `train_size` (NULL: all) and its image and pixel AUROC (NULL without masks)."""
    with read_store(store) as con:
        return con.execute(
            """SELECT r.run_id, r.model, r.backbone, r.preset, r.seed, r.train_size, r.n_train,
                      max(m.value) FILTER (WHERE m.metric = 'image_auroc') AS image_auroc,
                      max(m.value) FILTER (WHERE m.metric = 'pixel_auroc') AS pixel_auroc
               FROM runs r JOIN metrics m USING (run_id)
               WHERE r.part = ? AND r.condition = ? AND r.status = 'finished'
               GROUP BY ALL ORDER BY r.model, r.backbone, r.preset, r.n_train, r.seed""",
            [part, condition],
        ).df()
