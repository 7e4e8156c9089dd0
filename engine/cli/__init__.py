"""`gluelab` command line: a table of commands, each command's module imported only when that command runs.

`COMMANDS` maps each command to the module under `engine.cli` that declares its flags beside its handler, and to the
one-line summary `gluelab --help` lists, so `gluelab --help` imports none of them and nothing heavy. A command's
module holds `PARSERS`: command name -> function adding that command's flags to its parser and setting `run`, the
handler. Adding a command is one row here and one entry in its module (tests/test_cli.py holds the two together).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # under engine.cli
    summary: str  # the line `gluelab --help` shows


COMMANDS: dict[str, Command] = {
    "generate": Command("data", "generate synthetic glue-line parts (MVTec AD layout)"),
    "import": Command("data", "validate and register a dataset folder in the results store"),
    "weights": Command("catalogue", "pretrained weights for machines without internet"),
    "load-published": Command("results", "load the study's published figures into the store"),
    "results": Command("results", "Table-5-style results of a part (mean ± std per model)"),
    "evaluate": Command("evaluation", "train and test models over parts x models x backbones x seeds x conditions"),
    "worker": Command("queue", "run the store's queued evaluation requests in order, one worker per store"),
    "requests": Command("queue", "the store's evaluation requests: queued, running and ended"),
    "cancel": Command(
        "queue", "cancel a queued request, or stop a running one (its running job is recorded cancelled)"
    ),
    "export": Command("results", "write a store table to a .csv or .parquet file"),
    "report": Command("report", "the decision report: one HTML file to sign a model change off with"),
    "deploy": Command(
        "deployment",
        "export a finished run's model with anomalib (ONNX or OpenVINO), check its scores, time it here",
    ),
    "inspect": Command(
        "deployment", "score a line's frames with a deployed model, record them, and say whether the line still holds"
    ),
    "models": Command("catalogue", "every model x backbone and whether it runs on this machine"),
    "dashboard": Command("dashboard", "open the dashboard on the results store"),
    "engineer": Command("dashboard", "who may submit and cancel evaluations on the dashboard"),
    "parts": Command("catalogue", "list the synthetic parts and their difficulty knobs"),
}


def build_parser(loaded: set[str] | None = None) -> argparse.ArgumentParser:
    """The `gluelab` parser; the flags of the commands in `loaded` (default: every command) are declared, which
    imports their modules. The others are listed with their summaries only."""
    parser = argparse.ArgumentParser(prog="gluelab", description="Glue-line anomaly-detection model workbench.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.summary)
        if loaded is None or name in loaded:
            importlib.import_module(f"engine.cli.{command.module}").PARSERS[name](sub)
    return parser


def _quiet_libraries() -> None:
    """Keep third-party deprecation notices and timm's expected head-dropping notice off the console."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|self.log).*")
    logging.getLogger("timm").setLevel(logging.ERROR)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the message, not when the handler was made."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_notices() -> None:
    """gluelab's own warnings (e.g. a flag that does not apply to every model) go to stderr as plain lines."""
    logger = logging.getLogger("gluelab")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("gluelab: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    named = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser({named} if named in COMMANDS else set()).parse_args(argv)
    _quiet_libraries()
    _show_notices()
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"gluelab {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gluelab {args.command}: interrupted", file=sys.stderr)
        return 130
