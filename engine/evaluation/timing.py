"""The load a run's latency and throughput were timed under, and the rule that calls a timing contended.

While a job times batch-1 latency and batch-32 throughput, `TimingWindow` watches the machine: the CPU time
every other process used on its cores (their busy time in /proc/stat minus this process's own in /proc/self/stat),
the 1-minute load average, this process's torch intra- and inter-op thread counts, and any other gluelab job's
process (`engine.cores.JOB_PROCESS_NAME`) running at the start or end of the windows. `contention` is the one
rule that turns those samples into a verdict; the run records both, and the dashboard leaves contended timings
out of its fronts and runtime charts by default.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from engine.cores import other_job_processes, usable_cores

# How much CPU other processes may use beyond the cores the timed job leaves free, in cores, averaged over the
# windows; see `contention`. $GLUELAB_OTHER_CPU_MARGIN_CORES sets another margin (e.g. on a machine whose idle
# noise is higher); each run records the margin its verdict used.
OTHER_CPU_MARGIN_CORES = 0.25
MARGIN_ENV = "GLUELAB_OTHER_CPU_MARGIN_CORES"
# Windows shorter than this are watched this long: /proc/stat counts in 10 ms clock ticks, so a 50 ms window
# could not tell a quiet machine from a busy one. $GLUELAB_MIN_WATCH_SECONDS sets another (e.g. 0 where the verdict
# does not matter, as when the margin is set out of reach); each run records how long its windows were watched.
MIN_WATCH_SECONDS = 1.0
MIN_WATCH_ENV = "GLUELAB_MIN_WATCH_SECONDS"
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class TimingLoad:
    """What was running beside a run while its latency and throughput were timed."""

    seconds: float  # how long the windows were watched
    other_cpu_cores: float  # CPU time of every other process over those seconds, in cores (1.0: one core's worth)
    cores: int  # the cores the job could run on
    intra_op_threads: int  # torch's threads within one operation, in the timed process
    inter_op_threads: int  # torch's threads across operations, in the timed process
    load_average: float  # the machine's 1-minute load average at the end (lags; recorded, not judged)
    other_gluelab_jobs: list[int] = field(default_factory=list)  # their process ids
    margin_cores: float = OTHER_CPU_MARGIN_CORES  # other processes' CPU allowed beyond the spare cores

    @property
    def spare_cores(self) -> int:
        """Cores the timed job's threads leave free for other work without taking a core from it."""
        return max(self.cores - self.intra_op_threads, 0)

    def record(self) -> dict[str, Any]:
        """The samples and the verdict, as the run's `environment.timing` keeps them."""
        reason = contention(self)
        return {**asdict(self), "contended": reason is not None, "reason": reason}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        """The samples back from a run's `environment.timing`."""
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})


def contention(load: TimingLoad) -> str | None:
    """Why the timing was contended, in words, or None when it was quiet.

    A timing is contended when, during its windows,
    - another gluelab job was running (gluelab runs one job per machine, `engine.cores`, so this happens only
      beside a gluelab that ignores the slots, e.g. an older version or a run started by hand); or
    - other processes used, on average, more than the margin (`OTHER_CPU_MARGIN_CORES`, a quarter of a core,
      unless `$GLUELAB_OTHER_CPU_MARGIN_CORES` says otherwise) beyond the cores the job's torch threads left
      free (`TimingLoad.spare_cores`). A job's threads use every core it
      has, and each parallel region waits for its slowest thread: a thread that loses its core for a moment
      stalls the whole region, so even a fraction of a core taken away slows a batch-1 forward pass far more
      than the fraction (one other torch process on 2 cores made PaDiM 11x and DFM 130x slower). The margin
      leaves room for the background of an otherwise idle machine (kernel threads, the grid sampling its job's
      memory every 50 ms), and no more; or
    - torch ran more intra-op threads than the job had cores, so the job oversubscribed them itself.
    """
    reasons = []
    if load.other_gluelab_jobs:
        pids = ", ".join(map(str, load.other_gluelab_jobs))
        reasons.append(f"another gluelab job was running (process {pids})")
    allowed = load.spare_cores + load.margin_cores
    if load.other_cpu_cores > allowed:
        reasons.append(
            f"other processes used {load.other_cpu_cores:.2f} cores on average while it was timed"
            f" (more than {allowed:g} on {load.cores} cores with {load.intra_op_threads} torch threads)"
        )
    if load.intra_op_threads > load.cores:
        reasons.append(f"torch ran {load.intra_op_threads} threads on {load.cores} cores")
    return "; ".join(reasons) if reasons else None


def _busy_ticks() -> int:
    """Clock ticks the cores this process may run on (its CPU affinity) spent on anything but idling, since boot.

    Only those cores: work confined to other cores (a container's cpuset, `taskset`) takes no time from the job.
    """
    cores = {f"cpu{core}" for core in os.sched_getaffinity(0)}
    busy = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name in cores:
                user, nice, system, idle, iowait, irq, softirq, steal = ([int(v) for v in values] + [0] * 8)[:8]
                busy += user + nice + system + irq + softirq + steal  # guest time is already in user and nice
    return busy


def _own_ticks() -> int:
    """Clock ticks this process (all its threads) has run, since it started."""
    with open("/proc/self/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


class TimingWindow:
    """Watch the machine while the block times a model: `load` holds what ran beside it once the block ends.

    `torch_threads` are the timed process's torch (intra-op, inter-op) thread counts.
    """

    def __init__(self, torch_threads: tuple[int, int]) -> None:
        self._threads = torch_threads
        self.load: TimingLoad | None = None

    def __enter__(self) -> Self:
        self._jobs = set(other_job_processes())
        self._start = time.monotonic()
        self._busy, self._own = _busy_ticks(), _own_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        watched = time.monotonic() - self._start
        at_least = min_watch_seconds()
        if watched < at_least:
            time.sleep(at_least - watched)
        busy, own = _busy_ticks(), _own_ticks()
        seconds = time.monotonic() - self._start
        other = max((busy - self._busy) - (own - self._own), 0) / _TICKS_PER_SECOND
        intra, inter = self._threads
        self.load = TimingLoad(
            seconds=round(seconds, 3),
            other_cpu_cores=round(other / seconds, 3),
            cores=usable_cores(),
            intra_op_threads=intra,
            inter_op_threads=inter,
            load_average=round(os.getloadavg()[0], 2),
            other_gluelab_jobs=sorted(self._jobs | set(other_job_processes())),
            margin_cores=margin_cores(),
        )


def margin_cores() -> float:
    """The margin of other processes' CPU use a timing allows: $GLUELAB_OTHER_CPU_MARGIN_CORES, else 0.25 cores."""
    return _setting(MARGIN_ENV, OTHER_CPU_MARGIN_CORES, "a number of cores")


def min_watch_seconds() -> float:
    """How long the windows are watched at least: $GLUELAB_MIN_WATCH_SECONDS, else 1 second."""
    return _setting(MIN_WATCH_ENV, MIN_WATCH_SECONDS, "a number of seconds")


def _setting(name: str, default: float, what: str) -> float:
    """$name as a number of 0 or more, `default` where it is unset or empty; a clear error naming it otherwise."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"${name} must be {what} (got {text!r})") from None
    if not value >= 0:
        raise ValueError(f"${name} must be 0 or more (got {text})")
    return value
