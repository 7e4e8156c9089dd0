"""Opening the store: short connections, retried with backoff while another process holds the lock."""

from __future__ import annotations

import os
import random
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.schema import StoreError, is_current, migrate


def default_store() -> Path:
    """`$GLUELAB_STORE` as it is now, else `./gluelab.duckdb`; read again by long-running readers (the dashboard)."""
    return Path(os.environ.get("GLUELAB_STORE", "gluelab.duckdb"))


DEFAULT_STORE = default_store()
LOCK_WAIT_SECONDS = 60.0


# A DuckDB file starts with a 4096-byte main header ("DUCK" at byte 8) and two 4096-byte database headers,
# each holding (checksum, iteration, meta block, free list, block count, block size); the newer one is current.
# Whole blocks of that size follow.
DUCKDB_MAGIC = b"DUCK"
DUCKDB_HEADERS = 3 * 4096
# Errors DuckDB raises when the bytes of the file are not what it wrote (SQL mistakes are other classes).
DAMAGE_ERRORS = (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException, duckdb.FatalException)


class StoreLockedError(RuntimeError):
    """The store stayed locked by another process for longer than we were willing to wait."""


def not_a_store(path: Path) -> StoreError:
    return StoreError(f"{path} is not a gluelab store (not a DuckDB database file)")


def damaged(path: Path) -> StoreError:
    return StoreError(f"{path} is damaged (truncated?): restore it from a copy")


def check_store_file(path: Path) -> int | None:
    """Refuse a store path that is a folder, unreadable, not a DuckDB file or shorter than DuckDB's headers.

    Runs before DuckDB opens the file, because a read-write open of a damaged file may change its bytes.
    Returns the file's block size (None for a path that does not exist: writing creates the store).
    It must not run while this process holds a connection to the store: DuckDB locks the file with POSIX
    record locks, which closing any other descriptor of the file in the same process releases.
    """
    if not path.exists():
        return None
    if path.is_dir():
        raise StoreError(
            f"{path} is a folder, not a gluelab store; give the store file, e.g. {path / 'gluelab.duckdb'}"
        )
    try:
        with path.open("rb") as file:
            header = file.read(DUCKDB_HEADERS)
    except PermissionError as error:
        raise StoreError(f"{path} cannot be read: permission denied") from error
    if header[8:12] != DUCKDB_MAGIC:
        raise not_a_store(path)
    if len(header) < DUCKDB_HEADERS:
        raise damaged(path)
    _, iteration_a, _, _, _, block_size_a = struct.unpack_from("<Q5q", header, 4096)
    _, iteration_b, _, _, _, block_size_b = struct.unpack_from("<Q5q", header, 8192)
    block_size = block_size_a if iteration_a >= iteration_b else block_size_b
    if block_size <= 0:
        raise damaged(path)
    return int(block_size)


def check_whole_blocks(path: Path, block_size: int) -> None:
    """Refuse a store whose file ends inside a block: it was cut short.

    DuckDB writes whole blocks after the headers (and may drop free ones at the end). Checked while a
    connection is open, so no other process is halfway through writing; only the file's size is read (see
    `check_store_file` on why it is not opened again). A cut on a block boundary shows up as an error when
    DuckDB reads the missing block.
    """
    if (path.stat().st_size - DUCKDB_HEADERS) % block_size:
        raise damaged(path)


def _open_error(path: Path, error: duckdb.Error) -> StoreError:
    """One line for a DuckDB error on opening `path` that is not a lock conflict."""
    text = str(error)
    if "not a valid DuckDB database file" in text:
        return not_a_store(path)
    if "Permission denied" in text or "Read-only file system" in text:
        return StoreError(f"{path} cannot be written (permission denied or read-only disk); use a writable copy")
    if "version" in text.lower() and "storage" in text.lower():
        return StoreError(f"{path} was written by a newer DuckDB than this gluelab uses: {text.splitlines()[0]}")
    return damaged(path)


