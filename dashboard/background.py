"""Start `gluelab evaluate` as a background process that outlives the dashboard session that asked for it.

The grid writes to the store as usual; whoever started it follows its progress through the store and
its log file, `<store>.logs/evaluate-<time>.log` (one per job, even for jobs started in the same second).

An evaluation started while another gluelab job runs on the machine waits for it, job by job (`engine.cores`:
one job at a time, so no two share the cores and spoil each other's times); `BackgroundJob.waiting_for` names
what it waits for.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.cores import SlotHolder, busy_slots


@dataclass(frozen=True)
class BackgroundJob:
    pid: int
    log: Path
    command: list[str]
    waiting_for: tuple[SlotHolder, ...] = ()  # the gluelab jobs running when it started, which it waits for


def evaluate_command(
    store: Path | str, parts: list[str], models: list[str], seeds: int, conditions: list[str], preset: str
) -> list[str]:
    """The `gluelab evaluate` arguments for this request, as typed on a shell."""
    return [
        "gluelab", "evaluate", "--parts", *parts, "--models", *models, "--seeds", str(seeds),
        "--conditions", *conditions, "--preset", preset, "--store", str(store),
    ]  # fmt: skip


def new_log(logs: Path) -> Path:
    """A log file of its own, `evaluate-<time>.log` or, when that exists, `evaluate-<time>-2.log`, ...

    Created exclusively, so two jobs started in the same second (by one session or several) never share one.
    """
    logs.mkdir(parents=True, exist_ok=True)
    stem = f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}"
    for attempt in itertools.count(1):
        log = logs / (f"{stem}.log" if attempt == 1 else f"{stem}-{attempt}.log")
        try:
            log.touch(exist_ok=False)
        except FileExistsError:
            continue
        return log
    raise AssertionError("unreachable")


def start_evaluation(
    store: Path | str, parts: list[str], models: list[str], seeds: int, conditions: list[str], preset: str
) -> BackgroundJob:
    command = evaluate_command(store, parts, models, seeds, conditions, preset)
    running = tuple(busy_slots())
    log = new_log(Path(f"{store}.logs"))
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *command[1:]],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    threading.Thread(target=process.wait, daemon=True).start()  # reap it when it ends
    return BackgroundJob(process.pid, log, command, running)
