"""Is a part's test split large enough to tell its candidates apart?

Each run stores image AUROC's 95 % interval over its test images (`engine.evaluation.metrics.auroc_interval`). With
one seed, that interval is the figure's error bar (`error_bars`); with several, the seeds' standard deviation is.

Two candidates are told apart when their intervals do not overlap. The interval's half-width shrinks about as one
over the square root of the number of defective images n (the scarcer class sets AUROC's spread), so intervals of
half-widths h1 and h2 around figures d apart stop overlapping at about n' = n·((h1 + h2)/d)² defective images:
`more_defects_needed` returns n' − n, rounded up.
"""

from __future__ import annotations

import math

import pandas as pd

INTERVAL = ("image_auroc_low", "image_auroc_high")


def error_bars(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`rows` (long: candidate, source, metric, mean, std, n_seeds) of `metric` with `plus` and `minus` bars and
    `bar` saying what they are: the standard deviation over seeds, or, for the image AUROC of a candidate with one
    seed, its 95 % interval over the test images."""
    chosen = rows[rows["metric"] == metric].copy()
    chosen["plus"] = chosen["minus"] = chosen["std"]
    chosen["bar"] = ["std over seeds" if pd.notna(std) else "" for std in chosen["std"]]
    if metric != "image_auroc":
        return chosen
    keys = [column for column in ("source", "candidate") if column in rows.columns]
    bounds = rows[rows["metric"].isin(INTERVAL)].pivot_table(index=keys, columns="metric", values="mean")
    if bounds.empty:
        return chosen
    chosen = chosen.join(bounds, on=keys)
    single = chosen["std"].isna() & chosen[INTERVAL[0]].notna()
    chosen.loc[single, "plus"] = chosen.loc[single, INTERVAL[1]] - chosen.loc[single, "mean"]
    chosen.loc[single, "minus"] = chosen.loc[single, "mean"] - chosen.loc[single, INTERVAL[0]]
    chosen.loc[single, "bar"] = "95 % interval over the test images"
    return chosen.drop(columns=list(INTERVAL))


def more_defects_needed(
    first: tuple[float, float, float], second: tuple[float, float, float], defective: int
) -> int | None:
    """Defective test images to add so that two candidates' intervals, each (figure, low, high), stop overlapping:
    0 when they do not overlap now, None when the figures are equal (no number of images separates them)."""
    (a, a_low, a_high), (b, b_low, b_high) = sorted((first, second), reverse=True)
    if a_low > b_high:
        return 0
    distance = a - b
    if distance <= 0:
        return None
    half_widths = (a - a_low) + (b_high - b)
    return max(1, math.ceil(round(defective * (half_widths / distance) ** 2 - defective, 9)))  # no float dust


def separation_note(
    first: str, second: str, figures: dict[str, tuple[float, float, float]], defective: int
) -> str | None:
    """A sentence when the test split cannot separate two candidates (their image AUROC intervals overlap)."""
    needed = more_defects_needed(figures[first], figures[second], defective)
    if needed == 0:
        return None
    if needed is None:
        return f"{first} and {second} score the same image AUROC: more test images will not separate them"
    return (
        f"the image AUROC intervals of {first} and {second} overlap on these {defective} defective test images: "
        f"collect at least {needed} more defective images to separate them"
    )
