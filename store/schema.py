"""Schema of the store as an ordered list of migrations; `schema_version` records those applied."""

from __future__ import annotations

import duckdb

MIGRATIONS: list[str] = [
    # 1: datasets and their images
    """
    CREATE TABLE store_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
    CREATE TABLE datasets (
        part VARCHAR PRIMARY KEY,
        layout VARCHAR NOT NULL,
        root VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        imported_at TIMESTAMP NOT NULL DEFAULT now(),
        n_images INTEGER NOT NULL,
        has_masks BOOLEAN NOT NULL,
        has_manifest BOOLEAN NOT NULL
    );
    CREATE TABLE images (
        part VARCHAR NOT NULL,
        image_path VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        defect_type VARCHAR NOT NULL,
        mask_path VARCHAR,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        original_mode VARCHAR NOT NULL,
        mean_brightness DOUBLE NOT NULL,
        over_exposed BOOLEAN,
        region VARCHAR,
        severity VARCHAR,
        defect_area_px INTEGER,
        exposure_stops DOUBLE,
        PRIMARY KEY (part, image_path)
    );
    """,
    # 2: the study's published figures, one row per (table, part, condition, model, backbone, metric)
    """
    CREATE TABLE published_results (
        source VARCHAR NOT NULL,
        source_table VARCHAR NOT NULL,
        part VARCHAR NOT NULL,
        condition VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        backbone VARCHAR NOT NULL,  -- '' where the model has no backbone
        metric VARCHAR NOT NULL,
        mean DOUBLE NOT NULL,
        std DOUBLE,  -- NULL where the paper gives a single value
        PRIMARY KEY (source, source_table, part, condition, model, backbone, metric)
    );
    """,
    # 3: evaluation runs, their metrics, per-image scores and example heatmaps
    """
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        part VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        backbone VARCHAR NOT NULL,  -- '' for models without one
        preset VARCHAR NOT NULL,
        seed INTEGER NOT NULL,
        condition VARCHAR NOT NULL,
        status VARCHAR NOT NULL,  -- running | finished | failed | cancelled
        error VARCHAR,
        host VARCHAR NOT NULL,
        pid INTEGER NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        train_seconds DOUBLE,
        inference_ms DOUBLE,
        throughput_fps DOUBLE,
        peak_memory_mb DOUBLE,
        n_train INTEGER,
        n_test INTEGER,
        config VARCHAR,  -- JSON: full job config, including deviations from the paper
        environment VARCHAR  -- JSON: library versions and hardware
    );
    CREATE TABLE metrics (
        run_id VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE,  -- NULL where the metric does not apply (no masks)
        PRIMARY KEY (run_id, metric)
    );
    CREATE TABLE image_scores (
        run_id VARCHAR NOT NULL,
        image_path VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        score DOUBLE NOT NULL,
        predicted_anomalous BOOLEAN NOT NULL,
        PRIMARY KEY (run_id, image_path)
    );
    CREATE TABLE artifacts (
        run_id VARCHAR NOT NULL,
        image_path VARCHAR NOT NULL,
        anomaly_map_path VARCHAR NOT NULL,  -- 8-bit PNG, grey level g means map_min + g / 255 * (map_max - map_min)
        pred_mask_path VARCHAR NOT NULL,
        map_min DOUBLE NOT NULL,
        map_max DOUBLE NOT NULL,
        PRIMARY KEY (run_id, image_path)
    );
    """,
    # 4: which process is working on which run right now; a forced re-run keeps the finished result in
    # `runs` until the new one replaces it, so the claim is the only sign that the job is being redone
    """
    CREATE TABLE run_claims (
        run_id VARCHAR PRIMARY KEY,
        host VARCHAR NOT NULL,
        pid INTEGER NOT NULL,
        claimed_at TIMESTAMP NOT NULL
    );
    """,
    # 5: how a gradient-trained run's training went: epochs done, why it stopped, and its loss per epoch.
    # NULL for models fitted in one pass over the training images (memory banks, the legacy check).
    """
    ALTER TABLE runs ADD COLUMN epochs INTEGER;
    ALTER TABLE runs ADD COLUMN stop_reason VARCHAR;  -- converged | epoch_cap | budget | schedule
    ALTER TABLE runs ADD COLUMN under_trained BOOLEAN;  -- stopped by its cap or budget before the loss levelled off
    CREATE TABLE training_losses (
        run_id VARCHAR NOT NULL,
        epoch INTEGER NOT NULL,  -- 1-based
        loss DOUBLE NOT NULL,  -- mean training loss over the epoch's batches
        seconds DOUBLE NOT NULL,  -- training time from the start of training to the end of this epoch
        PRIMARY KEY (run_id, epoch)
    );
    """,
    # 6: the load a run's latency and throughput were timed under. The samples are in `environment.timing`;
    # these columns mirror its verdict (engine.evaluation.timing.contention) for queries. NULL: not recorded
    # (runs from before this migration).
    """
    ALTER TABLE runs ADD COLUMN timing_contended BOOLEAN;  -- other work competed for the cores while it was timed
    ALTER TABLE runs ADD COLUMN timing_note VARCHAR;  -- why, in words (NULL when quiet)
    ALTER TABLE runs ADD COLUMN retimed_at TIMESTAMP;  -- when `gluelab evaluate --retime` last measured it again
    """,
    # 7: a finished run's model exported (`gluelab deploy`) and timed in a runtime, beside the run's eager figures.
    # One row per (run, exported format, runtime that executed the file); a forced re-run drops its run's rows.
    """
    CREATE TABLE deployments (
        run_id VARCHAR NOT NULL,
        format VARCHAR NOT NULL,  -- onnx | openvino: the exported file
        runtime VARCHAR NOT NULL,  -- onnxruntime | openvino: what executed it
        latency_ms DOUBLE NOT NULL,  -- median batch-1 latency after warm-up, pre-processing included
        throughput_fps DOUBLE NOT NULL,  -- images per second at batch 32
        eager_latency_ms DOUBLE NOT NULL,  -- the run's eager model, timed the same way in the same session
        max_score_difference DOUBLE NOT NULL,  -- largest |exported - eager| image score on the part's test images
        environment VARCHAR NOT NULL,  -- JSON: library versions (the runtimes' included) and hardware, as runs record them
        exported_at TIMESTAMP NOT NULL,
        path VARCHAR NOT NULL,  -- the exported model file
        PRIMARY KEY (run_id, format, runtime)
    );
    """,
    # 8: the device a run computed on, and the queue of evaluation requests a worker (`gluelab worker`) runs in order.
    # Runs from before this migration ran on the CPU: gluelab had no other device then.
    """
    ALTER TABLE runs ADD COLUMN device VARCHAR DEFAULT 'cpu';  -- cpu | cuda | cuda:N, as the job's torch saw it
    ALTER TABLE runs ADD COLUMN device_name VARCHAR;  -- the processor's or the GPU's model name
    CREATE SEQUENCE request_ids START 1;
    CREATE TABLE requests (
        request_id INTEGER PRIMARY KEY DEFAULT nextval('request_ids'),
        submitted_at TIMESTAMP NOT NULL DEFAULT now(),
        submitted_by VARCHAR NOT NULL,  -- the engineer's login or name, or the shell user for `--submit`
        client VARCHAR NOT NULL,  -- where the request came from: the browser's address or `host (shell)`
        grid VARCHAR NOT NULL,  -- JSON: parts, models, backbones, seeds, conditions, preset, pixel_metrics
        grid_hash VARCHAR NOT NULL,  -- the same grid submitted again while this one is open is not queued twice
        run_ids VARCHAR NOT NULL,  -- JSON list: the runs the grid makes, for progress
        state VARCHAR NOT NULL,  -- queued | running | finished | failed | cancelled
        cancel_requested_by VARCHAR,  -- set on a running request; its worker stops the job and records it cancelled
        worker VARCHAR,  -- `host:pid` of the worker running it (or that last ran it)
        started_at TIMESTAMP,
        ended_at TIMESTAMP,
        finished_runs INTEGER,
        failed_runs INTEGER,
        skipped_runs INTEGER,  -- already finished before the request ran
        message VARCHAR  -- how it ended, in words
    );
    """,
    # 9: the line. A deployment keeps the hash of the file it wrote and the operating point it scores the line at;
    # `gluelab inspect` records every frame it scored (or rejected) with a deployment. Deployments from before this
    # migration have neither: the line is then scored at the run's F1-optimal threshold, and says so.
    """
    ALTER TABLE deployments ADD COLUMN file_sha256 VARCHAR;  -- the exported file as `gluelab deploy` wrote it
    ALTER TABLE deployments ADD COLUMN line_threshold DOUBLE;  -- a frame scoring at least this raises an alarm
    ALTER TABLE deployments ADD COLUMN line VARCHAR;  -- JSON: how the threshold was chosen, the line, its test-set rates
    CREATE SEQUENCE frame_ids START 1;
    CREATE TABLE line_frames (
        frame_id BIGINT PRIMARY KEY DEFAULT nextval('frame_ids'),
        run_id VARCHAR NOT NULL,  -- the deployment that scored it: run, format and runtime
        format VARCHAR NOT NULL,
        runtime VARCHAR NOT NULL,
        file VARCHAR NOT NULL,  -- the frame file, absolute
        written_at TIMESTAMP,  -- the file's modification time: when the camera wrote it
        scored_at TIMESTAMP NOT NULL,
        score DOUBLE,  -- NULL for a rejected frame
        threshold DOUBLE,
        alarm BOOLEAN,
        mean_brightness DOUBLE,
        clipped_share DOUBLE,  -- share of pixels at full scale
        sharpness DOUBLE,  -- variance of the Laplacian over the squared mean grey level
        latency_ms DOUBLE,  -- read, pre-process and score, per frame of its batch
        rejected VARCHAR,  -- why the frame could not be scored (unreadable, truncated, wrong size, 16-bit)
        heatmap_path VARCHAR,  -- an alarm's anomaly map and predicted mask, under the store's artifact folder
        mask_path VARCHAR,
        UNIQUE (run_id, format, runtime, file)  -- a frame is scored once by a deployment, whatever restarts
    );
    """,
    # 10: a re-evaluation on the line. The Line monitor's re-evaluate request scores the frames a deployment scored
    # so far again with each run it evaluated (e.g. the same model trained in the augmented condition), so the page
    # can set that run's alarms on the line beside the deployed model's.
    """
    CREATE TABLE line_rescores (
        run_id VARCHAR NOT NULL,  -- the run that scored the frame again
        frame_id BIGINT NOT NULL,  -- the frame, as a deployment scored it (line_frames)
        request_id BIGINT,  -- the request that asked for it
        score DOUBLE NOT NULL,
        scored_at TIMESTAMP NOT NULL,
        PRIMARY KEY (run_id, frame_id)
    );
    """,
    # 11: where a run's time went, by stage (`store.stages.STAGES`); runs from before have no rows.
    """
    CREATE TABLE run_stages (
        run_id VARCHAR NOT NULL,
        stage VARCHAR NOT NULL,
        seconds DOUBLE NOT NULL,
        PRIMARY KEY (run_id, stage)
    );
    """,
    # 12: a run may fit on fewer of its part's training images than all (a learning curve's point): how many. NULL,
    # as for every run before, is all of them; only such runs are compared across candidates.
    """
    ALTER TABLE runs ADD COLUMN train_size INTEGER;
    """,
]


class StoreError(RuntimeError):
    """The store file cannot be used as it is; the message is one line naming the file and the problem."""


def _check_is_a_store(con: duckdb.DuckDBPyConnection, path: object) -> bool:
    """Whether the file has a `schema_version` table; raise StoreError if it holds tables but not that one."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if tables and "schema_version" not in tables:
        raise StoreError(f"{path} is not a gluelab store (a DuckDB database with other tables)")
    return "schema_version" in tables


def is_current(con: duckdb.DuckDBPyConnection, path: object = "the store") -> bool:
    """Whether every migration has been applied (works on read-only connections)."""
    has_table = _check_is_a_store(con, path)
    applied = _applied(con) if has_table else 0
    if applied > len(MIGRATIONS):
        raise StoreError(f"{path} was written by a newer gluelab (schema {applied}); update gluelab to use it")
    return applied == len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())"
    )
    return _applied(con)


def _applied(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, path: object = "the store") -> None:
    """Apply the migrations this store has not seen yet, each in its own transaction."""
    is_current(con, path)  # refuses a foreign database before anything is written to it
    for version in range(schema_version(con) + 1, len(MIGRATIONS) + 1):
        con.begin()
        con.execute(MIGRATIONS[version - 1])
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        con.commit()
