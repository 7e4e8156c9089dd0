"""Evaluation runs: their lifecycle (running -> finished | failed | cancelled) and what they record.

A process claims a job before running it (`run_claims`), after checking the store afresh, so two
processes never run the same job and a finished run is skipped. A new job's run row is written as
`running`; its metrics, per-image scores and artifacts are written together with the `finished` status
in one transaction, so a reader never sees a finished run with partial results. A forced re-run leaves
the finished run untouched until that transaction replaces it, so a re-run that fails, is cancelled or
is killed loses nothing. Runs and claims left by a process that no longer exists are cleared by the
next grid start (the runs marked failed).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from store.connection import DEFAULT_STORE, insert_frame, read_store, write_store
from store.metrics import runtime_sources

RUN_KEY = ("part", "model", "backbone", "preset", "seed", "condition")
# The runs candidates are compared by (leaderboards, fronts, line stops, examples): finished, on all their part's
# training images. A run on fewer (a learning curve's point, `runs.train_size`) is read only where sizes are shown.
COMPARED = "status = 'finished' AND train_size IS NULL"
# The values a run key's preset and condition take: `paper` follows the study's Table B.8, `cpu` fits this
# kind of machine; `augmented` trains with the study's Table 3 augmentations, `baseline` without.
PRESETS = ("cpu", "paper")
CONDITIONS = ("baseline", "augmented")
# The machine a run ran on, as its environment records it (engine.evaluation.evaluate.environment): times
# measured on machines that differ in any of these are not comparable.
HARDWARE_COLUMNS = ("processor", "gpu", "cpu_count")  # gpu: the GPU the run computed on (NULL for a CPU run)
HARDWARE_EXPRESSIONS = """json_extract_string(environment, '$.hardware.processor') AS processor,
                json_extract_string(environment, '$.hardware.gpu') AS gpu,
                TRY_CAST(json_extract_string(environment, '$.hardware.cpu_count') AS INTEGER) AS cpu_count"""
STALE_RUN_ERROR = "interrupted: the evaluating process stopped without finishing (killed or crashed)"


StopReason = Literal["converged", "epoch_cap", "budget", "schedule"]


@dataclass(frozen=True)
class Training:
    """How a gradient-trained run's training went: its loss per epoch and why it stopped.

    `converged`: the loss levelled off (the rule is in `engine.models.training`); `epoch_cap` and `budget`:
    the preset's epoch cap or wall-clock budget ended training first, so the run is under-trained;
    `schedule`: the preset fixes the number of epochs (the study's settings), and all of them ran.
    """

    losses: list[float]  # mean training loss of each epoch
    seconds: list[float]  # training time from the start to the end of each epoch
    stop_reason: StopReason
    epoch_cap: int | None = None
    budget_minutes: float | None = None

    @property
    def epochs(self) -> int:
        return len(self.losses)

    @property
    def under_trained(self) -> bool:
        return self.stop_reason in ("epoch_cap", "budget")


def training_note(
    stop_reason: str | None, epochs: int | None, epoch_cap: int | None = None, budget_minutes: float | None = None
) -> str:
    """The stop reason in words, e.g. "stopped by the 10-minute budget before its loss levelled off"."""
    if stop_reason is None:
        return "fitted in one pass over the training images"
    if stop_reason == "converged":
        return f"converged: its loss levelled off after {epochs} epochs"
    if stop_reason == "budget":
        budget = f"{budget_minutes:g}-minute budget" if budget_minutes is not None else "time budget"
        return f"stopped by the {budget} after {epochs} epochs, before its loss levelled off"
    if stop_reason == "epoch_cap":
        cap = f"{epoch_cap}-epoch cap" if epoch_cap is not None else "epoch cap"
        return f"stopped by its {cap} before its loss levelled off"
    return f"trained the preset's fixed schedule of {epochs} epochs"


@dataclass(frozen=True)
class RunOutcome:
    """Everything a finished run records.

    `environment["timing"]`, when present, holds the load its latency and throughput were timed under with the
    verdict `contended` and its `reason` (engine.evaluation.timing); the verdict is also kept in the run's
    `timing_contended` and `timing_note` columns.
    """

    metrics: dict[str, float | None]
    train_seconds: float
    inference_ms: float | None  # None: not timed (a learning-curve run, fitted on fewer than all training images)
    throughput_fps: float | None
    peak_memory_mb: float
    n_train: int
    n_test: int
    config: dict
    environment: dict
    image_scores: pd.DataFrame  # image_path, label, score, predicted_anomalous
    artifacts: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # image_path, anomaly_map_path, pred_mask_path, map_min, map_max
    training: Training | None = None  # None for models fitted in one pass
    device: str = "cpu"  # what the model computed on: cpu or cuda:N (engine.devices)
    device_name: str | None = None  # the processor's or the GPU's model name
    # seconds per `store.stages.STAGES` stage, all but the store writes (`finish_run` times those)
    stages: dict[str, float] = field(default_factory=dict)


def artifacts_dir(store: Path | str) -> Path:
    """Folder beside the store file that holds example heatmaps and masks, one sub-folder per run."""
    return Path(f"{store}.artifacts")


ClaimState = Literal["new", "rerun", "finished", "busy"]


def claim_run(run_id: str, key: dict, store: Path | str = DEFAULT_STORE, force: bool = False) -> ClaimState:
    """Claim a job for this process, checking the store afresh in the same transaction.

    Returns what was found and done:
    - `finished`: the job has a finished run and `force` is off; nothing is written.
    - `busy`: another live process has claimed the job or is running it; nothing is written.
    - `rerun`: the job has a finished run and `force` is on; only a claim is recorded, the finished run keeps
      its results until `finish_run` replaces them in the transaction that writes the new ones.
    - `new`: an earlier failed, cancelled or interrupted run of the job is dropped and the job is recorded
      `running`, with a claim.
    """
    host, pid = _this_process()
    with write_store(store) as con:
        holders = con.execute(
            "SELECT host, pid FROM run_claims WHERE run_id = ?"
            " UNION ALL SELECT host, pid FROM runs WHERE run_id = ? AND status = 'running'",
            [run_id, run_id],
        ).fetchall()
        if any((h, p) != (host, pid) and _holder_alive(h, p) for h, p in holders):
            return "busy"
        row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        finished = row is not None and row[0] == "finished"
        if finished and not force:
            return "finished"
        con.execute("INSERT OR REPLACE INTO run_claims VALUES (?, ?, ?, now())", [run_id, host, pid])
        if finished:
            return "rerun"
        _delete_run(con, run_id)
        con.execute(
            f"INSERT INTO runs (run_id, {', '.join(RUN_KEY)}, train_size, status, host, pid, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, now())",
            [run_id, *(key[k] for k in RUN_KEY), key.get("train_size"), host, pid],
        )
        return "new"


def finish_run(run_id: str, key: dict, outcome: RunOutcome, store: Path | str = DEFAULT_STORE) -> list[str]:
    """Write a claimed job's run with all its results in one transaction, replacing any earlier run of the job.

    Returns the example folders (under `artifacts_dir`) that only the replaced run referenced, for the caller
    to delete once this has committed.
    """
    host, pid = _this_process()
    training = outcome.training
    started = time.perf_counter()
    with write_store(store) as con:
        before = _example_folders(con, run_id)
        claimed = con.execute(
            "SELECT claimed_at FROM run_claims WHERE run_id = ? AND host = ? AND pid = ?", [run_id, host, pid]
        ).fetchone()
        _delete_run(con, run_id)
        con.execute(
            f"""INSERT INTO runs (run_id, {", ".join(RUN_KEY)}, train_size, status, host, pid, started_at, finished_at,
                   train_seconds, inference_ms, throughput_fps, peak_memory_mb, n_train, n_test, config, environment,
                   epochs, stop_reason, under_trained, timing_contended, timing_note, device, device_name)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'finished', ?, ?, coalesce(?, now()), now(), ?, ?, ?, ?, ?, ?, ?, ?,
                       ?, ?, ?, ?, ?, ?, ?)""",
            [
                run_id,
                *(key[k] for k in RUN_KEY),
                key.get("train_size"),
                host,
                pid,
                claimed[0] if claimed else None,
                outcome.train_seconds,
                outcome.inference_ms,
                outcome.throughput_fps,
                outcome.peak_memory_mb,
                outcome.n_train,
                outcome.n_test,
                json.dumps(outcome.config, sort_keys=True),
                json.dumps(outcome.environment, sort_keys=True),
                *(
                    (None, None, None)
                    if training is None
                    else (training.epochs, training.stop_reason, training.under_trained)
                ),
                *_timing_verdict(outcome.environment.get("timing")),
                outcome.device,
                outcome.device_name,
            ],
        )
        metrics = pd.DataFrame(
            {"run_id": run_id, "metric": list(outcome.metrics), "value": list(outcome.metrics.values())}
        )
        metrics["value"] = metrics["value"].astype("float64")
        insert_frame(con, "metrics", metrics)
        insert_frame(con, "image_scores", outcome.image_scores.assign(run_id=run_id))
        if not outcome.artifacts.empty:
            insert_frame(con, "artifacts", outcome.artifacts.assign(run_id=run_id))
        if training is not None and training.losses:
            losses = pd.DataFrame(
                {
                    "run_id": run_id,
                    "epoch": range(1, training.epochs + 1),
                    "loss": training.losses,
                    "seconds": training.seconds,
                }
            )
            insert_frame(con, "training_losses", losses)
        con.execute("DELETE FROM run_claims WHERE run_id = ? AND host = ? AND pid = ?", [run_id, host, pid])
        stages = {**outcome.stages, "store": time.perf_counter() - started}  # all but the commit
        con.executemany(
            "INSERT INTO run_stages VALUES (?, ?, ?)", [[run_id, name, seconds] for name, seconds in stages.items()]
        )
        after = _example_folders(con, run_id)
    return sorted(before - after)


def _timing_verdict(timing: dict | None) -> tuple[bool | None, str | None]:
    """(contended, reason) of a run's recorded timing load; (None, None) when it recorded none."""
    if not timing or "contended" not in timing:
        return None, None
    return bool(timing["contended"]), timing.get("reason")


