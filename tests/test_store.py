"""Store schema upkeep: a store written by an older gluelab is brought up to date when read."""

from __future__ import annotations

import duckdb

from store.runs import mark_stale_runs, runs
from store.schema import MIGRATIONS


def test_a_store_from_an_older_version_is_migrated_on_first_read(tmp_path):
    store = tmp_path / "old.duckdb"
    con = duckdb.connect(str(store))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())")
    for version, migration in enumerate(MIGRATIONS[:2], start=1):
        con.execute(migration)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    con.close()

    assert mark_stale_runs(store) == 0
    assert runs(store).empty
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    con.close()
