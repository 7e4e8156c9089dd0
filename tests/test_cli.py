"""The `gluelab` command: a table of commands whose modules load only when their command runs."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import subprocess
import sys

import engine.cli
from engine.cli import COMMANDS, build_parser

HEAVY = ("torch", "anomalib", "pandas", "streamlit", "duckdb", "lightning", "timm")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_in_the_table_is_declared_by_its_module_and_every_declared_command_is_in_the_table():
    declared = {}
    for module in pkgutil.iter_modules(engine.cli.__path__):
        if module.name == "__main__":  # running it would run the command line
            continue
        parsers = getattr(importlib.import_module(f"engine.cli.{module.name}"), "PARSERS", {})
        declared |= {name: module.name for name in parsers}
    assert declared == {name: command.module for name, command in COMMANDS.items()}


def test_every_command_has_a_handler_and_its_flags_once_its_module_is_loaded():
    commands = _subparsers(build_parser())
    assert list(commands) == list(COMMANDS)
    for name, parser in commands.items():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        leaves = list(nested[0].choices.values()) if nested else [parser]
        for leaf in leaves:
            assert callable(leaf.get_default("run")), name


def test_the_help_lists_every_command_with_its_summary_and_loads_nothing_heavy():
    code = "import sys; from engine.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\n"
    code += f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name, command in COMMANDS.items():
        assert name in out
        assert " ".join(command.summary.split()[:3]) in " ".join(out.split())
    assert out.strip().splitlines()[-1] == "[]"


def test_a_command_loads_only_its_own_module():
    code = "import sys; from engine.cli import main\ntry:\n main(['requests', '--help'])\nexcept SystemExit: pass\n"
    code += "print(sorted(m for m in sys.modules if m.startswith('engine.cli.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == str(["engine.cli.arguments", "engine.cli.queue"])


def test_a_grid_s_own_process_and_a_worker_s_load_no_model_library(tmp_path):
    """The grid process reads parts and watches its jobs, and the worker hands requests to it: the models' libraries
    load once per grid, in the job server its jobs are forked from (seconds per process otherwise)."""
    store = tmp_path / "store.duckdb"
    code = (
        "import sys; from engine.cli import main\n"
        "import engine.evaluation.grid, engine.evaluation.retime, engine.cli.evaluation, engine.cli.queue\n"
        f"assert main(['worker', '--once', '--store', {str(store)!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'anomalib', 'lightning', 'albumentations', 'timm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