def finished_run(run_id: str, store: Path | str = DEFAULT_STORE) -> dict:
    """A finished run's key, config, environment, timing figures and verdict, and its device, by id.

    ValueError naming the id (and the store) when the store has no such run, or the run has not finished.
    """
    if not Path(store).exists():
        raise ValueError(f"no run {run_id!r}: there is no store at {store}")
    with read_store(store) as con:
        row = con.execute(
            f"""SELECT run_id, {", ".join(RUN_KEY)}, status, config, environment, inference_ms, throughput_fps,
                       timing_contended, timing_note, device, device_name
                FROM runs WHERE run_id = ?""",
            [run_id],
        ).fetchone()
    if row is None:
        raise ValueError(f"no run {run_id!r} in {store} (`gluelab results` or the Runs page list its runs)")
    names = ["run_id", *RUN_KEY, "status", "config", "environment", "inference_ms", "throughput_fps"]
    run = dict(zip([*names, "timing_contended", "timing_note", "device", "device_name"], row, strict=True))
    if run["status"] != "finished":
        raise ValueError(f"run {run_id!r} is {run['status']}, not finished: only a finished run can be timed again")
    run["config"] = json.loads(run["config"] or "{}")
    run["environment"] = json.loads(run["environment"] or "{}")
    return run


