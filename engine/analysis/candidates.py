"""A store's figures as the pages and the decision report compare them: one labelled row per candidate and machine.

A candidate is a model/backbone/source/preset/device, named once (`candidate_label`) wherever it appears; the
machine its times were measured on is its `hardware` in words (`recommendation.hardware_label`, the study's
GPU for published figures). The dashboard caches each of these per store stamp (`dashboard.cached_queries`);
the decision report reads them afresh. Both then compute from the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from engine.analysis.labels import backbone_name, model_name
from engine.analysis.recommendation import STUDY_HARDWARE, hardware_label
from engine.analysis.results_table import LOCAL_SOURCE, METRIC_ORDER, RUNTIME_METRICS, results_long
from store import queries
from store.deployments import deployments as store_deployments
from store.runs import HARDWARE_COLUMNS, leaderboard

PUBLISHED_SOURCE_LABEL = "published"


def candidate_label(
    model: str, backbone: str, source: str, preset: str | None = None, device: str | None = None
) -> str:
    """How a model/backbone is named everywhere, e.g. `PaDiM / ResNet18 (paper)`; a local run on a GPU says so,
    `PaDiM / ResNet18 (paper, on cuda:0)`, so it is never taken for the CPU run of the same model."""
    name = model_name(model) + (f" / {backbone_name(backbone)}" if backbone else "")
    if source != LOCAL_SOURCE:
        return f"{name} (paper)"
    where = f"on {device}" if isinstance(device, str) and device not in ("", "cpu") else ""
    shown = ", ".join(part for part in (preset or "", where) if part)
    return f"{name} ({shown})" if shown else name


def with_candidates(frame: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """`frame` with a `candidate` label column; each distinct model/backbone/source/preset/device is labelled once."""
    keys = frame[["model", "backbone", "preset"]].assign(
        source=frame["source"] if source is None else source,
        device=frame["device"].fillna("cpu") if "device" in frame else "cpu",
    )
    distinct = keys.drop_duplicates()
    distinct["candidate"] = [
        candidate_label(m, b, s, p, d)
        for m, b, s, p, d in distinct[["model", "backbone", "source", "preset", "device"]].itertuples(index=False)
    ]
    return frame.assign(candidate=keys.merge(distinct, how="left", on=list(keys.columns))["candidate"].to_numpy())


def with_hardware(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with HARDWARE_COLUMNS) labelled with the machine in words in a `hardware` column instead."""
    labels = [hardware_label(*machine) for machine in frame[list(HARDWARE_COLUMNS)].itertuples(index=False)]
    return frame.drop(columns=list(HARDWARE_COLUMNS)).assign(
        hardware=pd.Series(labels, index=frame.index, dtype=object)
    )


def part_results(store: Path | str, part: str) -> pd.DataFrame:
    """Local aggregates over seeds and the published figures of one part, long form, labelled for display."""
    frame = with_candidates(results_long(store, part))
    frame["source"] = frame["source"].where(frame["source"] == LOCAL_SOURCE, PUBLISHED_SOURCE_LABEL)
    return frame


def part_results_by_hardware(
    store: Path | str, part: str, published: Callable[[str], pd.DataFrame] | None = None
) -> pd.DataFrame:
    """`part_results` with local seeds aggregated per machine they ran on, and every row's machine in `hardware`.

    Published figures carry the study's GPU (`STUDY_HARDWARE`); `published(part)` gives `part_results` (a cached
    one on the dashboard).
    """
    local = leaderboard(store, part, by_hardware=True)
    local = with_hardware(local[local["metric"].isin(list(METRIC_ORDER))]).assign(source=LOCAL_SOURCE)
    figures = (published or (lambda name: part_results(store, name)))(part)
    figures = figures[figures["source"] == PUBLISHED_SOURCE_LABEL].assign(hardware=STUDY_HARDWARE)
    return pd.concat([with_candidates(local), figures], ignore_index=True)


def selection_rows(
    by_hardware: Callable[[str], pd.DataFrame], parts: Sequence[str], condition: str, source: str | None
) -> pd.DataFrame:
    """Long rows to choose from on `parts`: one condition and source (None: both), keyed by candidate and machine.

    `by_hardware(part)` gives `part_results_by_hardware`. Local seeds are aggregated per machine they ran on, so no
    figure mixes machines. The study timed its models on part1 only (Table 4); its candidates carry those runtimes
    to every part, since time per image does not depend on what the image shows.
    """
    rows = pd.concat([by_hardware(part) for part in parts], ignore_index=True)
    rows = rows[rows["condition"] == condition]
    if source is not None:
        rows = rows[rows["source"] == source]
    runtime_rows = rows[rows["metric"].isin(list(RUNTIME_METRICS))]
    timed = set(zip(runtime_rows["candidate"], runtime_rows["part"], strict=True))
    timed_part = by_hardware("part1")
    published_runtime = timed_part[
        (timed_part["source"] == PUBLISHED_SOURCE_LABEL) & timed_part["metric"].isin(list(RUNTIME_METRICS))
    ]
    borrowed = [
        published_runtime[published_runtime["candidate"] == candidate].assign(part=part, condition=condition)
        for part in parts
        for candidate in rows.loc[rows["source"] == PUBLISHED_SOURCE_LABEL, "candidate"].unique()
        if (candidate, part) not in timed
    ]
    return pd.concat([rows, *borrowed], ignore_index=True)


def operating_points(store: Path | str, parts: Sequence[str]) -> pd.DataFrame:
    """Alarm counts per finished run of `parts` (`store.queries.operating_points`), labelled by candidate."""
    return with_candidates(queries.operating_points(store, list(parts)), LOCAL_SOURCE)


def flagged_runs(store: Path | str, parts: Sequence[str]) -> pd.DataFrame:
    """The flagged finished local runs of `parts` (under-trained, timed under load), labelled by candidate and
    machine (`hardware`)."""
    runs = with_hardware(queries.flagged_runs(store, list(parts))).assign(source=LOCAL_SOURCE)
    return with_candidates(runs)


def deployments(store: Path | str, part: str) -> pd.DataFrame:
    """Every deployment of `part`'s finished runs (`gluelab deploy`), labelled by candidate."""
    return with_candidates(store_deployments(store, part), LOCAL_SOURCE)
