"""The metrics gluelab records and shows, one entry each: the single place a metric is defined.

Everything that lists, labels, orders or formats metrics reads `METRICS`, and reads it when it runs
rather than copying it at import: the evaluation's name lists, the leaderboard query (runtime figures
come from `runs` columns through each entry's `source` expression), the result tables, the
dashboard's labels and number formats. Adding a metric is one entry here (and, for a computed one,
its computation in `engine.evaluation.metrics`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, overload

Level = Literal["image", "pixel", "runtime"]
Direction = Literal["higher", "lower"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Metric:
    """One metric: how it is named, read and judged.

    `direction` is None for operating points (thresholds), which are recorded but neither better
    high nor low, and are left out of the result tables (`shown` False).
    """

    name: str  # as stored in the metrics table and used in `<name>_mean` / `<name>_std` columns
    label: str  # for people, with the unit in brackets when there is one, e.g. "Inference (ms/image)"
    level: Level
    direction: Direction | None
    unit: str = ""
    digits: int = 3  # decimals shown in tables people read
    source: str | None = None  # runtime metrics: the SQL expression over a `runs` row they come from
    shown: bool = True  # a column of the result tables

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"metric name {self.name!r} must be lower case letters, digits and underscores")
        if (self.level == "runtime") != (self.source is not None):
            raise ValueError(f"metric {self.name!r}: runtime metrics, and only they, name their `runs` source")

    @property
    def short_label(self) -> str:
        """The label without its unit, e.g. "Inference"."""
        return self.label.removesuffix(f" ({self.unit})") if self.unit else self.label

    def format(self, mean: object, std: object = None) -> str:
        """`0.981 ± 0.004`, or `0.981` without a spread (one seed, published figures), `n/a` without a figure."""
        if _missing(mean):
            return "n/a"
        spread = "" if _missing(std) else f" ± {float(std):.{self.digits}f}"  # type: ignore[arg-type]
        return f"{float(mean):.{self.digits}f}{spread}"  # type: ignore[arg-type]


def _missing(value: object) -> bool:
    """None, NaN, pandas' NA or anything else that is not a number."""
    try:
        return value is None or math.isnan(value)  # type: ignore[arg-type]
    except TypeError:
        return True


# In the order tables show them.
METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("image_auroc", "Image AUROC", "image", "higher"),
        Metric("image_f1", "Image F1", "image", "higher"),
        Metric("pixel_auroc", "Pixel AUROC", "pixel", "higher"),
        Metric("pixel_f1", "Pixel F1", "pixel", "higher"),
        Metric("aupro", "AUPRO", "pixel", "higher"),
        Metric("fpr_at_full_recall", "False-alarm rate at zero escapes", "image", "lower"),
        Metric("train_min", "Training time (min)", "runtime", "lower", "min", 2, "train_seconds / 60"),
        Metric("inference_ms", "Inference (ms/image)", "runtime", "lower", "ms/image", 2, "inference_ms"),
        Metric("throughput_fps", "Throughput (images/s)", "runtime", "higher", "images/s", 2, "throughput_fps"),
        Metric("image_threshold", "Image threshold (F1-optimal)", "image", None, "score", 4, shown=False),
        Metric("pixel_threshold", "Pixel threshold (F1-optimal)", "pixel", None, "score", 4, shown=False),
        # The 95 % interval of image AUROC over the test images (bootstrap): how far one test split pins it down.
        Metric("image_auroc_low", "Image AUROC, 95 % interval low", "image", None, shown=False),
        Metric("image_auroc_high", "Image AUROC, 95 % interval high", "image", None, shown=False),
    )
}


def metric(name: str) -> Metric:
    """The entry of `name`; ValueError naming it when there is none."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


class MetricNames(Sequence[str]):
    """The names of the metrics that pass `keep`, in registry order, read afresh on every use.

    A live view rather than a tuple, so a metric added to `METRICS` reaches every list derived from it. It is
    a read-only sequence, which pandas' `isin` and Streamlit's options take as a list; `+` gives a plain list.
    """

    def __init__(self, keep: Callable[[Metric], bool]) -> None:
        self._keep = keep

    def _names(self) -> list[str]:
        return [name for name, entry in METRICS.items() if self._keep(entry)]

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __add__(self, other: Iterable[str]) -> list[str]:
        return self._names() + list(other)

    def __radd__(self, other: Iterable[str]) -> list[str]:
        return list(other) + self._names()

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence | MetricNames) else NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._names()))

    def __repr__(self) -> str:
        return f"MetricNames({self._names()!r})"


class MetricLabels(Mapping[str, str]):
    """metric name -> label, for every metric in `METRICS`, read afresh on every use."""

    def __getitem__(self, name: str) -> str:
        return METRICS[name].label

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(METRICS))

    def __len__(self) -> int:
        return len(METRICS)


def names(level: Level | None = None, *, shown_only: bool = False) -> MetricNames:
    """Live list of metric names, optionally of one level and only those the result tables show."""
    return MetricNames(
        lambda entry: (level is None or entry.level == level) and (entry.shown or not shown_only),
    )


TABLE_METRICS = names(shown_only=True)  # the columns of the result tables, in order
RUNTIME_METRICS = names("runtime")
ACCURACY_METRICS = MetricNames(lambda entry: entry.level != "runtime" and entry.direction == "higher" and entry.shown)
METRIC_LABELS = MetricLabels()


def runtime_sources() -> list[tuple[str, str]]:
    """(name, SQL expression over a `runs` row) of every runtime metric, for the leaderboard query."""
    return [(entry.name, entry.source) for entry in METRICS.values() if entry.source is not None]
