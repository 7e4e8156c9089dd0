"""What the pages read from the store, cached per (store, stamp) so any write to the store invalidates it.

The stamp is the store's last-write time, itself cached for two seconds: a grid writing results
shows up on the next rerun without every rerun paying for a fresh read of everything. Pages read
only the parts they show, so load time follows a part's size, not the store's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.analysis import candidates, line_stops, line_watch
from engine.analysis.candidates import PUBLISHED_SOURCE_LABEL as PUBLISHED_SOURCE_LABEL
from engine.analysis.candidates import with_candidates as with_candidates
from engine.analysis.results_table import LOCAL_SOURCE
from store import dataset_parts, line, queries, stages
from store.connection import default_store
from store.requests import requests_table
from store.runs import run_training_losses

STAMP_SECONDS = 2


def store_path() -> Path:
    """The store the dashboard reads: the store's default, which `gluelab dashboard --store` sets through the environment."""
    return default_store()


@st.cache_data(ttl=STAMP_SECONDS, show_spinner=False)
def stamp(store: str) -> str | None:
    """Last write of the store; None when there is no store file."""
    return queries.store_stamp(store)


@st.cache_data(show_spinner=False, max_entries=8)
def parts(store: str, store_stamp: str) -> list[str]:
    """Parts with images, runs or published figures."""
    return queries.result_parts(store)


@st.cache_data(show_spinner=False, max_entries=32)
def part_results(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """Local aggregates over seeds and the published figures of one part, long form, labelled for display."""
    return candidates.part_results(store, part)


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
    return candidates.deployments(store, part)


def deployments_of(store: str, store_stamp: str, chosen_parts: list[str]) -> pd.DataFrame:
    return pd.concat([deployments(store, store_stamp, part) for part in chosen_parts], ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=16)
def deviations(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    return with_candidates(queries.run_deviations(store, part), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=16)
def operating_points(store: str, store_stamp: str, chosen_parts: tuple[str, ...]) -> pd.DataFrame:
    return candidates.operating_points(store, chosen_parts)


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
    """`candidates.selection_rows` from the cached `part_results_by_hardware`."""
    return candidates.selection_rows(
        lambda part: part_results_by_hardware(store, store_stamp, part), chosen_parts, condition, source
    )


@st.cache_data(show_spinner=False, max_entries=16)
def part_training(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """How each finished run of `part` trained, labelled by candidate."""
    return with_candidates(queries.part_training(store, part), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=64)
def training_losses(store: str, store_stamp: str, run_id: str) -> pd.DataFrame:
    """One run's loss per epoch (empty for models fitted in one pass)."""
    return run_training_losses(run_id, store)


@st.cache_data(show_spinner=False, max_entries=32)
def part_results_by_hardware(store: str, store_stamp: str, part: str) -> pd.DataFrame:
    """`candidates.part_results_by_hardware`: local seeds aggregated per machine, every row's machine in `hardware`."""
    return candidates.part_results_by_hardware(store, part, lambda name: part_results(store, store_stamp, name))


@st.cache_data(show_spinner=False, max_entries=16)
def flagged_runs(store: str, store_stamp: str, chosen_parts: tuple[str, ...]) -> pd.DataFrame:
    """The flagged finished local runs of `chosen_parts` (under-trained, timed under load), labelled by candidate
    and machine (`hardware`)."""
    return candidates.flagged_runs(store, chosen_parts)


@st.cache_data(show_spinner=False, max_entries=8)
def watched_deployments(store: str, store_stamp: str) -> pd.DataFrame:
    """Deployments that scored the line, labelled by candidate, the most recently watched first."""
    return with_candidates(line.watched_deployments(store), LOCAL_SOURCE)


@st.cache_data(show_spinner=False, max_entries=8)
def line_frames(store: str, store_stamp: str, run_id: str, fmt: str, runtime: str) -> pd.DataFrame:
    """Every frame a deployment scored or rejected, in the order scored."""
    return line.line_frames(store, line.DeploymentKey(run_id, fmt, runtime))


@st.cache_data(show_spinner=False, max_entries=8)
def deployment(store: str, store_stamp: str, run_id: str, fmt: str, runtime: str) -> dict:
    """A deployment's row: its file, operating point (`line_threshold`) and `line` (a dict), and its run's part."""
    rows = line.deployment_rows(store, run_id)
    row = rows[(rows["format"] == fmt) & (rows["runtime"] == runtime)].iloc[0].to_dict()
    return row | {"line": line.line_of(row)}


@st.cache_data(show_spinner=False, max_entries=8)
def training_reference(store: str, store_stamp: str, part: str) -> dict[str, list[float]]:
    """Mean grey level, clipped-pixel share and sharpness of the part's training images (read once per store stamp)."""
    return line_watch.training_reference(store, part)


@st.cache_data(show_spinner=False, max_entries=8)
def acceptable_scores(store: str, store_stamp: str, run_id: str) -> list[float]:
    """The run's scores of its part's acceptable test images."""
    return line.run_acceptable_scores(store, run_id)


@st.cache_data(show_spinner=False, max_entries=8)
def line_comparisons(store: str, store_stamp: str, run_id: str, fmt: str, runtime: str) -> list:
    """Each run that scored the deployment's frames again, its alarms beside the deployed model's (`LineComparison`)."""
    key = line.DeploymentKey(run_id, fmt, runtime)
    return line_watch.line_comparisons(
        store, line.line_rescores(store, key), run_id, deployment(store, store_stamp, run_id, fmt, runtime)["line"]
    )


@st.cache_data(show_spinner=False, max_entries=8)
def run_stages(store: str, store_stamp: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    """Seconds per stage of each of `run_ids` that recorded them."""
    return stages.run_stages(store, list(run_ids))


@st.cache_data(show_spinner=False, max_entries=16)
def learning_curve_runs(store: str, store_stamp: str, part: str, condition: str) -> pd.DataFrame:
    """The part's finished runs on all or fewer of its training images, labelled by candidate."""
    return with_candidates(queries.learning_curve_runs(store, part, condition), LOCAL_SOURCE)