def record_retiming(
    run_id: str, inference_ms: float, throughput_fps: float, timing: dict, store: Path | str = DEFAULT_STORE
) -> bool:
    """Keep a new measurement of a finished run's latency and throughput, with the load it was taken under.

    A quiet measurement always replaces the run's figures and clears its flag. A contended one replaces only
    figures that were themselves contended or recorded no load; a quietly timed run keeps its figures. The
    replaced timing (figures and load) is appended to `environment.timing_history`. Returns whether the run's
    figures were replaced.
    """
    contended, reason = _timing_verdict(timing)
    with write_store(store) as con:
        row = con.execute(
            "SELECT inference_ms, throughput_fps, environment, timing_contended FROM runs"
            " WHERE run_id = ? AND status = 'finished'",
            [run_id],
        ).fetchone()
        if row is None:
            raise ValueError(f"no finished run {run_id!r} in {store}")
        old_ms, old_fps, environment_text, was_contended = row
        if contended and was_contended is False:
            return False
        environment = json.loads(environment_text or "{}")
        replaced = {"inference_ms": old_ms, "throughput_fps": old_fps, "load": environment.get("timing")}
        environment["timing_history"] = [*environment.get("timing_history", []), replaced]
        environment["timing"] = timing
        con.execute(
            """UPDATE runs SET inference_ms = ?, throughput_fps = ?, environment = ?, timing_contended = ?,
                   timing_note = ?, retimed_at = now()
               WHERE run_id = ?""",
            [inference_ms, throughput_fps, json.dumps(environment, sort_keys=True), contended, reason, run_id],
        )
    return True


