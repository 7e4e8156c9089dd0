"""What the pages read from the store, cached per (store, stamp) so any write to the store invalidates it.

The stamp is the store's last-write time, itself cached for two seconds: a grid writing results
shows up on the next rerun without every rerun paying for a fresh read of everything. Pages read
only the parts they show, so load time follows a part's size, not the store's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.analysis import line_stops
from engine.analysis.labels import backbone_name, model_name
from engine.analysis.recommendation import STUDY_HARDWARE, hardware_label
from engine.analysis.results_table import LOCAL_SOURCE, METRIC_ORDER, RUNTIME_METRICS, results_long
from store import dataset_parts, queries
from store.connection import default_store
from store.deployments import deployments as store_deployments
from store.requests import requests_table
from store.runs import HARDWARE_COLUMNS, leaderboard, run_training_losses

STAMP_SECONDS = 2
PUBLISHED_SOURCE_LABEL = "published"


def store_path() -> Path:
    """The store the dashboard reads: the store's default, which `gluelab dashboard --store` sets through the environment."""
    return default_store()


@st.cache_data(ttl=STAMP_SECONDS, show_spinner=False)
def stamp(store: str) -> str | None:
    """Last write of the store; None when there is no store file."""
    return queries.store_stamp(store)


def candidate_label(
    model: str, backbone: str, source: str, preset: str | None = None, device: str | None = None
) -> str:
    """How a model/backbone is named everywhere on the dashboard, e.g. `PaDiM / ResNet18 (paper)`; a local run on
    a GPU says so, `PaDiM / ResNet18 (paper, on cuda:0)`, so it is never taken for the CPU run of the same model."""
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


@st.cache_data(show_spinner=False, max_entries=8)
def parts(store: str, store_stamp: str) -> list[str]:
    """Parts with images, runs or published figures."""
    return queries.result_parts(store)


