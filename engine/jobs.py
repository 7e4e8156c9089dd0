"""Jobs and requests: one (part, model, backbone, preset, seed, condition) each, and the validated grid of them.

Every problem with a requested grid is found before any job starts, so nothing is written for a
malformed request.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import TypeVar

from engine.models.registry import ModelEntry, get_model
from store import DEFAULT_STORE, dataset_parts
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

    @property
    def run_id(self) -> str:
        """Stable id of this job's run, so re-running the grid finds and skips finished work."""
        return hashlib.sha1("|".join(map(str, asdict(self).values())).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        backbone = f"/{self.backbone}" if self.backbone else ""
        return f"{self.part} {self.model}{backbone} seed {self.seed} {self.condition}"

    def key(self) -> dict:
        return asdict(self)


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
) -> list[Job]:
    """All jobs of the grid, each once; raises ValueError naming every bad value (nothing has run yet)."""
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
    if problems:
        raise ValueError("the evaluation request was refused, nothing was run:\n  " + "\n  ".join(problems))
    return [
        Job(part, model, backbone, preset, seed, condition)
        for part, (model, backbone), condition, seed in product(parts, pairs, conditions, seed_list)
    ]
