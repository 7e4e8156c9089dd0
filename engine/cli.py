"""`gluelab` command line. Heavy libraries are imported inside the commands that need them."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import socket
import sys
import warnings
from itertools import groupby
from pathlib import Path

from store import DEFAULT_STORE
from store.runs import CONDITIONS, PRESETS

SECRETS_FILE = Path(__file__).resolve().parent.parent / ".streamlit" / "secrets.toml"
STORE_HELP = f"results store, a DuckDB file (default: $GLUELAB_STORE or {DEFAULT_STORE})"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _registered_here(part_dirs: list[Path], store: Path | None, replace: bool) -> dict[Path, list[str]]:
    """Parts `store` has registered at each of `part_dirs`; refuses to overwrite them unless `replace`."""
    from store import dataset_parts

    if store is None or not store.exists():
        return {}
    registered = dataset_parts(store)
    roots = [Path(root).resolve() for root in registered["root"]]
    found = {
        part_dir: [part for part, root in zip(registered["part"], roots, strict=True) if root == part_dir.resolve()]
        for part_dir in part_dirs
    }
    found = {part_dir: parts for part_dir, parts in found.items() if parts}
    if found and not replace:
        held = "; ".join(f"{part_dir} holds {', '.join(parts)}" for part_dir, parts in found.items())
        raise FileExistsError(
            f"{held}, registered in {store}: generating over it would change the images its runs were scored on. "
            "Choose another --out, or add --replace to regenerate and register again"
        )
    return found


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text})")
    return value


def _png_path(text: str) -> Path:
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"must be a file name ending in .png (got {text!r})")
    return Path(text)


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.ingest.importer import import_dataset
    from engine.ingest.synthetic.parts import part_number
    from engine.ingest.synthetic.plant import generate_part, plan_part

    parts = list(dict.fromkeys(args.parts))
    for part in parts:
        part_number(part)
    plan_part(args.images, args.train)  # a bad split is refused before anything is written
    if args.sheet:
        from engine.ingest.synthetic.sheet import write_sheet

        path = write_sheet(parts, args.seed, args.sheet, args.images)
        print(f"contact sheet of {', '.join(parts)} (seed {args.seed}, {args.images}-image parts): {path}")
        return 0
    store = args.store if args.store else (DEFAULT_STORE if DEFAULT_STORE.exists() else None)
    registered = _registered_here([args.out / part for part in parts], store, args.replace)
    for part in parts:
        part_dir = generate_part(part, args.images, args.seed, args.out, workers=args.workers, n_train=args.train)
        print(f"{part}: {args.images} images in {part_dir}")
        names = [part] if args.store else []
        names += [name for name in registered.get(args.out / part, []) if name not in names]
        for name in names:
            import_dataset("mvtec", name, part_dir, store or DEFAULT_STORE)
            print(f"{name}: registered in {store}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from engine.analysis.image_sizes import sizes_in_words
    from engine.ingest.importer import import_dataset
    from store import part_images

    dataset = import_dataset(
        args.layout,
        args.part,
        args.path,
        args.store,
        limit=args.limit,
        warn=lambda path, why: print(f"warning: {path}: {why}", file=sys.stderr),
    )
    masks = "with masks" if dataset.has_masks else "no masks: pixel metrics will be n/a"
    sizes = sizes_in_words(part_images(dataset.part, args.store))
    print(f"{dataset.part}: {dataset.n_images} images ({sizes}) from {dataset.source} ({masks}) -> {args.store}")
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


def _grid_options(args: argparse.Namespace) -> dict:
    """`run_grid`'s options from the flags `gluelab evaluate` and `gluelab worker` share."""
    if args.address and args.executor != "ray":
        raise ValueError("--address names a Ray cluster: add --executor ray")
    return {
        "memory_budget_gb": args.memory_budget_gb,
        "feature_cache_gb": args.feature_cache_gb,
        "device": args.device or "auto",
        "executor": args.executor,
        "address": args.address,
    }


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.retime:
        return _retime(args)
    missing = [flag for flag, value in (("--parts", args.parts), ("--models", args.models)) if not value]
    if missing:
        raise ValueError(f"{' and '.join(missing)} required (or --retime RUN_ID… to time finished runs again)")
    if args.submit:
        return _submit(args)
    from engine.evaluation.grid import run_grid
    from engine.jobs import plan_grid

    options = _grid_options(args)
    jobs = plan_grid(args.parts, args.models, args.backbones, args.seeds, args.conditions, args.preset, args.store)
    summary = run_grid(jobs, args.store, force=args.force, **options)
    print(
        f"{summary.finished} runs finished, {summary.failed} failed, {summary.skipped} already done"
        + (f", {summary.busy} left to another process running them" if summary.busy else "")
        + (f"; {summary.stale_marked} interrupted runs from earlier marked failed" if summary.stale_marked else "")
    )
    for part in dict.fromkeys(args.parts):
        print(f"\n{part}")
        _print_results(args.store, part, None, "table")
    return 1 if summary.failed else 0


