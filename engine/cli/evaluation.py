"""`gluelab evaluate`: run a grid of jobs here (or on Ray), queue it for the store's worker, or time runs again."""

from __future__ import annotations

import argparse

from engine.cli.arguments import add_grid_flags, add_store, grid_options, train_size
from engine.cli.results import print_results
from store.runs import CONDITIONS, PRESETS


def add_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", nargs="+")
    parser.add_argument("--models", nargs="+", help="see `gluelab models`")
    parser.add_argument("--backbones", nargs="+", help="timm names (default: each model's default backbone)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds, 0 ... N-1 (default 1)")
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=[CONDITIONS[0]],
        help=f"{' and/or '.join(CONDITIONS)} (default {CONDITIONS[0]})",
    )
    parser.add_argument(
        "--preset",
        default=PRESETS[0],
        help=f"one of {', '.join(PRESETS)}: cpu is sized for this machine, paper follows Table B.8 (default {PRESETS[0]})",
    )
    parser.add_argument(
        "--train-sizes",
        nargs="+",
        type=train_size,
        default=[None],
        metavar="N|all",
        help="fit each job on N of the part's training images, drawn by the seed and nested (the 25 contain the 10),"
        " testing on the full test split: a learning curve (default: all)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="redo runs that already finished (each keeps its result until the new one replaces it)",
    )
    parser.add_argument(
        "--pixel-metrics",
        action="store_true",
        help="with --submit: require pixel metrics, refusing parts without defect masks (they are computed"
        " wherever masks exist anyway)",
    )
    parser.add_argument(
        "--submit",
        action="store_true",
        help="queue the grid for the store's worker (`gluelab worker`) instead of running it here;"
        " checked against the limits in gluelab.toml",
    )
    add_grid_flags(parser)
    parser.add_argument(
        "--retime",
        nargs="+",
        metavar="RUN_ID",
        help="measure these finished runs' latency and throughput again (each job is fitted again, one at a time),"
        " with the load they are timed under; a quiet measurement replaces the figures and clears the flag",
    )
    add_store(parser)
    parser.set_defaults(run=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    if args.retime:
        return retime(args)
    missing = [flag for flag, value in (("--parts", args.parts), ("--models", args.models)) if not value]
    if missing:
        raise ValueError(f"{' and '.join(missing)} required (or --retime RUN_ID… to time finished runs again)")
    if args.submit:
        from engine.cli.queue import submit

        return submit(args)
    from engine.evaluation.grid import run_grid
    from engine.jobs import plan_grid

    options = grid_options(args)
    jobs = plan_grid(
        args.parts, args.models, args.backbones, args.seeds, args.conditions, args.preset, args.store, args.train_sizes
    )
    summary = run_grid(jobs, args.store, force=args.force, **options)
    print(
        f"{summary.finished} runs finished, {summary.failed} failed, {summary.skipped} already done"
        + (f", {summary.busy} left to another process running them" if summary.busy else "")
        + (f"; {summary.stale_marked} interrupted runs from earlier marked failed" if summary.stale_marked else "")
    )
    for part in dict.fromkeys(args.parts):
        print(f"\n{part}")
        if None in args.train_sizes:
            print_results(args.store, part, None, "table")
        if any(size is not None for size in args.train_sizes):
            for condition in dict.fromkeys(args.conditions):
                print(learning_curve_table(args.store, part, condition))
    print(time_by_stage(args.store, [job.run_id for job in jobs]))
    return 1 if summary.failed else 0


def learning_curve_table(store: str, part: str, condition: str) -> str:
    """The part's learning curves in `condition`: AUROC by training images per candidate, and where each reaches 95 %."""
    from engine.analysis import learning_curves
    from engine.analysis.candidates import with_candidates
    from engine.analysis.results_table import LOCAL_SOURCE
    from store.queries import learning_curve_runs

    table = learning_curves.curves(with_candidates(learning_curve_runs(store, part, condition), LOCAL_SOURCE))
    if table.empty:
        return f"no learning curve for {part} ({condition}): a candidate needs runs at two training sizes"
    lines = [f"learning curves ({condition}): candidate, training images, image AUROC, pixel AUROC (mean ± std, seeds)"]
    for row in table.itertuples():
        figures = [
            "n/a" if row_mean != row_mean else f"{row_mean:.3f}" + ("" if row_std != row_std else f" ± {row_std:.3f}")
            for row_mean, row_std in (
                (row.image_auroc_mean, row.image_auroc_std),
                (row.pixel_auroc_mean, row.pixel_auroc_std),
            )
        ]
        lines.append(f"  {row.candidate:<36}{row.n_train:>6}  {figures[0]:>15}  {figures[1]:>15}  {row.seeds}")
    lines += [f"  {sentence}." for sentence in learning_curves.sentences(table)]
    return "\n".join(lines)


def time_by_stage(store: str, run_ids: list[str]) -> str:
    """Where the grid's finished runs spent their time, stage by stage, largest first."""
    from store.stages import STAGES, run_stages

    timed = run_stages(store, run_ids)
    if timed.empty:
        return ""
    totals = timed.groupby("stage")["seconds"].sum().sort_values(ascending=False)
    lines = [f"\ntime by stage over {timed['run_id'].nunique()} runs ({totals.sum():.1f} s):"]
    lines += [
        f"  {seconds:8.2f} s  {100 * seconds / totals.sum():4.1f} %  {STAGES[stage]}"
        for stage, seconds in totals.items()
    ]
    return "\n".join(lines)


def retime(args: argparse.Namespace) -> int:
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


PARSERS = {"evaluate": add_evaluate}