@st.cache_data(show_spinner=False, max_entries=32)
def part_results(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """Local aggregates over seeds and the published figures of one part, long form, labelled for display."""
    frame = with_candidates(results_long(store, part))
    frame["source"] = frame["source"].where(frame["source"] == LOCAL_SOURCE, PUBLISHED_SOURCE_LABEL)
    return frame


def results(store: str, store_stamp: str, chosen_parts: list[str]) -> pd.DataFrame:
    return pd.concat([part_results(store, store_stamp, part) for part in chosen_parts], ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=8)
def local_parts(store: str, store_stamp: str) -> list[str]:
    return dataset_parts(store)["part"].tolist()


@st.cache_data(show_spinner=False, max_entries=8)
def run_status(store: str, store_stamp: str) -> pd.DataFrame:
    return queries.run_status_counts(store)


@st.cache_data(show_spinner=False, max_entries=8)
def requests(store: str, store_stamp: str) -> pd.DataFrame:
    """Every evaluation request, newest first, with its progress (`store.requests.requests_table`)."""
    return requests_table(store)


@st.cache_data(show_spinner=False, max_entries=8)
def recent_runs(store: str, store_stamp: str) -> pd.DataFrame:
    return queries.recent_runs(store)


@st.cache_data(show_spinner=False, max_entries=16)
def runtime(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    return with_candidates(queries.runtime_table(store, part), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=16)
def deployments(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """Every deployment of `part`'s finished runs (`gluelab deploy`), labelled by candidate."""
    return with_candidates(store_deployments(store, part), LOCAL_SOURCE)


def deployments_of(store: str, store_stamp: str, chosen_parts: list[str]) -> pd.DataFrame:
    return pd.concat([deployments(store, store_stamp, part) for part in chosen_parts], ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=16)
def deviations(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    return with_candidates(queries.run_deviations(store, part), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=16)
def operating_points(store: str, store_stamp: str, chosen_parts: tuple[str, ...]) -> pd.DataFrame:
    return with_candidates(queries.operating_points(store, list(chosen_parts)), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=16)
def least_cost_points(
    store: str,
    store_stamp: str,
    chosen_parts: tuple[str, ...],
    condition: str,
    defect_rate: float,
    miss_cost: float,
    max_escape_rate: float,
) -> pd.DataFrame:
    """Each finished run's threshold of least expected cost on a line with `defect_rate` and `miss_cost` (in line
    stops) among those letting at most `max_escape_rate` of its defective test images pass."""
    scores = queries.finished_run_scores(store, list(chosen_parts), condition)
    return line_stops.least_cost_points(scores, line_stops.Line(defect_rate, miss_cost, max_escape_rate))


@st.cache_data(show_spinner=False, max_entries=16)
def part_images(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    return queries.part_images_summary(store, part)


@st.cache_data(show_spinner=False, max_entries=16)
def part_examples(store: str, store_stamp: str, part: str, condition: str) -> pd.DataFrame:
    return with_candidates(queries.part_examples(store, part, condition), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=64)
def run_example(store: str, store_stamp: str, run_id: str, image_path: str) -> pd.DataFrame:
    return with_candidates(queries.run_example(store, run_id, image_path), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=32)
def scored_images(store: str, store_stamp: str, run_id: str) -> pd.DataFrame:
    return queries.scored_images(store, run_id)


@st.cache_data(show_spinner=False, max_entries=8)
def part_root(store: str, store_stamp: str, part: str) -> str | None:
    return queries.part_root(store, part)


def selection_rows(
    store: str, store_stamp: str, chosen_parts: list[str], condition: str, source: str | None
) -> pd.DataFrame:
    """Long rows to choose from on `parts`: one condition and source, keyed by candidate and machine (`hardware`).

    Local seeds are aggregated per machine they ran on, so no figure mixes machines. The study timed its
    models on part1 only (Table 4); its candidates carry those runtimes to every part, since time per image
    does not depend on what the image shows.
    """
    rows = pd.concat([part_results_by_hardware(store, store_stamp, part) for part in chosen_parts], ignore_index=True)
    rows = rows[rows["condition"] == condition]
    if source is not None:
        rows = rows[rows["source"] == source]
    runtime_rows = rows[rows["metric"].isin(list(RUNTIME_METRICS))]
    timed = set(zip(runtime_rows["candidate"], runtime_rows["part"], strict=True))
    timed_part = part_results_by_hardware(store, store_stamp, "part1")
    published_runtime = timed_part[
        (timed_part["source"] == PUBLISHED_SOURCE_LABEL) & timed_part["metric"].isin(list(RUNTIME_METRICS))
    ]
    borrowed = [
        published_runtime[published_runtime["candidate"] == candidate].assign(part=part, condition=condition)
        for part in chosen_parts
        for candidate in rows.loc[rows["source"] == PUBLISHED_SOURCE_LABEL, "candidate"].unique()
        if (candidate, part) not in timed
    ]
    return pd.concat([rows, *borrowed], ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=16)
def part_training(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """How each finished run of `part` trained, labelled by candidate."""
    return with_candidates(queries.part_training(store, part), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=64)
def training_losses(store: str, store_stamp: str, run_id: str) -> pd.DataFrame:
    """One run's loss per epoch (empty for models fitted in one pass)."""
    return run_training_losses(run_id, store)


def with_hardware(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with HARDWARE_COLUMNS) labelled with the machine in words in a `hardware` column instead."""
    labels = [hardware_label(*machine) for machine in frame[list(HARDWARE_COLUMNS)].itertuples(index=False)]
    return frame.drop(columns=list(HARDWARE_COLUMNS)).assign(
        hardware=pd.Series(labels, index=frame.index, dtype=object)
    )


@st.cache_data(show_spinner=False, max_entries=32)
def part_results_by_hardware(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """`part_results` with local seeds aggregated per machine they ran on, and every row's machine in `hardware`.

    Published figures carry the study's GPU (`STUDY_HARDWARE`).
    """
    local = leaderboard(store, part, by_hardware=True)
    local = with_hardware(local[local["metric"].isin(list(METRIC_ORDER))]).assign(source=LOCAL_SOURCE)
    published = part_results(store, store_stamp, part)
    published = published[published["source"] == PUBLISHED_SOURCE_LABEL].assign(hardware=STUDY_HARDWARE)
    return pd.concat([with_candidates(local), published], ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=16)
def flagged_runs(store: str, store_stamp: str, chosen_parts: tuple[str, ...]) -> pd.DataFrame:
    """The flagged finished local runs of `chosen_parts` (under-trained, timed under load), labelled by candidate
    and machine (`hardware`)."""
    runs = with_hardware(queries.flagged_runs(store, list(chosen_parts))).assign(source=LOCAL_SOURCE)
    return with_candidates(runs)
