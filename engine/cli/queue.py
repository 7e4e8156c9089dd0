"""The store's request queue: `gluelab evaluate --submit` queues a grid, `gluelab worker` runs the queue,
`gluelab requests` lists it and `gluelab cancel` ends a request."""

from __future__ import annotations

import argparse
import getpass
import socket

from engine.cli.arguments import add_grid_flags, add_store, grid_options


def submit(args: argparse.Namespace) -> int:
    """Queue `gluelab evaluate`'s grid for the store's worker instead of running it here."""
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
    from engine.jobs import GridRequest
    from engine.jobs import submit as submit_request
    from store.requests import running_worker

    request = GridRequest(
        tuple(args.parts),
        tuple(args.models),
        tuple(args.backbones or ()),
        args.seeds,
        tuple(args.conditions),
        args.preset,
        args.pixel_metrics,
        train_sizes=tuple(args.train_sizes),
    )
    submitted = submit_request(request, getpass.getuser(), f"{socket.gethostname()} (shell)", args.store)
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


def add_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="stop when the queue is empty instead of waiting for more")
    parser.add_argument(
        "--wait", action="store_true", help="if another worker serves the store, wait for it to stop instead of exiting"
    )
    add_grid_flags(parser)
    add_store(parser)
    parser.set_defaults(run=worker)


def worker(args: argparse.Namespace) -> int:
    from engine.evaluation.worker import Worker

    options = grid_options(args)
    served = Worker(args.store, once=args.once, report=lambda line: print(line, flush=True), grid_options=options)
    ran = served.serve(wait=args.wait)
    print(f"the queue of {args.store} is empty; {ran} request(s) run")
    return 0


def add_requests(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    parser.set_defaults(run=requests)


def requests(args: argparse.Namespace) -> int:
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
    serving = running_worker(args.store)
    print(
        f"\nworker: {serving}" if serving else f"\nno worker serves {args.store}: `gluelab worker --store {args.store}`"
    )
    return 0


def add_cancel(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id", type=int, help="the request's number (`gluelab requests`)")
    add_store(parser)
    parser.set_defaults(run=cancel)


def cancel(args: argparse.Namespace) -> int:
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


PARSERS = {"worker": add_worker, "requests": add_requests, "cancel": add_cancel}
