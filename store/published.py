"""The study's published numbers (Chen et al. 2025), kept beside local runs as their own source.

`store/reference/paper_results.csv` holds every per-model figure the paper publishes, in long form:
source_table, part, condition, model, backbone (empty where the model has none), metric, mean, std
(empty where the paper gives a single value). Table 4's runtime rows were re-assigned to models by
the paper's own statements; treat its Student-Teacher / Memory-Bank runtime mapping as published
data, not ground truth.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pandas as pd

from store.connection import DEFAULT_STORE, insert_frame, read_store, write_store

PUBLISHED_SOURCE = "Chen et al. 2025"
PUBLISHED_CSV = files("store") / "reference" / "paper_results.csv"


def read_published_csv() -> pd.DataFrame:
    frame = pd.read_csv(
        PUBLISHED_CSV, dtype={"backbone": "string"}, keep_default_na=False, na_values={"mean": [""], "std": [""]}
    )
    frame.insert(0, "source", PUBLISHED_SOURCE)
    return frame


def load_published_results(store: Path | str = DEFAULT_STORE) -> int:
    """Put the study's figures into the store, replacing any earlier copy; returns the row count."""
    frame = read_published_csv()
    with write_store(store) as con:
        con.execute("DELETE FROM published_results WHERE source = ?", [PUBLISHED_SOURCE])
        insert_frame(con, "published_results", frame)
    return len(frame)


def published_results(store: Path | str = DEFAULT_STORE, part: str | None = None) -> pd.DataFrame:
    """Published figures in long form, optionally for one part."""
    with read_store(store) as con:
        return con.execute(
            "SELECT * FROM published_results WHERE ? IS NULL OR part = ? ORDER BY part, condition, model, backbone, metric",
            [part, part],
        ).df()
