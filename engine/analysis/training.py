"""How runs trained, in words: each run's stop reason, a candidate's training over its seeds, and loss curves.

Input rows are runs as the store's `part_training` and `recent_runs` queries give them: `stop_reason`
(`converged`, `epoch_cap`, `budget`, `schedule`, or missing for a model fitted in one pass over the training
images), `epochs`, `under_trained`, and the limits the preset set: `epoch_cap` (its `epochs` setting) and
`budget_minutes`. A run is under-trained when its epoch cap or time budget ended training before its loss
levelled off; its figures then understate what the model can do.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from store.runs import training_note

ONE_PASS = "one pass"
STOP_REASON_WORDS = {
    "converged": "converged",
    "epoch_cap": "epoch cap",
    "budget": "time budget",
    "schedule": "fixed schedule",
}


def _given(value) -> bool:
    """Whether a cell holds a value (not None, NaN or pandas' NA)."""
    return value is not None and not pd.isna(value)


def stop_reason_words(stop_reason: str | None) -> str:
    """The stop reason as a short phrase ("time budget"); "one pass" for a model fitted in one pass."""
    if not _given(stop_reason):
        return ONE_PASS
    return STOP_REASON_WORDS.get(str(stop_reason), str(stop_reason))


def is_under_trained(run: Mapping) -> bool:
    """Whether the run's epoch cap or time budget stopped its training before its loss levelled off."""
    flag = run.get("under_trained")
    return bool(flag) if _given(flag) else False


def _number(run: Mapping, column: str) -> float | None:
    value = run.get(column)
    return None if value is None or pd.isna(value) else float(value)


def run_note(run: Mapping) -> str:
    """The run's stop reason in a sentence, e.g. "stopped by the 10-minute budget after 37 epochs, before …"."""
    stop_reason = run.get("stop_reason")
    epochs, cap = _number(run, "epochs"), _number(run, "epoch_cap")
    return training_note(
        str(stop_reason) if _given(stop_reason) else None,
        None if epochs is None else int(epochs),
        None if cap is None else int(cap),
        _number(run, "budget_minutes"),
    )


def under_trained_badge(run: Mapping) -> str | None:
    """ "under-trained: <note>" for an under-trained run, None for any other."""
    return f"under-trained: {run_note(run)}" if is_under_trained(run) else None


def _epochs_span(epochs: pd.Series) -> str:
    low, high = int(epochs.min()), int(epochs.max())
    return f"{low} epochs" if low == high else f"{low}–{high} epochs"


def training_summary(runs: pd.DataFrame) -> str:
    """One candidate's training over its seeds (one row per run), as the metrics table's "training" column.

    "under-trained (time budget)" when any seed was stopped by its cap or budget (with "k of n seeds" when
    not all were); else "one pass" for models fitted in one pass; else per stop reason "converged after N
    epochs" or "fixed schedule of N epochs", N the range over seeds.
    """
    if runs.empty:
        return ""
    under = runs[[is_under_trained(run) for _, run in runs.iterrows()]]
    if not under.empty:
        reasons = ", ".join(sorted({stop_reason_words(reason) for reason in under["stop_reason"]}))
        share = "" if len(under) == len(runs) else f", {len(under)} of {len(runs)} seeds"
        return f"under-trained ({reasons}{share})"
    trained = runs[runs["stop_reason"].map(_given)]
    phrases = []
    if len(trained) < len(runs):
        phrases.append(ONE_PASS)
    for reason, group in trained.groupby("stop_reason", sort=True):
        epochs = group["epochs"].dropna()
        span = f" {_epochs_span(epochs)}" if not epochs.empty else ""
        if reason == "converged":
            phrases.append(f"converged after{span}" if span else "converged")
        elif reason == "schedule":
            phrases.append(f"fixed schedule of{span}" if span else "fixed schedule")
        else:
            phrases.append(stop_reason_words(str(reason)))
    return "; ".join(phrases)


def candidate_training(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per `keys` group of `runs` with its `training` summary (see `training_summary`)."""
    if runs.empty:
        return pd.DataFrame(columns=[*keys, "training"])
    rows = [(*key, training_summary(group)) for key, group in runs.groupby(keys, sort=True, dropna=False)]
    return pd.DataFrame(rows, columns=[*keys, "training"])


def loss_curve(losses: pd.DataFrame) -> pd.DataFrame:
    """A run's loss per epoch (epoch, loss, seconds) with `minutes`: training time up to the end of each epoch."""
    return losses.assign(minutes=losses["seconds"] / 60.0)


def runs_in_words(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` (with `status`) as the runs table shows them: each finished run's stop reason in words ("one pass"
    for models fitted in one pass, which are not under-trained); runs that have not finished keep blanks."""
    finished = runs["status"] == "finished"
    words = [
        stop_reason_words(reason) if done else None for reason, done in zip(runs["stop_reason"], finished, strict=True)
    ]
    flags = [is_under_trained(run) if done else None for (_, run), done in zip(runs.iterrows(), finished, strict=True)]
    return runs.assign(stop_reason=pd.Series(words, index=runs.index, dtype=object), under_trained=flags)