def end_run(
    run_id: str, status: str, error: str, config: dict | None = None, store: Path | str = DEFAULT_STORE
) -> None:
    """Mark this process's running run failed or cancelled, keeping the error and (when known) its config.

    A forced re-run that ends this way leaves the job's finished run exactly as it was; only the claim goes.
    """
    host, pid = _this_process()
    with write_store(store) as con:
        con.execute(
            "UPDATE runs SET status = ?, error = ?, finished_at = now(), config = coalesce(?, config)"
            " WHERE run_id = ? AND status = 'running' AND host = ? AND pid = ?",
            [status, error, None if config is None else json.dumps(config, sort_keys=True), run_id, host, pid],
        )
        con.execute("DELETE FROM run_claims WHERE run_id = ? AND host = ? AND pid = ?", [run_id, host, pid])


def mark_stale_runs(store: Path | str = DEFAULT_STORE) -> int:
    """Fail runs left `running` on this host by processes that no longer exist, and drop their claims.

    Returns how many runs were marked failed. A forced re-run interrupted this way only loses its claim: the
    finished run it was redoing was never touched.
    """
    if not Path(store).exists():
        return 0
    host = socket.gethostname()
    with read_store(store) as con:
        running = con.execute("SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?", [host]).fetchall()
        claims = con.execute("SELECT run_id, pid FROM run_claims WHERE host = ?", [host]).fetchall()
    stale = [(run_id, pid) for run_id, pid in running if not _process_alive(pid)]
    stale_claims = [(run_id, pid) for run_id, pid in claims if not _process_alive(pid)]
    if stale or stale_claims:
        with write_store(store) as con:
            for run_id, pid in stale:
                con.execute(
                    "UPDATE runs SET status = 'failed', error = ?, finished_at = now()"
                    " WHERE run_id = ? AND status = 'running' AND host = ? AND pid = ?",
                    [STALE_RUN_ERROR, run_id, host, pid],
                )
            for run_id, pid in stale_claims:
                con.execute("DELETE FROM run_claims WHERE run_id = ? AND host = ? AND pid = ?", [run_id, host, pid])
    return len(stale)


