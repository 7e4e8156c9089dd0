"""Start `gluelab evaluate` as a background process that outlives the dashboard session that asked for it.

The grid writes to the store as usual; whoever started it follows its progress through the store and
its log file, `<store>.logs/evaluate-<time>.log`.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackgroundJob:
    pid: int
    log: Path
    command: list[str]


def evaluate_command(
    store: Path | str, parts: list[str], models: list[str], seeds: int, conditions: list[str], preset: str
) -> list[str]:
    """The `gluelab evaluate` arguments for this request, as typed on a shell."""
    return [
        "gluelab", "evaluate", "--parts", *parts, "--models", *models, "--seeds", str(seeds),
        "--conditions", *conditions, "--preset", preset, "--store", str(store),
    ]  # fmt: skip


def start_evaluation(
    store: Path | str, parts: list[str], models: list[str], seeds: int, conditions: list[str], preset: str
) -> BackgroundJob:
    command = evaluate_command(store, parts, models, seeds, conditions, preset)
    logs = Path(f"{store}.logs")
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *command[1:]],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    threading.Thread(target=process.wait, daemon=True).start()  # reap it when it ends
    return BackgroundJob(process.pid, log, command)
