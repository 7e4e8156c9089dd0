"""Evaluation requests: the queue between those who ask for a grid and the one worker per store that runs it.

An engineer on the dashboard's Runs page, or `gluelab evaluate --submit` on a shell, adds a request (who, from
where, when, the grid and the runs it makes). `gluelab worker` takes the requests in order: first one left
`running` by a worker that was killed (the finished runs are skipped, so nothing is redone), then the oldest
`queued` one. A request ends `finished` (its runs may include failed ones, counted), `failed` (the worker
could not run the grid at all) or `cancelled`.

Cancelling a queued request ends it at once. A running request is only marked: its worker sees the mark,
stops the running job (recorded `cancelled`, as Ctrl-C would) and ends the request `cancelled`.

The same grid submitted again while an earlier submission of it is still queued or running is not queued a
second time: the earlier request is returned.

One worker per store: the worker holds an exclusive `flock` on `<store>.worker.lock` (the kernel releases it
however the worker ends) with `host pid` written in it, so a second worker started by mistake is refused or
waits, and the dashboard can tell whether anyone is serving the queue. Once that has ended, submitting the grid again queues it anew
(its finished runs are skipped, so only failed, cancelled or missing runs run again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from store.connection import DEFAULT_STORE, read_store, write_store

RequestState = Literal["queued", "running", "finished", "failed", "cancelled"]
REQUEST_STATES: tuple[RequestState, ...] = ("queued", "running", "finished", "failed", "cancelled")
OPEN_STATES: tuple[RequestState, ...] = ("queued", "running")


@dataclass(frozen=True)
class Request:
    """One request as the store holds it; `grid` is the JSON object it was submitted with."""

    request_id: int
    grid: dict
    run_ids: list[str]
    state: RequestState
    submitted_by: str
    cancel_requested_by: str | None = None


@dataclass(frozen=True)
class Submitted:
    """What a submission did: queued a new request, or found the same grid already queued or running."""

    request_id: int
    queued: bool  # False: the same grid was already open as `request_id`
    state: RequestState
    n_runs: int


def grid_hash(grid: dict) -> str:
    """The grid's identity: the same parts, models, seeds... in any order of keys give the same hash."""
    return hashlib.sha1(json.dumps(grid, sort_keys=True).encode()).hexdigest()


def submit_request(
    grid: dict,
    run_ids: list[str],
    submitted_by: str,
    client: str,
    store: Path | str = DEFAULT_STORE,
    max_queued: int | None = None,
) -> Submitted:
    """Queue `grid` unless the same grid is already open; refuse (ValueError naming the limit) when `max_queued`
    requests are already waiting. The check and the insert are one transaction, so two engineers submitting the
    same grid at once queue it once."""
    digest = grid_hash(grid)
    with write_store(store) as con:
        same = con.execute(
            "SELECT request_id, state FROM requests WHERE grid_hash = ? AND state IN ('queued', 'running')"
            " ORDER BY request_id LIMIT 1",
            [digest],
        ).fetchone()
        if same is not None:
            return Submitted(int(same[0]), False, same[1], len(run_ids))
        if max_queued is not None:
            row = con.execute("SELECT count(*) FROM requests WHERE state = 'queued'").fetchone()
            waiting = int(row[0]) if row else 0
            if waiting >= max_queued:
                raise ValueError(
                    f"queued requests: {waiting} are already waiting and the limit is {max_queued}"
                    " (max_queued in the config); wait for some to run, or cancel one"
                )
        row = con.execute(
            "INSERT INTO requests (submitted_by, client, grid, grid_hash, run_ids, state)"
            " VALUES (?, ?, ?, ?, ?, 'queued') RETURNING request_id",
            [submitted_by, client, json.dumps(grid, sort_keys=True), digest, json.dumps(run_ids)],
        ).fetchone()
    assert row is not None
    return Submitted(int(row[0]), True, "queued", len(run_ids))


