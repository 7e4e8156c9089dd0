"""Where a run's time goes: a clock that splits a job's wall time into named stages (`store.stages.STAGES`).

Stages nest: while an inner stage runs (the backbone's forward pass inside the model's fit), the outer one is paused,
so each second is counted once and the stages of a run add up to its wall time. The frozen backbone is timed by
forward hooks on the model's frozen feature modules (`backbone_passes`), inside whichever stage calls it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from store.runs import RunOutcome


class StageClock:
    """Seconds per stage, each second counted in the innermost stage running then."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._running: list[str] = []
        self._since = time.perf_counter()

    def _switch(self) -> None:
        now = time.perf_counter()
        if self._running:
            name = self._running[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now

    def enter(self, name: str) -> None:
        self._switch()
        self._running.append(name)

    def leave(self) -> None:
        self._switch()
        self._running.pop()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.enter(name)
        try:
            yield
        finally:
            self.leave()


@contextmanager
def backbone_passes(clock: StageClock, modules: Sequence[Any], name: str) -> Iterator[None]:
    """While the block runs, every forward pass of `modules` (torch modules) is timed as stage `name`."""
    handles = []
    for module in modules:
        handles.append(module.register_forward_pre_hook(lambda *_: clock.enter(name)))
        handles.append(module.register_forward_hook(lambda *_: clock.leave()))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def with_parent_stages(outcome: RunOutcome, read: float | None, in_child: float) -> RunOutcome:
    """`outcome` with the stages the grid's own process timed: reading the part (`read`; None when an earlier job of
    the grid had read it), and whatever of the job process's wall time `in_child` its own stages leave unaccounted
    (`hand_over`: starting it, handing it the images, taking its results back)."""
    parent = {} if read is None else {"read": read}
    parent["hand_over"] = max(in_child - sum(outcome.stages.values()), 0.0)
    return replace(outcome, stages={**parent, **outcome.stages})
