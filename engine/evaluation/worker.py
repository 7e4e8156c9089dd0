"""`gluelab worker`: takes the store's evaluation requests in order and runs each with the grid runner.

One worker per store (`store.requests.worker_lock`); a second one is refused, or waits with `--wait`. The
worker takes a request left `running` by a worker that died first, then the oldest `queued` one
(`store.requests.next_request`), plans its jobs again from the grid it was submitted with and hands them to
`run_grid`, which skips finished runs: a request resumed after its worker was killed (SIGKILL included) redoes
nothing that finished, and the run that was cut off, left `running`, is marked failed and run again.

Cancelling: a cancel mark on the running request (`store.requests.cancel_request`) is seen within
`CANCEL_POLL_SECONDS` by a watcher thread, which sends this process SIGTERM: the grid stops its running job and
records it `cancelled` exactly as for Ctrl-C, and the worker ends the request `cancelled` and goes on to the
next one. A SIGTERM or Ctrl-C from outside stops the worker instead; its request goes back to `queued` and the
next worker resumes it.

A request with line frames (the Line monitor's re-evaluation) has its finished runs score those frames once its grid is
done (`engine.evaluation.line_rescoring`).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.evaluation.grid import run_grid
from engine.evaluation.job_process import describe
from engine.jobs import GridRequest, plan_grid
from store import DEFAULT_STORE
from store.requests import Request, end_request, next_request, start_request, worker_lock
from store.requests import cancel_requested_by as cancel_mark

POLL_SECONDS = 2.0  # how often an idle worker looks for new requests
CANCEL_POLL_SECONDS = 1.0  # how often the running request's cancel mark is looked for


class _CancelWatcher(threading.Thread):
    """Looks for a cancel mark on the running request; on finding one, interrupts the grid with SIGTERM."""

    def __init__(self, request_id: int, store: Path | str):
        super().__init__(name=f"cancel watcher of request {request_id}", daemon=True)
        self.request_id = request_id
        self.store = store
        self.cancelled_by: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(CANCEL_POLL_SECONDS):
            try:
                who = cancel_mark(self.request_id, self.store)
            except Exception:  # noqa: BLE001 - a busy store is looked at again next time
                continue
            if who:
                self.cancelled_by = who
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Worker:
    """Serves one store's queue; `grid_options` go to `run_grid` (device, executor, address, memory limits)."""

    store: Path | str = DEFAULT_STORE
    once: bool = False  # stop when the queue is empty instead of waiting for more requests
    report: Callable[[str], None] = print
    grid_options: dict[str, Any] = field(default_factory=dict)
    _watcher: _CancelWatcher | None = None

    @property
    def name(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def serve(self, wait: bool = False) -> int:
        """Run requests until stopped (or, with `once`, until the queue is empty); returns how many ran."""
        ran = 0
        with worker_lock(
            self.store, wait, on_wait=lambda holder: self.report(f"waiting for the worker {holder} to stop")
        ):
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self.report(f"worker {self.name} serving {self.store}")
            try:
                while True:
                    request = next_request(self.store)
                    if request is None:
                        if self.once:
                            return ran
                        time.sleep(POLL_SECONDS)
                        continue
                    self.run_request(request)
                    ran += 1
            finally:
                signal.signal(signal.SIGTERM, previous)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Outside a grid: a SIGTERM from outside stops the worker; the cancel watcher's own, arriving late, is
        ignored (the request is being ended as cancelled)."""
        if self._watcher is None or self._watcher.cancelled_by is None:
            raise KeyboardInterrupt

    def _stop_watching(self) -> None:
        """Stop the cancel watcher and let a SIGTERM it sent as the grid ended be handled (and ignored) now."""
        assert self._watcher is not None
        self._watcher.stop()
        time.sleep(0.05)  # a pending signal's handler runs in this thread at the latest while it sleeps
        self._watcher = None

    def run_request(self, request: Request) -> None:
        label = f"request {request.request_id} ({request.submitted_by}, {len(request.run_ids)} runs)"
        if request.cancel_requested_by:  # marked while no worker ran it
            who = request.cancel_requested_by
            end_request(request.request_id, "cancelled", f"cancelled by {who} before it was resumed", self.store)
            self.report(f"{label}: cancelled by {who}")
            return
        try:
            grid = GridRequest.from_json(request.grid)
            jobs = plan_grid(
                list(grid.parts),
                list(grid.models),
                list(grid.backbones) or None,
                grid.seeds,
                list(grid.conditions),
                grid.preset,
                self.store,
                list(grid.train_sizes),
            )
        except (ValueError, TypeError) as error:
            end_request(request.request_id, "failed", f"cannot be run: {error}", self.store)
            self.report(f"{label}: failed: {error}")
            return
        resumed = request.state == "running"
        start_request(request.request_id, self.name, self.store)
        self.report(f"{label}: {'resumed' if resumed else 'started'}")
        watcher = self._watcher = _CancelWatcher(request.request_id, self.store)
        watcher.start()
        try:
            summary = run_grid(jobs, self.store, **self.grid_options)
        except KeyboardInterrupt:
            self._stop_watching()
            if watcher.cancelled_by is None:
                end_request(
                    request.request_id, "queued", "its worker was stopped; the next worker resumes it", self.store
                )
                self.report(f"{label}: stopped; it resumes when a worker starts")
                raise
            message = f"cancelled by {watcher.cancelled_by} while running; its finished runs are kept"
            end_request(request.request_id, "cancelled", message, self.store)
            self.report(f"{label}: {message}")
            return
        except Exception as error:  # noqa: BLE001 - one request's failure does not stop the worker
            self._stop_watching()
            end_request(request.request_id, "failed", describe(error), self.store)
            self.report(f"{label}: failed: {describe(error)}")
            return
        self._stop_watching()
        counts = (summary.finished, summary.failed, summary.skipped)
        message = f"{summary.finished} runs finished, {summary.failed} failed, {summary.skipped} already done"
        if grid.line is not None:
            # Scoring frames refits models in this process: torch and the models load only for such a request.
            from engine.evaluation.line_rescoring import rescore_line

            try:
                rescored = rescore_line(
                    grid.line, [job.run_id for job in jobs], self.store, request.request_id, self.report
                )
            except Exception as error:  # noqa: BLE001 - the runs are kept; the request says why the line was not scored
                end_request(
                    request.request_id, "failed", f"{message}; the line's frames: {describe(error)}", self.store, counts
                )
                self.report(f"{label}: {message}; scoring the line's frames failed: {describe(error)}")
                return
            message += f"; {rescored} line frames scored again"
        end_request(request.request_id, "finished", message, self.store, counts)
        self.report(f"{label}: {message}")