def _is_lock_conflict(error: duckdb.Error) -> bool:
    text = str(error)
    return "lock" in text.lower() or "Conflicting" in text


def _is_wal_replay(error: duckdb.Error) -> bool:
    return "replaying WAL" in str(error)


def _connect(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    block_size = check_store_file(path)
    deadline = time.monotonic() + wait_seconds
    delay = 0.02
    while True:
        try:
            # No replacement scans: a missing table must be an error, never a Python variable of that name.
            con = duckdb.connect(str(path), read_only=read_only, config={"python_enable_replacements": False})
        except (duckdb.IOException, duckdb.ConnectionException) as error:
            if _is_wal_replay(error) and time.monotonic() <= deadline:
                pass  # a writer is finishing a checkpoint: try again
            elif not _is_lock_conflict(error):
                raise _open_error(path, error) from error
            elif time.monotonic() > deadline:
                raise StoreLockedError(f"store {path} is busy (locked by another process): {error}") from error
        except duckdb.TransactionException as error:
            # Opening replays the write-ahead log another process is just folding into the file; once it is
            # done the log is gone. A log that still cannot be replayed after the wait is damage.
            if not _is_wal_replay(error) or time.monotonic() > deadline:
                raise _open_error(path, error) from error
        except DAMAGE_ERRORS as error:
            raise _open_error(path, error) from error
        else:
            try:
                if block_size is not None:  # a store this connection has just created has nothing to check yet
                    check_whole_blocks(path, block_size)
            except BaseException:
                con.close()
                raise
            return con
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.5)


def _blame_the_file(path: Path, error: duckdb.Error) -> None:
    """Re-raise a DuckDB error met while using the store as a StoreError when the file itself is at fault."""
    check_store_file(path)
    if str(path) in str(error) or isinstance(error, duckdb.SerializationException | duckdb.FatalException):
        raise damaged(path) from error


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"{path} cannot be created: {error.strerror} ({path.parent})") from error


# DuckDB refuses to open a file in a process that already has it open with the other access mode (read-only
# against read-write), whichever thread holds it. Threads of one process (the dashboard's sessions, a worker's
# cancel watcher beside its grid) therefore take turns on a store: one connection per store and process at a time.
_PROCESS_LOCKS: dict[Path, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    key = path.resolve()
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.RLock())


@contextmanager
def write_store(
    path: Path | str = DEFAULT_STORE, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection inside one transaction: committed on success, rolled back on any error."""
    path = Path(path)
    _make_folder(path)
    with _process_lock(path):
        yield from _write_transaction(path, wait_seconds)


def _write_transaction(path: Path, wait_seconds: float) -> Iterator[duckdb.DuckDBPyConnection]:
    con = _connect(path, read_only=False, wait_seconds=wait_seconds)
    try:
        migrate(con, path)
        con.begin()
        try:
            yield con
            con.execute("INSERT OR REPLACE INTO store_meta VALUES ('last_write', CAST(now() AS VARCHAR))")
            con.commit()
        except BaseException:
            con.rollback()
            raise
    except DAMAGE_ERRORS as error:
        con.close()  # before the file is looked at again (see check_store_file)
        _blame_the_file(path, error)
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
    with _process_lock(path):
        yield from _read_connection(path, wait_seconds)


def _read_connection(path: Path, wait_seconds: float) -> Iterator[duckdb.DuckDBPyConnection]:
    con = _connect(path, read_only=True, wait_seconds=wait_seconds)
    try:
        current = is_current(con, path)
    except DAMAGE_ERRORS as error:
        con.close()
        _blame_the_file(path, error)
        raise
    except BaseException:
        con.close()
        raise
    if not current:  # a store written by an older gluelab: bring its schema up to date once
        con.close()
        with write_store(path, wait_seconds):
            pass
        con = _connect(path, read_only=True, wait_seconds=wait_seconds)
    try:
        yield con
    except DAMAGE_ERRORS as error:
        con.close()  # before the file is looked at again (see check_store_file)
        _blame_the_file(path, error)
        raise
    finally:
        con.close()