def run_claims(store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """Jobs some process has claimed and not yet finished or ended: run_id, host, pid, claimed_at."""
    with read_store(store) as con:
        return con.execute("SELECT * FROM run_claims ORDER BY claimed_at").df()


def finished_run_ids(store: Path | str = DEFAULT_STORE) -> set[str]:
    if not Path(store).exists():
        return set()
    with read_store(store) as con:
        return {row[0] for row in con.execute("SELECT run_id FROM runs WHERE status = 'finished'").fetchall()}


def runs(store: Path | str = DEFAULT_STORE, part: str | None = None) -> pd.DataFrame:
    """Every run (any status), newest first."""
    with read_store(store) as con:
        return con.execute("SELECT * FROM runs WHERE ? IS NULL OR part = ? ORDER BY started_at DESC", [part, part]).df()


def run_metrics(store: Path | str = DEFAULT_STORE, part: str | None = None) -> pd.DataFrame:
    """Finished runs in long form: run key, metric, value."""
    with read_store(store) as con:
        return con.execute(
            f"""SELECT r.run_id, {", ".join("r." + k for k in RUN_KEY)}, r.train_size, m.metric, m.value
                FROM runs r JOIN metrics m USING (run_id)
                WHERE r.status = 'finished' AND (? IS NULL OR r.part = ?)""",
            [part, part],
        ).df()


def leaderboard(
    store: Path | str = DEFAULT_STORE, part: str | None = None, *, by_hardware: bool = False
) -> pd.DataFrame:
    """Mean, std and number of seeds per (part, condition, model, backbone, preset, device) and metric.

    `device` is what the runs computed on (`cpu`, `cuda:N`; see `engine.devices`): seeds run on different
    devices are never averaged together.

    Runtime figures are included as metrics, like Table 4: one `UNION ALL` per runtime metric of the
    metric registry, reading its `source` expression over the run's row (train_seconds / 60 for train_min).
    With `by_hardware`, seeds are also told apart by the machine they ran on (`HARDWARE_COLUMNS`, from the
    run's environment: processor, gpu, cpu_count; NULL where the run did not record it), so no mean mixes
    times measured on different machines.
    """
    hardware = "".join(f", {column}" for column in HARDWARE_COLUMNS) if by_hardware else ""
    keys = f"part, condition, model, backbone, preset, device{hardware}"
    extracted = f", {HARDWARE_EXPRESSIONS}" if by_hardware else ""
    runtime = "".join(
        f"\n                UNION ALL SELECT {keys}, seed, '{name}', CAST({source} AS DOUBLE) FROM finished"
        for name, source in runtime_sources()
    )
    with read_store(store) as con:
        return con.execute(
            f"""
            WITH finished AS (
                SELECT * REPLACE (coalesce(device, 'cpu') AS device){extracted}
                FROM runs WHERE {COMPARED} AND (? IS NULL OR part = ?)
            ),
            long AS (
                SELECT {", ".join("f." + key for key in keys.split(", "))}, f.seed, m.metric, m.value
                FROM finished f JOIN metrics m USING (run_id){runtime}
            )
            SELECT {keys}, metric, avg(value) AS mean, stddev_samp(value) AS std, count(value) AS n_seeds
            FROM long GROUP BY ALL ORDER BY {keys}, metric
            """,
            [part, part],
        ).df()


def run_image_scores(run_id: str, store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    with read_store(store) as con:
        return con.execute("SELECT * FROM image_scores WHERE run_id = ? ORDER BY image_path", [run_id]).df()


def run_training_losses(run_id: str, store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """A run's loss per epoch (epoch, loss, seconds); empty for models fitted in one pass."""
    with read_store(store) as con:
        return con.execute(
            "SELECT epoch, loss, seconds FROM training_losses WHERE run_id = ? ORDER BY epoch", [run_id]
        ).df()


def run_artifacts(run_id: str, store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    with read_store(store) as con:
        return con.execute("SELECT * FROM artifacts WHERE run_id = ? ORDER BY image_path", [run_id]).df()


def _example_folders(con, run_id: str) -> set[str]:
    """Top-level folders under `artifacts_dir` that hold a run's example heatmaps and masks."""
    rows = con.execute(
        "SELECT DISTINCT split_part(anomaly_map_path, '/', 1) FROM artifacts WHERE run_id = ?", [run_id]
    ).fetchall()
    return {row[0] for row in rows}


def _this_process() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def _holder_alive(host: str, pid: int) -> bool:
    """Whether the process holding a claim may still be working: always assumed so on another host."""
    return host != socket.gethostname() or _process_alive(pid)


def _delete_run(con, run_id: str) -> None:
    for table in ("deployments", "training_losses", "artifacts", "image_scores", "metrics", "run_stages", "runs"):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
