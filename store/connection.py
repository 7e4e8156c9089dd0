"""Opening the store: short connections, retried with backoff while another process holds the lock."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.schema import is_current, migrate


def default_store() -> Path:
    """`$GLUELAB_STORE` as it is now, else `./gluelab.duckdb`; read again by long-running readers (the dashboard)."""
    return Path(os.environ.get("GLUELAB_STORE", "gluelab.duckdb"))


DEFAULT_STORE = default_store()
LOCK_WAIT_SECONDS = 60.0


class StoreLockedError(RuntimeError):
    """The store stayed locked by another process for longer than we were willing to wait."""


def _is_lock_conflict(error: duckdb.Error) -> bool:
    text = str(error)
    return "lock" in text.lower() or "Conflicting" in text


def _connect(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    delay = 0.02
    while True:
        try:
            # No replacement scans: a missing table must be an error, never a Python variable of that name.
            return duckdb.connect(str(path), read_only=read_only, config={"python_enable_replacements": False})
        except (duckdb.IOException, duckdb.ConnectionException) as error:
            if not _is_lock_conflict(error) or time.monotonic() > deadline:
                if _is_lock_conflict(error):
                    raise StoreLockedError(f"store {path} is busy (locked by another process): {error}") from error
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.5)


@contextmanager
def write_store(
    path: Path | str = DEFAULT_STORE, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection inside one transaction: committed on success, rolled back on any error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, wait_seconds=wait_seconds)
    try:
        migrate(con)
        con.begin()
        try:
            yield con
            con.execute("INSERT OR REPLACE INTO store_meta VALUES ('last_write', CAST(now() AS VARCHAR))")
            con.commit()
        except BaseException:
            con.rollback()
            raise
    finally:
        con.close()


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame) -> None:
    """Insert a pandas DataFrame into `table`, matching columns by name."""
    con.register("incoming_frame", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_frame")
    finally:
        con.unregister("incoming_frame")


@contextmanager
def read_store(
    path: Path | str = DEFAULT_STORE, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; a store that does not exist yet raises FileNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no results store at {path}; create one with `gluelab generate --store {path}` or `gluelab import`"
        )
    con = _connect(path, read_only=True, wait_seconds=wait_seconds)
    if not is_current(con):  # a store written by an older gluelab: bring its schema up to date once
        con.close()
        with write_store(path, wait_seconds):
            pass
        con = _connect(path, read_only=True, wait_seconds=wait_seconds)
    try:
        yield con
    finally:
        con.close()
