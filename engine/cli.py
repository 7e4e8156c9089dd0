"""`gluelab` command line. Heavy libraries are imported inside the commands that need them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from store import DEFAULT_STORE

STORE_HELP = f"results store, a DuckDB file (default: $GLUELAB_STORE or {DEFAULT_STORE})"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.ingest.importer import import_dataset
    from engine.ingest.synthetic.parts import part_number
    from engine.ingest.synthetic.plant import generate_part

    for part in args.parts:
        part_number(part)
    for part in args.parts:
        part_dir = generate_part(part, args.images, args.seed, args.out, workers=args.workers)
        print(f"{part}: {args.images} images in {part_dir}")
        if args.store:
            import_dataset("mvtec", part, part_dir, args.store)
            print(f"{part}: registered in {args.store}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from engine.ingest.importer import import_dataset

    dataset = import_dataset(args.layout, args.part, args.path, args.store, limit=args.limit)
    masks = "with masks" if dataset.has_masks else "no masks: pixel metrics will be n/a"
    print(f"{dataset.part}: {dataset.n_images} images from {dataset.source} ({masks}) -> {args.store}")
    return 0


def cmd_weights_import(args: argparse.Namespace) -> int:
    from engine.models.backbones import import_weights
    from engine.models.dsr import VQ_WEIGHTS, import_vq_weights

    path = import_vq_weights(args.file) if args.name == VQ_WEIGHTS else import_weights(args.file, args.name)
    print(f"{args.name}: weights registered at {path}")
    return 0


def cmd_parts(args: argparse.Namespace) -> int:
    from engine.ingest.synthetic.parts import knobs_table

    print(knobs_table())
    return 0


def cmd_load_published(args: argparse.Namespace) -> int:
    from store.published import PUBLISHED_SOURCE, load_published_results

    count = load_published_results(args.store)
    print(f"{count} published figures of {PUBLISHED_SOURCE} loaded into {args.store}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    _print_results(args.store, args.part, args.condition, args.format)
    return 0


def _print_results(store: Path, part: str, condition: str | None, fmt: str) -> None:
    from engine.analysis.results_table import readable_results, results_for_part

    wide = results_for_part(store, part, condition)
    if fmt == "csv":
        print(wide.to_csv(index=False), end="")
    elif fmt == "json":
        print(wide.to_json(orient="records", indent=2))
    else:
        print(readable_results(wide).to_string(index=False))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.evaluation.grid import run_grid
    from engine.evaluation.jobs import plan_grid

    jobs = plan_grid(args.parts, args.models, args.backbones, args.seeds, args.conditions, args.preset, args.store)
    summary = run_grid(jobs, args.store, force=args.force, memory_budget_gb=args.memory_budget_gb)
    print(
        f"{summary.finished} runs finished, {summary.failed} failed, {summary.skipped} already done"
        + (f", {summary.busy} left to another process running them" if summary.busy else "")
        + (f"; {summary.stale_marked} interrupted runs from earlier marked failed" if summary.stale_marked else "")
    )
    for part in dict.fromkeys(args.parts):
        print(f"\n{part}")
        _print_results(args.store, part, None, "table")
    return 1 if summary.failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from engine.models.registry import model_states

    rows = [("model", "study name", "backbone", "state")]
    rows += [(row["model"], row["paper_name"], row["backbone"] or "-", row["state"]) for row in model_states()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    project = Path(__file__).resolve().parent.parent  # holds dashboard/ and .streamlit/config.toml
    store = args.store.resolve()
    if not store.exists():
        print(f"gluelab dashboard: no store at {store} yet; the dashboard will say how to create one.", file=sys.stderr)
    print(f"gluelab dashboard: http://localhost:{args.port} (reading {store}; Ctrl-C stops it)", flush=True)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(project / "dashboard" / "app.py"),
        "--server.port",
        str(args.port),
    ]
    os.chdir(project)
    os.execve(sys.executable, command, {**os.environ, "GLUELAB_STORE": str(store)})  # signals reach Streamlit itself


def cmd_export(args: argparse.Namespace) -> int:
    from store.export import export_table

    rows = export_table(args.table, args.out, args.store)
    print(f"{args.table}: {rows} rows written to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gluelab", description="Glue-line anomaly-detection model workbench.")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate synthetic glue-line parts (MVTec AD layout)")
    generate.add_argument("--parts", nargs="+", default=["part1", "part6", "part16"], help="part1 ... part20")
    generate.add_argument(
        "--images",
        type=int,
        default=300,
        help="images per part (default 300: 60%% train, 20%% good test, 20%% defective)",
    )
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", type=Path, default=Path("data"), help="output folder (default ./data)")
    generate.add_argument(
        "--workers", type=_positive_int, default=os.cpu_count() or 1, help="processes (default: all cores)"
    )
    generate.add_argument("--store", type=Path, help="also register the parts in this results store")
    generate.set_defaults(run=cmd_generate)

    imports = commands.add_parser("import", help="validate and register a dataset folder in the results store")
    imports.add_argument("--layout", choices=["mvtec", "folder", "elpv"], required=True)
    imports.add_argument("--part", required=True, help="name the images are registered under")
    imports.add_argument("--limit", type=_positive_int, help="elpv only: at most this many images per class")
    imports.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    imports.add_argument("path", nargs="?", type=Path, help="dataset folder (not used for --layout elpv)")
    imports.set_defaults(run=cmd_import)

    weights = commands.add_parser("weights", help="pretrained weights for machines without internet")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
    weights_import = weights_commands.add_parser(
        "import", help="register a checkpoint file: a timm backbone or DSR's codebook"
    )
    weights_import.add_argument("file", type=Path)
    weights_import.add_argument(
        "--name",
        required=True,
        help="timm model name, e.g. resnet18 or wide_resnet50_2, or dsr_vq for DSR's VQ codebook",
    )
    weights_import.set_defaults(run=cmd_weights_import)

    published = commands.add_parser("load-published", help="load the study's published figures into the store")
    published.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    published.set_defaults(run=cmd_load_published)

    results = commands.add_parser("results", help="Table-5-style results of a part (mean ± std per model)")
    results.add_argument("--part", required=True)
    results.add_argument("--condition", choices=["baseline", "augmented"])
    results.add_argument("--format", choices=["table", "csv", "json"], default="table")
    results.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    results.set_defaults(run=cmd_results)

    evaluate = commands.add_parser(
        "evaluate", help="train and test models over parts x models x backbones x seeds x conditions"
    )
    evaluate.add_argument("--parts", nargs="+", required=True)
    evaluate.add_argument("--models", nargs="+", required=True, help="see `gluelab models`")
    evaluate.add_argument("--backbones", nargs="+", help="timm names (default: each model's default backbone)")
    evaluate.add_argument("--seeds", type=int, default=1, help="number of seeds, 0 ... N-1 (default 1)")
    evaluate.add_argument("--conditions", nargs="+", default=["baseline"], help="baseline and/or augmented")
    evaluate.add_argument("--preset", default="cpu", help="cpu (sized for this machine) or paper (Table B.8)")
    evaluate.add_argument(
        "--force",
        action="store_true",
        help="redo runs that already finished (each keeps its result until the new one replaces it)",
    )
    evaluate.add_argument(
        "--memory-budget-gb",
        type=_positive_float,
        help="memory one job may use before it is stopped and recorded failed"
        " (default: $GLUELAB_MEMORY_BUDGET_GB, else total RAM minus 4 GB)",
    )
    evaluate.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    evaluate.set_defaults(run=cmd_evaluate)

    export = commands.add_parser("export", help="write a store table to a .csv or .parquet file")
    export.add_argument("table", help="datasets, images, runs, metrics, image_scores, artifacts or published_results")
    export.add_argument("--out", type=Path, required=True, help="file ending in .csv or .parquet")
    export.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    export.set_defaults(run=cmd_export)

    models = commands.add_parser("models", help="every model x backbone and whether it runs on this machine")
    models.set_defaults(run=cmd_models)

    dashboard = commands.add_parser("dashboard", help="open the dashboard on the results store")
    dashboard.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    dashboard.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    dashboard.set_defaults(run=cmd_dashboard)

    parts = commands.add_parser("parts", help="list the synthetic parts and their difficulty knobs")
    parts.set_defaults(run=cmd_parts)
    return parser


def _quiet_libraries() -> None:
    """Keep third-party deprecation notices and timm's expected head-dropping notice off the console."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|self.log).*")
    logging.getLogger("timm").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"gluelab {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gluelab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
