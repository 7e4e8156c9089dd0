"""When gradient training stops, and the record of how it went.

A preset either fixes the number of epochs (`paper`: the study's schedule, all of it runs) or trains
until converged within limits (`cpu`: it has `budget_minutes`). Under the second, training stops at the
first of:

- **converged**: the loss has levelled off. With `m(e)` the mean training loss of the `WINDOW` epochs
  ending at epoch `e`, training has converged at epoch `e` (at least `2 * WINDOW` epochs in) when
  `m(e - WINDOW) - m(e) < MIN_IMPROVEMENT * |m(e - WINDOW)|`: over the last `WINDOW` epochs the moving
  average improved by less than 1 % (or got worse). Losses that cross zero (normalising flows' negative
  log-likelihoods) are compared on `max(|m(e - WINDOW)|, |m(e)|)`, so a loss near zero does not look
  converged merely because the improvement is small in absolute terms.
- **epoch_cap**: the preset's `epochs` ran out first;
- **budget**: the wall-clock budget (`budget_minutes`) ran out first; checked after every epoch, so
  the last epoch may end a little past it. A finished run refitted later (`gluelab deploy`) sets
  `replay_epochs` to the epochs it trained: its budget then ends training after exactly those epochs,
  since the same minutes on another machine, or under another load, would train a different number.

A run stopped by its cap or budget before its loss levelled off is under-trained, and says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from store.runs import StopReason, Training

WINDOW = 5
MIN_IMPROVEMENT = 0.01
REPORT_EVERY_SECONDS = 30.0  # a long training says how far it is at most this often


def levelled_off(losses: list[float], window: int = WINDOW, min_improvement: float = MIN_IMPROVEMENT) -> bool:
    """Whether the `window`-epoch moving average improved by less than `min_improvement` over `window` epochs."""
    if len(losses) < 2 * window:
        return False
    before = sum(losses[-2 * window : -window]) / window
    now = sum(losses[-window:]) / window
    scale = max(abs(before), abs(now))
    return before - now < min_improvement * scale


class TrainingClock:
    """Tracks one run's epochs: call `epoch_done(mean_loss)` after each; it says whether to stop."""

    def __init__(self, settings: dict, report: Callable[[str], None] | None = None):
        self.epoch_cap = int(settings["epochs"])
        self.report = report
        self._reported_at = 0.0
        budget = settings.get("budget_minutes")
        self.budget_minutes = None if budget is None else float(budget)
        replay = settings.get("replay_epochs")
        self.replay_epochs = None if replay is None else int(replay)
        self.losses: list[float] = []
        self.seconds: list[float] = []
        self.stop_reason: StopReason | None = None
        self._start = time.perf_counter()

    @property
    def until_converged(self) -> bool:
        return self.budget_minutes is not None

    def epoch_done(self, mean_loss: float) -> bool:
        """Record an epoch's mean loss; True when training should stop (and `stop_reason` says why)."""
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} in epoch {len(self.losses) + 1}")
        self.losses.append(float(mean_loss))
        self.seconds.append(time.perf_counter() - self._start)
        if not self.until_converged:
            if len(self.losses) >= self.epoch_cap:
                self.stop_reason = "schedule"
        elif levelled_off(self.losses):
            self.stop_reason = "converged"
        elif len(self.losses) >= self.epoch_cap:
            self.stop_reason = "epoch_cap"
        elif self._budget_spent():
            self.stop_reason = "budget"
        if self.report is not None and (
            self.stop_reason is not None or self.seconds[-1] - self._reported_at >= REPORT_EVERY_SECONDS
        ):
            self._reported_at = self.seconds[-1]
            ending = f", stopped: {self.stop_reason}" if self.stop_reason else ""
            self.report(
                f"epoch {len(self.losses)}, loss {mean_loss:.5g}, {self.seconds[-1] / 60:.1f} min of training{ending}"
            )
        return self.stop_reason is not None

    def _budget_spent(self) -> bool:
        if self.replay_epochs is not None:
            return len(self.losses) >= self.replay_epochs
        return self.seconds[-1] >= 60 * self.budget_minutes  # type: ignore[operator]

    def record(self) -> Training:
        return Training(
            self.losses,
            self.seconds,
            self.stop_reason or "schedule",
            epoch_cap=self.epoch_cap,
            budget_minutes=self.budget_minutes,
        )
