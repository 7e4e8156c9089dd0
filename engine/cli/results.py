"""Figures out of the store: `gluelab results` (a part's table), `gluelab export` (a table to a file) and
`gluelab load-published` (the study's own figures into the store)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.arguments import add_store
from store.runs import CONDITIONS


def add_load_published(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    parser.set_defaults(run=load_published)


def load_published(args: argparse.Namespace) -> int:
    from store.published import PUBLISHED_SOURCE, load_published_results

    count = load_published_results(args.store)
    print(f"{count} published figures of {PUBLISHED_SOURCE} loaded into {args.store}")
    return 0


def add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", required=True)
    parser.add_argument("--condition", choices=CONDITIONS)
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    add_store(parser)
    parser.set_defaults(run=results)


def results(args: argparse.Namespace) -> int:
    print_results(args.store, args.part, args.condition, args.format)
    return 0


def print_results(store: Path, part: str, condition: str | None, fmt: str) -> None:
    """`part`'s results (mean ± std per model) as a table, CSV or JSON."""
    from engine.analysis.results_table import readable_results, results_for_part

    wide = results_for_part(store, part, condition)
    if fmt == "csv":
        print(wide.to_csv(index=False), end="")
    elif fmt == "json":
        print(wide.to_json(orient="records", indent=2))
    else:
        print(readable_results(wide).to_string(index=False))


def add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "table", help="datasets, images, runs, metrics, image_scores, artifacts, published_results or deployments"
    )
    parser.add_argument("--out", type=Path, required=True, help="file ending in .csv or .parquet")
    add_store(parser)
    parser.set_defaults(run=export)


def export(args: argparse.Namespace) -> int:
    from store.export import export_table

    rows = export_table(args.table, args.out, args.store)
    print(f"{args.table}: {rows} rows written to {args.out}")
    return 0


PARSERS = {"load-published": add_load_published, "results": add_results, "export": add_export}
