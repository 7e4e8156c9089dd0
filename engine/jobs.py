"""Jobs and requests: one (part, model, backbone, preset, seed, condition) each, and the validated grid of them.

Every problem with a requested grid is found before any job starts, so nothing is written for a
malformed request.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import product
from pathlib import Path
from typing import Any, TypeVar

from engine.models.catalogue import get_model
from engine.models.registry import ModelEntry
from engine.plant_config import config_path, read_table
from store import DEFAULT_STORE, dataset_parts, training_split_sizes
from store.line import DeploymentKey, scored_frames_up_to
from store.requests import Submitted, submit_request
from store.runs import CONDITIONS, PRESETS

LOG = logging.getLogger("gluelab.evaluation")
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    part: str
    model: str
    backbone: str  # '' for models without a backbone
    preset: str
    seed: int
    condition: str
    train_size: int | None = None  # training images drawn by the seed (nested: `PartData.training_subset`); None: all

    @property
    def run_id(self) -> str:
        """Stable id of this job's run, so re-running the grid finds and skips finished work. A run on all the
        training images keeps the id it had before runs could take fewer."""
        return hashlib.sha1("|".join(map(str, self.key().values())).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        backbone = f"/{self.backbone}" if self.backbone else ""
        size = f" on {self.train_size} training images" if self.train_size is not None else ""
        return f"{self.part} {self.model}{backbone} seed {self.seed} {self.condition}{size}"

    def key(self) -> dict:
        """The run's identity: its six key columns, and its training size when it does not take every image."""
        key = asdict(self)
        if self.train_size is None:
            del key["train_size"]
        return key


def unique(values: Iterable[T]) -> list[T]:
    """`values` without repeats, in their first order: a value given twice is one job, not two."""
    return list(dict.fromkeys(values))


