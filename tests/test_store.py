"""Store schema upkeep: a store written by an older gluelab is brought up to date when read, its rows intact."""

from __future__ import annotations

import duckdb

from store import dataset_parts
from store.published import published_results
from store.runs import claim_run, mark_stale_runs, runs
from store.schema import MIGRATIONS

DATASET = ("part7", "mvtec", "/plant/part7", "line 3 camera", "2025-03-04 05:06:07", 2, True, False)
IMAGES = [
    ("part7", "train/good/000.png", "train", "normal", "good", None, 640, 480, "L", 91.25, False, None, None, None, 0.0),
    ("part7", "test/crack/001.png", "test", "anomalous", "crack", "ground_truth/crack/001_mask.png", 640, 480, "RGB",
     143.5, True, "B", "severe", 1234, -0.75),
]  # fmt: skip
PUBLISHED = [
    ("Chen et al. 2025", "Table 5", "part7", "baseline", "PaDiM", "ResNet18", "image_auroc", 0.931, 0.012),
    ("Chen et al. 2025", "Table 4", "part7", "baseline", "PaDiM", "ResNet18", "inference_ms", 41.5, None),
]


def rows(con: duckdb.DuckDBPyConnection, table: str, order: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


def test_a_store_from_an_older_version_is_migrated_on_first_read_and_keeps_its_rows(tmp_path):
    """The older store holds the first two migrations' tables with rows in each: they must come through unchanged."""
    store = tmp_path / "old.duckdb"
    con = duckdb.connect(str(store))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())")
    for version, migration in enumerate(MIGRATIONS[:2], start=1):
        con.execute(migration)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    con.execute("INSERT INTO store_meta VALUES ('last_write', '2025-03-04 05:06:07')")
    con.execute("INSERT INTO datasets VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP), ?, ?, ?)", list(DATASET))
    con.executemany(f"INSERT INTO images VALUES ({', '.join('?' * len(IMAGES[0]))})", IMAGES)
    con.executemany(f"INSERT INTO published_results VALUES ({', '.join('?' * len(PUBLISHED[0]))})", PUBLISHED)
    before = {
        "datasets": rows(con, "datasets", "part"),
        "images": rows(con, "images", "image_path"),
        "published_results": rows(con, "published_results", "metric"),
    }
    con.close()

    assert mark_stale_runs(store) == 0
    assert runs(store).empty
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
        assert rows(con, "datasets", "part") == before["datasets"]
        assert rows(con, "images", "image_path") == before["images"]
        assert rows(con, "published_results", "metric") == before["published_results"]

    assert dataset_parts(store)[["part", "root", "n_images"]].values.tolist() == [["part7", "/plant/part7", 2]]
    published = published_results(store, "part7").set_index("metric")
    assert published.loc["image_auroc", "mean"] == 0.931 and published.loc["image_auroc", "std"] == 0.012
    claim_run("r1", {"part": "part7", "model": "padim", "backbone": "", "preset": "cpu", "seed": 0,
                     "condition": "baseline"}, store)  # fmt: skip
    assert runs(store)["run_id"].tolist() == ["r1"]
