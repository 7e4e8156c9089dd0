"""What this machine can run: `gluelab models` (models x backbones), `gluelab weights import` (pretrained weights
for machines without internet) and `gluelab parts` (the synthetic parts and their difficulty knobs)."""

from __future__ import annotations

import argparse
from itertools import groupby
from pathlib import Path


def add_weights(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="weights_command", required=True)
    weights_import = commands.add_parser("import", help="register a checkpoint file: a timm backbone or DSR's codebook")
    weights_import.add_argument("file", type=Path)
    weights_import.add_argument(
        "--name",
        required=True,
        help="timm model name, e.g. resnet18 or wide_resnet50_2, or dsr_vq for DSR's VQ codebook",
    )
    weights_import.set_defaults(run=import_weights)


def import_weights(args: argparse.Namespace) -> int:
    from engine.models.backbones import import_weights as import_backbone_weights
    from engine.models.dsr.model import VQ_WEIGHTS, import_vq_weights

    path = import_vq_weights(args.file) if args.name == VQ_WEIGHTS else import_backbone_weights(args.file, args.name)
    print(f"{args.name}: weights registered at {path}")
    return 0


def add_models(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=models)


def models(args: argparse.Namespace) -> int:
    from engine.models.catalogue import model_states

    print(models_table(model_states()))
    return 0


def models_table(states: list[dict]) -> str:
    """One line per model: the backbones it runs on here and those it lacks, each lack explained once below.

    `states` are `model_states()` rows. What a machine lacks is usually shared (resnet18's weights by every
    CNN model), so each distinct instruction is printed once and rows point to it by number.
    """
    notes: dict[str, int] = {}
    rows = [("model", "study name", "runs here", "needs an import first")]
    for model, group in groupby(states, key=lambda row: row["model"]):
        entries = list(group)
        ready = [row["backbone"] or "yes (no backbone)" for row in entries if row["state"] == "runnable"]
        lacking = []
        for row in entries:
            if row["state"] != "runnable":
                number = notes.setdefault(row["state"], len(notes) + 1)
                lacking.append(f"{row['backbone'] or 'its own weights'} [{number}]")
        rows.append((model, entries[0]["paper_name"], ", ".join(ready) or "-", ", ".join(lacking) or "-"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines += [""] + [f"[{number}] {instruction}" for instruction, number in notes.items()]
    return "\n".join(lines)


def add_parts(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=parts)


def parts(args: argparse.Namespace) -> int:
    from engine.ingest.synthetic.parts import knobs_table

    print(knobs_table())
    return 0


PARSERS = {"weights": add_weights, "models": add_models, "parts": add_parts}
