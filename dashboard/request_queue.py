"""The Runs page's request queue: submitting and cancelling (engineers only, checked in the handler itself) and
the queue as a table."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import cached_queries, roles
from engine.jobs import GridRequest, load_limits, submit
from store.requests import cancel_request

# session-state keys of the submit form's widgets, and of the last outcome each handler leaves for the page
FORM_KEYS = {
    "parts": "submit_parts",
    "models": "submit_models",
    "seeds": "submit_seeds",
    "conditions": "submit_conditions",
    "preset": "submit_preset",
    "pixel_metrics": "submit_pixel_metrics",
    "train_sizes": "submit_train_sizes",
}
SUBMIT_OUTCOME = "submit_outcome"
CANCEL_OUTCOME = "cancel_outcome"
WORKER_COMMAND = "gluelab worker --store {store}"
OUTCOME_SECONDS = 10.0


def form_request(values: Mapping[str, Any]) -> GridRequest:
    """The request the submit form's widget values (in `values`, e.g. the session state) ask for."""

    def listed(name: str) -> tuple:
        value = values.get(FORM_KEYS[name]) or ()
        return tuple(value) if isinstance(value, list | tuple) else (value,)

    seeds = values.get(FORM_KEYS["seeds"], 1)
    return GridRequest(
        parts=listed("parts"),
        models=listed("models"),
        seeds=int(seeds) if isinstance(seeds, int | float) and not isinstance(seeds, bool) else seeds,
        conditions=listed("conditions"),
        preset=str(values.get(FORM_KEYS["preset"]) or "cpu"),
        pixel_metrics=bool(values.get(FORM_KEYS["pixel_metrics"], False)),
        train_sizes=train_sizes(str(values.get(FORM_KEYS["train_sizes"]) or "all")),
    )


def train_sizes(text: str) -> tuple[Any, ...]:
    """`10 25 50 all` as (10, 25, 50, None); a word that is neither a number nor `all` is kept as it was typed, for
    the request's check to name."""
    sizes = [token for token in re.split(r"[\s,]+", text.strip()) if token]
    return tuple(None if token.lower() == "all" else int(token) if token.isdigit() else token for token in sizes) or (
        None,
    )


def grid_summary(grid: Mapping[str, Any]) -> str:
    """A request's grid in a line, e.g. `part1 · legacy, padim · 2 seeds · baseline · cpu`."""
    seeds = grid.get("seeds", 1)
    pieces = [
        ", ".join(grid.get("parts", [])),
        ", ".join(f"{m}/{b}" for m in grid.get("models", []) for b in grid.get("backbones", []))
        if grid.get("backbones")
        else ", ".join(grid.get("models", [])),
        f"{seeds} seed{'s' if seeds != 1 else ''}",
        ", ".join(grid.get("conditions", [])),
        str(grid.get("preset", "")),
    ]
    sizes = grid.get("train_sizes")
    if sizes:
        pieces.append("training images " + ", ".join("all" if size is None else str(size) for size in sizes))
    if grid.get("line"):
        pieces.append("and the line's frames")
    return " · ".join(pieces) + (" · pixel metrics" if grid.get("pixel_metrics") else "")


def refusal_lines(error: ValueError) -> list[str]:
    """The fields a refused request names, one per line (without the heading line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[1:] if len(lines) > 1 and lines[0].endswith(":") else lines


def submit_from_form(store: str) -> None:
    """The submit button's handler: queue the form's grid if this session is an engineer's; refuse and log if not."""
    cached_queries.stamp.clear()
    client = roles.client_address()
    request = form_request(st.session_state.to_dict())
    name = roles.engineer()
    if name is None:
        roles.refuse(store, client, f"submit of {grid_summary(request.as_json())}")
        tell(SUBMIT_OUTCOME, "error", "Refused: only engineers may submit evaluations. Logged.")
        return
    try:
        done = submit(request, submitted_by=name, client=client, store=store, limits=load_limits())
    except ValueError as error:
        lines = "\n".join(f"- {line}" for line in refusal_lines(error))
        tell(SUBMIT_OUTCOME, "error", f"Not queued:\n{lines}")
        return
    if done.queued:
        text = f"Queued as request {done.request_id}: {done.n_runs} runs."
        tell(SUBMIT_OUTCOME, "success", text)
    else:
        text = f"This grid is already queued as request {done.request_id} ({done.state}); it was not queued again."
        tell(SUBMIT_OUTCOME, "info", text)


def cancel_from_button(store: str, request_id: int) -> None:
    """A Cancel button's handler: cancel the request if this session is an engineer's; refuse and log if not."""
    cached_queries.stamp.clear()
    name = roles.engineer()
    if name is None:
        roles.refuse(store, roles.client_address(), f"cancel of request {request_id}")
        tell(CANCEL_OUTCOME, "error", "Refused: only engineers may cancel requests. Logged.")
        return
    state = cancel_request(int(request_id), name, store)
    if state is None:
        outcome = ("error", f"There is no request {request_id}.")
    elif state == "cancelled":
        outcome = ("success", f"Request {request_id} cancelled.")
    elif state == "running":
        outcome = ("info", f"Request {request_id} is cancelling: its worker stops the running job.")
    else:
        outcome = ("info", f"Request {request_id} had already ended ({state}).")
    tell(CANCEL_OUTCOME, *outcome)


def shown_state(state: str, cancel_requested_by: Any) -> str:
    return "cancelling" if state == "running" and isinstance(cancel_requested_by, str) else state


def requests_in_words(table: pd.DataFrame) -> pd.DataFrame:
    """One row per request as the Runs page shows it: who, when, state, progress and message."""
    done = table["runs_finished"] + table["runs_failed"]
    return pd.DataFrame(
        {
            "request": table["request_id"],
            "submitted": table["submitted_at"],
            "by": table["submitted_by"],
            "from": table["client"],
            "state": [shown_state(s, c) for s, c in zip(table["state"], table["cancel_requested_by"], strict=True)],
            "progress": (done / table["n_runs"].where(table["n_runs"] > 0)).fillna(0.0),
            "runs": [
                f"{f} finished, {x} failed of {n}"
                for f, x, n in zip(table["runs_finished"], table["runs_failed"], table["n_runs"], strict=True)
            ],
            "grid": [grid_summary(json.loads(grid)) for grid in table["grid"]],
            "message": table["message"].fillna(""),
        }
    )


REQUEST_COLUMNS = {
    "request": st.column_config.NumberColumn("Request", format="%d"),
    "submitted": st.column_config.DatetimeColumn("Submitted", format="YYYY-MM-DD HH:mm:ss"),
    "by": st.column_config.TextColumn("By"),
    "from": st.column_config.TextColumn("From"),
    "state": st.column_config.TextColumn("State"),
    "progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent"),
    "runs": st.column_config.TextColumn("Runs"),
    "grid": st.column_config.TextColumn("Grid"),
    "message": st.column_config.TextColumn("Message"),
}


def tell(key: str, kind: str, text: str) -> None:
    """Leave a handler's outcome for the page to show for the next `OUTCOME_SECONDS`."""
    st.session_state[key] = (kind, text, time.monotonic() + OUTCOME_SECONDS)


def show_outcome(key: str) -> None:
    """The message a handler left in the session, while it is recent: the Requests section reruns every few
    seconds, and a message gone at the next rerun could be missed."""
    outcome = st.session_state.get(key)
    if outcome is None:
        return
    kind, text, until = outcome
    if time.monotonic() > until:
        del st.session_state[key]
        return
    {"success": st.success, "info": st.info, "error": st.error}[kind](text)