def _seed_list(seeds: int | Sequence[int], problems: list[str]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            problems.append(f"--seeds must be at least 1 (got {seeds})")
        return list(range(seeds))
    return unique(seeds)


def _model_backbones(
    entries: dict[str, ModelEntry], backbones: list[str] | None, problems: list[str]
) -> list[tuple[str, str]]:
    """(model, backbone) pairs; a --backbones value no requested model can use is refused, not dropped."""
    pairs = []
    for name, entry in entries.items():
        if not entry.backbones:
            pairs.append((name, ""))
            continue
        for backbone in backbones or [entry.default_backbone]:
            if backbone in entry.backbones:
                pairs.append((name, backbone))
            else:
                problems.append(
                    f"model {name!r} cannot take backbone {backbone!r}; it takes {', '.join(entry.backbones)}"
                )
    without = [name for name, entry in entries.items() if not entry.backbones]
    if backbones and without:
        given, names = " ".join(backbones), ", ".join(without)
        takes = "takes" if len(without) == 1 else "take"
        if len(without) == len(entries):
            problems.append(f"--backbones {given}: {names} {takes} no backbone; leave --backbones out")
        else:
            LOG.warning("--backbones %s: %s %s no backbone and run(s) once without one", given, names, takes)
    return pairs


def plan_grid(
    parts: list[str],
    models: list[str],
    backbones: list[str] | None,
    seeds: int | Sequence[int],
    conditions: list[str],
    preset: str,
    store: Path | str = DEFAULT_STORE,
    train_sizes: Sequence[int | None] = (None,),
) -> list[Job]:
    """All jobs of the grid, each once; raises ValueError naming every bad value (nothing has run yet).

    `train_sizes`: how many of each part's training images each job fits on (None: all of them); a size larger than
    a part's training split, or below a model's `min_train_images`, is refused naming the split or the model."""
    parts, models, conditions = unique(parts), unique(models), unique(conditions)
    backbones = unique(backbones) if backbones else None
    problems: list[str] = []
    seed_list = _seed_list(seeds, problems)
    if preset not in PRESETS:
        problems.append(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    problems += [
        f"unknown condition {c!r}; choose from {', '.join(CONDITIONS)}" for c in conditions if c not in CONDITIONS
    ]
    entries = {}
    for name in models:
        try:
            entries[name] = get_model(name)
        except ValueError as error:
            problems.append(str(error))
    pairs = _model_backbones(entries, backbones, problems)
    registered = set(dataset_parts(store)["part"]) if Path(store).exists() else set()
    problems += [
        f"part {part!r} is not in the store {store}; add it with `gluelab generate --store` or `gluelab import`"
        for part in parts
        if part not in registered
    ]
    sizes = unique(train_sizes) or [None]
    problems += _size_problems(sizes, entries, [part for part in parts if part in registered], store)
    if problems:
        raise ValueError("the evaluation request was refused, nothing was run:\n  " + "\n  ".join(problems))
    return [
        Job(part, model, backbone, preset, seed, condition, size)
        for part, (model, backbone), condition, size, seed in product(parts, pairs, conditions, sizes, seed_list)
    ]


def _size_problems(
    sizes: list[int | None], entries: dict[str, ModelEntry], parts: list[str], store: Path | str
) -> list[str]:
    """Training sizes that are not whole numbers, exceed a part's training split or fall below a model's minimum."""
    given = [size for size in sizes if size is not None]
    problems = [
        f"training size {size!r}: give a whole number of images of at least 1, or all"
        for size in given
        if isinstance(size, bool) or not isinstance(size, int) or size < 1
    ]
    given = [size for size in given if isinstance(size, int) and not isinstance(size, bool) and size >= 1]
    if not given:
        return problems
    splits = training_split_sizes(store) if Path(store).exists() else {}
    for part in parts:
        problems += [
            f"training size {size}: part {part!r} has only {splits.get(part, 0)} training images; choose at most "
            f"{splits.get(part, 0)}, or all"
            for size in given
            if size > splits.get(part, 0)
        ]
    for entry in entries.values():
        problems += [
            f"training size {size}: {entry.paper_name} fits on at least {entry.min_train_images} training images"
            for size in given
            if size < entry.min_train_images
        ]
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Requests: a grid as someone asks for it, checked against the store and the plant's limits before it is queued.


@dataclass(frozen=True)
class RequestLimits:
    """How much one request may ask for, from the `[requests]` table of the config file (`load_limits`).

    `max_runs`: runs one request may make; `max_queued`: requests waiting at once; `max_seeds`: seeds per
    request (the study used 5).
    """

    max_runs: int = 200
    max_queued: int = 10
    max_seeds: int = 10


def load_limits(path: Path | None = None) -> RequestLimits:
    """The `[requests]` limits of the config file (defaults where it or a key is missing); a bad value raises
    ValueError naming the file and the key."""
    path = path or config_path()
    limits = read_table("requests", RequestLimits, path)
    for key, value in asdict(limits).items():
        if value < 1:
            raise ValueError(f"{path}: [requests] {key} must be a whole number of at least 1 (got {value!r})")
    return limits


@dataclass(frozen=True)
class LineFrames:
    """The frames a deployment (run, format, runtime) scored on the line, up to and including frame `up_to` (its
    `line_frames.frame_id`): what a re-evaluation requested from the Line monitor scores again with its runs."""

    run_id: str
    format: str
    runtime: str
    up_to: int


@dataclass(frozen=True)
class GridRequest:
    """What an evaluation request asks for: the grid's axes and whether its parts must give pixel metrics.

    `pixel_metrics` asks for pixel AUROC, F1 and AUPRO, which need every part's defect masks; without it,
    pixel metrics are still computed where masks exist. `line`: once the grid is done, each of its finished runs
    also scores these frames of the line (the Line monitor compares its alarms there with the deployed model's).
    """

    parts: tuple[str, ...]
    models: tuple[str, ...]
    backbones: tuple[str, ...] = ()
    seeds: int = 1
    conditions: tuple[str, ...] = (CONDITIONS[0],)
    preset: str = PRESETS[0]
    pixel_metrics: bool = False
    line: LineFrames | None = None
    train_sizes: tuple[int | None, ...] = (None,)  # None: all the part's training images

    def as_json(self) -> dict:
        grid = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        for name, default in (("line", None), ("train_sizes", [None])):
            if grid[name] == default:  # a grid without them hashes as it did before requests could hold them
                del grid[name]
        return grid

    @classmethod
    def from_json(cls, grid: dict) -> GridRequest:
        known = {field.name for field in fields(cls)}
        values: dict[str, Any] = {
            key: tuple(v) if isinstance(v, list) else v for key, v in grid.items() if key in known
        }
        if isinstance(values.get("line"), dict):
            values["line"] = LineFrames(**values["line"])
        return cls(**values)


def plan_request(
    request: GridRequest, store: Path | str = DEFAULT_STORE, limits: RequestLimits | None = None
) -> list[Job]:
    """The request's jobs; raises ValueError naming every field that is wrong (nothing is queued or run).

    On top of `plan_grid`'s checks: no empty selection, seeds within `limits.max_seeds`, masks on every part
    when pixel metrics are asked for, and at most `limits.max_runs` runs.
    """
    limits = limits or RequestLimits()
    problems = [
        f"{name}: choose at least one" for name in ("parts", "models", "conditions") if not getattr(request, name)
    ]
    seeds = request.seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int):
        problems.append(f"seeds: must be a whole number (got {seeds!r})")
        seeds = 1
    elif seeds > limits.max_seeds:
        problems.append(f"seeds: {seeds} is more than the limit of {limits.max_seeds} (max_seeds in the config)")
        seeds = 1
    if request.pixel_metrics and Path(store).exists():
        registered = dataset_parts(store).set_index("part")["has_masks"]
        problems += [
            f"pixel_metrics: part {part!r} has no defect masks, so it cannot give pixel metrics;"
            " untick pixel metrics or leave the part out"
            for part in request.parts
            if part in registered.index and not registered[part]
        ]
    jobs: list[Job] = []
    try:
        jobs = plan_grid(
            list(request.parts),
            list(request.models),
            list(request.backbones) or None,
            seeds,
            list(request.conditions),
            request.preset,
            store,
            list(request.train_sizes),
        )
    except ValueError as error:
        problems += [line.strip() for line in str(error).splitlines()[1:]]
    if not problems and len(jobs) > limits.max_runs:
        problems.append(
            f"runs: the request makes {len(jobs)} runs, more than the limit of {limits.max_runs} per request"
            " (max_runs in the config); split it"
        )
    if request.line is not None:
        problems += _line_problems(request.line, store)
    if problems:
        raise ValueError("the evaluation request was refused, nothing was queued:\n  " + "\n  ".join(problems))
    return jobs


def _line_problems(line: LineFrames, store: Path | str) -> list[str]:
    key = DeploymentKey(line.run_id, line.format, line.runtime)
    if not Path(store).exists() or scored_frames_up_to(store, key, line.up_to) == 0:
        return [f"line: the deployment {key.label} scored no frame up to frame {line.up_to}; nothing to score again"]
    return []


def submit(
    request: GridRequest,
    submitted_by: str,
    client: str,
    store: Path | str = DEFAULT_STORE,
    limits: RequestLimits | None = None,
) -> Submitted:
    """Check `request` (`plan_request`) and queue it for the store's worker; the same grid already queued or
    running is not queued twice (`Submitted.queued` is False and names the open request)."""
    limits = limits or load_limits()
    jobs = plan_request(request, store, limits)
    return submit_request(
        request.as_json(), [job.run_id for job in jobs], submitted_by, client, store, max_queued=limits.max_queued
    )