def next_request(store: Path | str = DEFAULT_STORE) -> Request | None:
    """The request a worker should run now: one left `running` (its worker died), else the oldest `queued` one.

    Only the worker holding the store's worker lock calls this, so a `running` request found here has no live
    worker."""
    if not Path(store).exists():
        return None
    with read_store(store) as con:
        row = con.execute(
            "SELECT request_id, grid, run_ids, state, submitted_by, cancel_requested_by FROM requests"
            " WHERE state IN ('queued', 'running') ORDER BY state = 'running' DESC, request_id LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    return Request(int(row[0]), json.loads(row[1]), json.loads(row[2]), row[3], row[4], row[5])


def start_request(request_id: int, worker: str, store: Path | str = DEFAULT_STORE) -> None:
    """Mark the request `running` by `worker` (`host:pid`); a resumed request keeps its first start time."""
    with write_store(store) as con:
        con.execute(
            "UPDATE requests SET state = 'running', worker = ?, started_at = coalesce(started_at, now())"
            " WHERE request_id = ?",
            [worker, request_id],
        )


def end_request(
    request_id: int,
    state: RequestState,
    message: str,
    store: Path | str = DEFAULT_STORE,
    counts: tuple[int, int, int] | None = None,
) -> None:
    """End a request `finished`, `failed` or `cancelled` (or put it back to `queued`), with `message` and the
    (finished, failed, skipped) run counts when known."""
    finished, failed, skipped = counts if counts is not None else (None, None, None)
    ended = "now()" if state in ("finished", "failed", "cancelled") else "NULL"
    with write_store(store) as con:
        con.execute(
            f"UPDATE requests SET state = ?, message = ?, ended_at = {ended}, finished_runs = coalesce(?, finished_runs),"
            " failed_runs = coalesce(?, failed_runs), skipped_runs = coalesce(?, skipped_runs) WHERE request_id = ?",
            [state, message, finished, failed, skipped, request_id],
        )


def cancel_request(request_id: int, cancelled_by: str, store: Path | str = DEFAULT_STORE) -> RequestState | None:
    """Cancel a request: a queued one ends `cancelled` now; a running one is marked for its worker to stop.

    Returns the request's state afterwards (`running` while its worker is stopping it), or None when there is
    no such request. An ended request is left as it is.
    """
    with write_store(store) as con:
        row = con.execute("SELECT state FROM requests WHERE request_id = ?", [request_id]).fetchone()
        if row is None:
            return None
        state = row[0]
        if state == "queued":
            con.execute(
                "UPDATE requests SET state = 'cancelled', cancel_requested_by = ?, ended_at = now(),"
                " message = 'cancelled by ' || ? || ' before it started' WHERE request_id = ?",
                [cancelled_by, cancelled_by, request_id],
            )
            return "cancelled"
        if state == "running":
            con.execute(
                "UPDATE requests SET cancel_requested_by = coalesce(cancel_requested_by, ?) WHERE request_id = ?",
                [cancelled_by, request_id],
            )
        return state


def cancel_requested_by(request_id: int, store: Path | str = DEFAULT_STORE) -> str | None:
    """Who asked to cancel this running request (None: nobody has)."""
    with read_store(store) as con:
        row = con.execute("SELECT cancel_requested_by FROM requests WHERE request_id = ?", [request_id]).fetchone()
    return None if row is None else row[0]


def requests_table(store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """Every request, newest first, with its progress: how many of its runs are finished, failed or running now.

    Columns: request_id, submitted_at, submitted_by, client, state, cancel_requested_by, worker, started_at,
    ended_at, message, grid (JSON), n_runs, runs_finished, runs_failed, runs_running.
    """
    with read_store(store) as con:
        return con.execute(
            """
            WITH wanted AS (
                SELECT request_id, unnest(CAST(json(run_ids) AS VARCHAR[])) AS run_id FROM requests
            ),
            progress AS (
                SELECT w.request_id, count(*) AS n_runs,
                       count(*) FILTER (WHERE r.status = 'finished') AS runs_finished,
                       count(*) FILTER (WHERE r.status = 'failed') AS runs_failed,
                       count(*) FILTER (WHERE r.status = 'running') AS runs_running
                FROM wanted w LEFT JOIN runs r USING (run_id) GROUP BY w.request_id
            )
            SELECT q.request_id, q.submitted_at, q.submitted_by, q.client, q.state, q.cancel_requested_by, q.worker,
                   q.started_at, q.ended_at, q.message, q.grid,
                   coalesce(p.n_runs, 0) AS n_runs, coalesce(p.runs_finished, 0) AS runs_finished,
                   coalesce(p.runs_failed, 0) AS runs_failed, coalesce(p.runs_running, 0) AS runs_running
            FROM requests q LEFT JOIN progress p USING (request_id)
            ORDER BY q.request_id DESC
            """
        ).df()


class WorkerBusy(RuntimeError):
    """Another worker already serves this store's queue."""


def worker_lock_path(store: Path | str) -> Path:
    return Path(f"{store}.worker.lock")


def running_worker(store: Path | str = DEFAULT_STORE) -> str | None:
    """`host pid` of the worker serving this store's queue right now, or None when none is."""
    path = worker_lock_path(store)
    if not path.exists():
        return None
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            return file.read().strip() or "a gluelab worker"
        return None  # closing the file releases the shared lock taken to look


@contextlib.contextmanager
def worker_lock(
    store: Path | str = DEFAULT_STORE, wait: bool = False, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Be the store's one worker while the block runs; raises WorkerBusy naming the running worker, or with
    `wait` waits for it to stop (calling `on_wait` once with who it is)."""
    path = worker_lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = running_worker(store) or "a gluelab worker"
            if not wait:
                raise WorkerBusy(
                    f"another gluelab worker ({holder}) already runs the requests of {store}: one worker per store."
                    " Stop it first, or add --wait to take over when it stops"
                ) from None
            if on_wait is not None:
                on_wait(holder)
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.5)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock
