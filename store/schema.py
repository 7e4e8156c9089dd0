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
]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())")
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply the migrations this store has not seen yet, each in its own transaction."""
    for version in range(schema_version(con) + 1, len(MIGRATIONS) + 1):
        con.begin()
        con.execute(MIGRATIONS[version - 1])
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        con.commit()