def _submit(args: argparse.Namespace) -> int:
    """Queue the grid for the store's worker instead of running it here."""
    where = [
        flag
        for flag, value in (
            ("--force", args.force),
            ("--device", args.device),
            ("--executor", args.executor != "local"),
            ("--address", args.address),
            ("--memory-budget-gb", args.memory_budget_gb),
            ("--feature-cache-gb", args.feature_cache_gb),
        )
        if value
    ]
    if where:
        raise ValueError(
            f"{', '.join(where)}: where and how a queued grid runs is the worker's to say; give them to `gluelab worker`"
        )
    from engine.jobs import GridRequest, submit
    from store.requests import running_worker

    request = GridRequest(
        tuple(args.parts),
        tuple(args.models),
        tuple(args.backbones or ()),
        args.seeds,
        tuple(args.conditions),
        args.preset,
        args.pixel_metrics,
    )
    submitted = submit(request, getpass.getuser(), f"{socket.gethostname()} (shell)", args.store)
    if submitted.queued:
        print(f"queued as request {submitted.request_id} ({submitted.n_runs} runs) in {args.store}")
    else:
        print(f"the same grid is already {submitted.state} as request {submitted.request_id}; not queued again")
    worker = running_worker(args.store)
    print(
        f"worker: {worker}"
        if worker
        else f"no worker serves {args.store} yet: start one with `gluelab worker --store {args.store}`"
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from engine.evaluation.worker import Worker

    options = _grid_options(args)
    worker = Worker(args.store, once=args.once, report=lambda line: print(line, flush=True), grid_options=options)
    ran = worker.serve(wait=args.wait)
    print(f"the queue of {args.store} is empty; {ran} request(s) run")
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    from store.requests import requests_table, running_worker

    table = requests_table(args.store) if args.store.exists() else None
    if table is None or table.empty:
        print(f"no evaluation requests in {args.store}")
    else:
        shown = table.assign(
            runs=[
                f"{f}/{n} finished" + (f", {x} failed" if x else "")
                for f, n, x in zip(table.runs_finished, table.n_runs, table.runs_failed, strict=True)
            ],
            submitted=table.submitted_at.dt.strftime("%Y-%m-%d %H:%M"),
            state=[
                s if s != "running" or not c else "cancelling"
                for s, c in zip(table.state, table.cancel_requested_by, strict=True)
            ],
        )
        columns = ["request_id", "state", "submitted", "submitted_by", "runs", "message"]
        print(shown[columns].fillna("").to_string(index=False))
    worker = running_worker(args.store)
    print(
        f"\nworker: {worker}" if worker else f"\nno worker serves {args.store}: `gluelab worker --store {args.store}`"
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from store.requests import cancel_request

    state = cancel_request(args.request_id, getpass.getuser(), args.store)
    if state is None:
        raise ValueError(f"no request {args.request_id} in {args.store} (`gluelab requests` lists them)")
    if state == "running":
        print(f"request {args.request_id} is running: its worker stops the running job and records it cancelled")
    elif state == "cancelled":
        print(f"request {args.request_id} is cancelled")
    else:
        print(f"request {args.request_id} had already ended ({state}); nothing to cancel")
    return 0


def _retime(args: argparse.Namespace) -> int:
    """Time finished runs again; 1 when any of them is still flagged as timed under load."""
    given = [
        flag
        for flag, value in (("--parts", args.parts), ("--models", args.models), ("--backbones", args.backbones))
        if value
    ]
    if given or args.force:
        given += ["--force"] if args.force else []
        raise ValueError(f"--retime times finished runs again as they ran; leave out {', '.join(given)}")
    from engine.evaluation.retime import retime_runs

    retimed = retime_runs(args.retime, args.store, args.memory_budget_gb, args.feature_cache_gb)
    flagged = [run for run in retimed if run.recorded and run.timing.load.get("contended")]
    if flagged:
        print(
            f"{len(flagged)} of {len(retimed)} runs are still flagged as timed under load; time them again when the machine is quiet"
        )
    return 1 if flagged else 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from engine.evaluation.deploy import deploy_run

    result = deploy_run(
        args.run_id, args.format, args.out, args.store, report=lambda message: print(f"  {message}", file=sys.stderr)
    )
    print(f"{result.label} ({result.run_id}) exported to {result.fmt}: {result.path}")
    print(deployment_table(result.deployments))
    return 0


def deployment_table(deployments: list) -> str:
    """One line per runtime: batch-1 latency, throughput, the eager latency of the same session and the speed-up."""
    rows = [("runtime", "latency ms", "images/s", "eager ms", "faster than eager", "max score difference")]
    for d in deployments:
        rows.append(
            (
                d.runtime,
                f"{d.latency_ms:.2f}",
                f"{d.throughput_fps:.1f}",
                f"{d.eager_latency_ms:.2f}",
                f"{d.eager_latency_ms / d.latency_ms:.2f}x",
                f"{d.max_score_difference:.2g}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) for row in rows)


def cmd_models(args: argparse.Namespace) -> int:
    from engine.models.registry import model_states

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


LOOPBACK = "127.0.0.1"
WILDCARDS = ("0.0.0.0", "::")


def dashboard_command(project: Path, port: int, address: str, secrets: Path | None = None) -> list[str]:
    """The `streamlit run` command line: bound to `address`, printing a URL without any network look-up, reading
    its secrets from `secrets` when given (else `.streamlit/secrets.toml`)."""
    # A set browser.serverAddress is what Streamlit prints instead of asking checkip.amazonaws.com for the
    # machine's external IP (streamlit/web/bootstrap.py); on a wildcard address it names this host.
    shown = socket.gethostname() if address in WILDCARDS else address
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(project / "dashboard" / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--browser.serverAddress",
        "localhost" if address == LOOPBACK else shown,
        "--browser.gatherUsageStats",
        "false",
        *(["--secrets.files", str(secrets)] if secrets is not None else []),
    ]


def cmd_dashboard(args: argparse.Namespace) -> int:
    from store import read_store

    project = Path(__file__).resolve().parent.parent  # holds dashboard/ and .streamlit/config.toml
    store = args.store.resolve()
    if store.exists():
        with read_store(store):  # a folder, a foreign or damaged file is refused here, in one line
            pass
    else:
        print(f"gluelab dashboard: no store at {store} yet; the dashboard will say how to create one.", file=sys.stderr)
    host = "localhost" if args.address == LOOPBACK else args.address
    reach = (
        "this machine only; --address 0.0.0.0 opens it to the network"
        if args.address == LOOPBACK
        else f"listening on {args.address}: reachable from other machines"
    )
    secrets = args.secrets.resolve() if args.secrets else None
    if secrets is not None and not secrets.is_file():
        raise FileNotFoundError(
            f"--secrets {secrets}: no such file (`gluelab engineer set-passphrase --secrets` writes one)"
        )
    print(f"gluelab dashboard: http://{host}:{args.port} ({reach}; reading {store}; Ctrl-C stops it)", flush=True)
    os.chdir(project)
    command = dashboard_command(project, args.port, args.address, secrets)
    os.execve(sys.executable, command, {**os.environ, "GLUELAB_STORE": str(store)})  # signals reach Streamlit itself


def read_new_passphrase() -> str:
    """The new passphrase: typed twice without echo on a terminal, or the first line of stdin for scripts."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New engineer passphrase: ")
    if getpass.getpass("Once more: ") != first:
        raise ValueError("the two passphrases differ; nothing was written")
    return first


def cmd_engineer_set_passphrase(args: argparse.Namespace) -> int:
    from dashboard.roles import set_passphrase

    set_passphrase(args.secrets, read_new_passphrase())
    print(f"engineer passphrase set in {args.secrets} ([engineers] passphrase_hash); restart `gluelab dashboard`")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from store.export import export_table

    rows = export_table(args.table, args.out, args.store)
    print(f"{args.table}: {rows} rows written to {args.out}")
    return 0


def _device(text: str) -> str:
    from engine.devices import parse_device

    try:
        return parse_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_grid_flags(parser: argparse.ArgumentParser) -> None:
    """Where and how jobs run: shared by `gluelab evaluate` and `gluelab worker`."""
    from engine.devices import DEVICE_HELP

    parser.add_argument("--device", type=_device, help=f"{DEVICE_HELP} (default auto)")
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: one job at a time on this machine (default); ray: every job as a task on a Ray cluster"
        " (pip install -e '.[ray]')",
    )
    parser.add_argument(
        "--address", help="with --executor ray: the cluster's address, HOST:PORT (default: a local Ray)"
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=_positive_float,
        help="memory one job may use before it is stopped and recorded failed"
        " (default: $GLUELAB_MEMORY_BUDGET_GB, else total RAM minus 4 GB)",
    )
    parser.add_argument(
        "--feature-cache-gb",
        type=_non_negative_float,
        help="size limit of the frozen-feature cache kept beside the store (STORE.features/), least recently"
        " used files evicted first; 0 turns it off (default: $GLUELAB_FEATURE_CACHE_GB, else 10)",
    )


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
    generate.add_argument(
        "--train",
        type=_positive_int,
        metavar="N",
        help="training images among them (default 60%%); the rest split evenly into good and defective test images",
    )
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", type=Path, default=Path("data"), help="output folder (default ./data)")
    generate.add_argument(
        "--workers", type=_positive_int, default=os.cpu_count() or 1, help="processes (default: all cores)"
    )
    generate.add_argument("--store", type=Path, help="also register the parts in this results store")
    generate.add_argument(
        "--replace",
        action="store_true",
        help="regenerate part folders a store has registered, and register them again",
    )
    generate.add_argument(
        "--sheet",
        type=_png_path,
        metavar="FILE.png",
        help="instead of writing the parts, draw one row per part: a normal, an over- and an under-exposed"
        " acceptable frame, and one defect of each type with its mask outlined",
    )
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
    results.add_argument("--condition", choices=CONDITIONS)
    results.add_argument("--format", choices=["table", "csv", "json"], default="table")
    results.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    results.set_defaults(run=cmd_results)

    evaluate = commands.add_parser(
        "evaluate", help="train and test models over parts x models x backbones x seeds x conditions"
    )
    evaluate.add_argument("--parts", nargs="+")
    evaluate.add_argument("--models", nargs="+", help="see `gluelab models`")
    evaluate.add_argument("--backbones", nargs="+", help="timm names (default: each model's default backbone)")
    evaluate.add_argument("--seeds", type=int, default=1, help="number of seeds, 0 ... N-1 (default 1)")
    evaluate.add_argument(
        "--conditions",
        nargs="+",
        default=[CONDITIONS[0]],
        help=f"{' and/or '.join(CONDITIONS)} (default {CONDITIONS[0]})",
    )
    evaluate.add_argument(
        "--preset",
        default=PRESETS[0],
        help=f"one of {', '.join(PRESETS)}: cpu is sized for this machine, paper follows Table B.8 (default {PRESETS[0]})",
    )
    evaluate.add_argument(
        "--force",
        action="store_true",
        help="redo runs that already finished (each keeps its result until the new one replaces it)",
    )
    evaluate.add_argument(
        "--pixel-metrics",
        action="store_true",
        help="with --submit: require pixel metrics, refusing parts without defect masks (they are computed"
        " wherever masks exist anyway)",
    )
    evaluate.add_argument(
        "--submit",
        action="store_true",
        help="queue the grid for the store's worker (`gluelab worker`) instead of running it here;"
        " checked against the limits in gluelab.toml",
    )
    _add_grid_flags(evaluate)
    evaluate.add_argument(
        "--retime",
        nargs="+",
        metavar="RUN_ID",
        help="measure these finished runs' latency and throughput again (each job is fitted again, one at a time),"
        " with the load they are timed under; a quiet measurement replaces the figures and clears the flag",
    )
    evaluate.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    evaluate.set_defaults(run=cmd_evaluate)

    worker = commands.add_parser(
        "worker", help="run the store's queued evaluation requests in order, one worker per store"
    )
    worker.add_argument("--once", action="store_true", help="stop when the queue is empty instead of waiting for more")
    worker.add_argument(
        "--wait", action="store_true", help="if another worker serves the store, wait for it to stop instead of exiting"
    )
    _add_grid_flags(worker)
    worker.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    worker.set_defaults(run=cmd_worker)

    queue = commands.add_parser("requests", help="the store's evaluation requests: queued, running and ended")
    queue.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    queue.set_defaults(run=cmd_requests)

    cancel = commands.add_parser(
        "cancel", help="cancel a queued request, or stop a running one (its running job is recorded cancelled)"
    )
    cancel.add_argument("request_id", type=int, help="the request's number (`gluelab requests`)")
    cancel.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    cancel.set_defaults(run=cmd_cancel)

    export = commands.add_parser("export", help="write a store table to a .csv or .parquet file")
    export.add_argument(
        "table", help="datasets, images, runs, metrics, image_scores, artifacts, published_results or deployments"
    )
    export.add_argument("--out", type=Path, required=True, help="file ending in .csv or .parquet")
    export.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    export.set_defaults(run=cmd_export)

    deploy = commands.add_parser(
        "deploy",
        help="export a finished run's model with anomalib (ONNX or OpenVINO), check its scores, time it here",
    )
    deploy.add_argument("run_id", help="a finished run's id (the Runtime page lists them; `gluelab export runs`)")
    deploy.add_argument(
        "--format",
        required=True,
        help="onnx (timed in ONNX Runtime and OpenVINO) or openvino (OpenVINO IR, timed in OpenVINO)",
    )
    deploy.add_argument("--out", type=Path, required=True, help="folder; the model goes to OUT/weights/FORMAT/")
    deploy.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    deploy.set_defaults(run=cmd_deploy)

    models = commands.add_parser("models", help="every model x backbone and whether it runs on this machine")
    models.set_defaults(run=cmd_models)

    dashboard = commands.add_parser("dashboard", help="open the dashboard on the results store")
    dashboard.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    dashboard.add_argument(
        "--address",
        default=LOOPBACK,
        help=f"address to listen on (default {LOOPBACK}, this machine only; 0.0.0.0 for every interface)",
    )
    dashboard.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    dashboard.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help=f"secrets file to read instead of {SECRETS_FILE}: the engineers' passphrase hash or an [auth] section",
    )
    dashboard.set_defaults(run=cmd_dashboard)

    engineer = commands.add_parser("engineer", help="who may submit and cancel evaluations on the dashboard")
    engineer_commands = engineer.add_subparsers(dest="engineer_command", required=True)
    set_passphrase = engineer_commands.add_parser(
        "set-passphrase",
        help="set the passphrase engineers sign in with (asked twice; read from stdin when it is not a terminal)",
    )
    set_passphrase.add_argument(
        "--secrets",
        type=Path,
        default=SECRETS_FILE,
        metavar="FILE",
        help=f"secrets file to write the [engineers] passphrase_hash into, keeping the rest (default {SECRETS_FILE})",
    )
    set_passphrase.set_defaults(run=cmd_engineer_set_passphrase)

    parts = commands.add_parser("parts", help="list the synthetic parts and their difficulty knobs")
    parts.set_defaults(run=cmd_parts)
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
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
