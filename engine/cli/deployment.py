"""`gluelab deploy`: a finished run's model exported with anomalib, checked against its run and timed here; `gluelab
inspect`: a line's frames scored with it, recorded, and judged against what the model was chosen on."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.arguments import add_store, non_negative_float, positive_float


def add_deploy(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "run_id", nargs="?", help="a finished run's id (the Runtime page lists them; `gluelab export runs`)"
    )
    which.add_argument(
        "--recommended",
        metavar="PART",
        help="instead of a run id: the lowest seed of the local candidate Model selection recommends for PART",
    )
    parser.add_argument(
        "--format",
        required=True,
        help="onnx (timed in ONNX Runtime and OpenVINO) or openvino (OpenVINO IR, timed in OpenVINO)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder; the model goes to OUT/weights/FORMAT/")
    line = parser.add_argument_group(
        "the line it will score (as Line stops asks it): the run's least-cost threshold there is stored with it"
    )
    line.add_argument("--defect-rate", type=positive_float, default=None, help="share defective (default 0.005)")
    line.add_argument("--miss-cost", type=non_negative_float, default=None, help="in line stops (default 20)")
    line.add_argument("--max-escape-rate", type=non_negative_float, default=None, help="share (default 0.05)")
    add_store(parser)
    parser.set_defaults(run=deploy)


def deploy(args: argparse.Namespace) -> int:
    from engine.analysis.line_stops import DEFAULT_DEFECT_RATE, DEFAULT_MAX_ESCAPE_RATE, DEFAULT_MISS_COST, Line
    from engine.evaluation.deploy import deploy_run
    from store.deployments import finished_run

    if args.recommended:
        from engine.analysis.decision import recommended_run

        args.run_id = recommended_run(args.store, args.recommended)
        print(f"deploying run {args.run_id}, recommended for {args.recommended}", file=sys.stderr)
    finished_run(args.run_id, args.store)  # an unknown or unfinished run is named before anything else
    line = Line(
        DEFAULT_DEFECT_RATE if args.defect_rate is None else args.defect_rate,
        DEFAULT_MISS_COST if args.miss_cost is None else args.miss_cost,
        DEFAULT_MAX_ESCAPE_RATE if args.max_escape_rate is None else args.max_escape_rate,
    )
    result = deploy_run(
        args.run_id,
        args.format,
        args.out,
        args.store,
        report=lambda message: print(f"  {message}", file=sys.stderr),
        point=line_point(args.run_id, args.store, line),
    )
    print(f"{result.label} ({result.run_id}) exported to {result.fmt}: {result.path}")
    print(deployment_table(result.deployments))
    point = result.point
    assert point is not None
    print(
        f"the line is scored at score >= {point.threshold:.4g}: least expected cost at {100 * line.defect_rate:g} % "
        f"defective and a miss costing {line.miss_cost:g} line stops, letting at most {100 * line.max_escape_rate:g} % "
        f"of defects pass (test set: {100 * point.line['false_positive_rate']:.1f} % of good parts flagged, "
        f"{100 * point.line['false_negative_rate']:.1f} % of defects missed)"
        + ("" if point.line["escape_limit_met"] else "; only by flagging every good part: choose another model")
    )
    return 0


def line_point(run_id: str, store: Path, line):
    """The run's least-cost threshold on `line` from its stored test scores (as Line stops chooses it), with the
    test-set rates there."""
    from engine.analysis.line_stops import least_cost_point
    from store.deployments import LinePoint
    from store.runs import run_image_scores

    scores = run_image_scores(run_id, store)
    point = least_cost_point(scores["label"] == "anomalous", scores["score"], line)
    return LinePoint(
        point.threshold,
        {
            "policy": "cost",
            "defect_rate": line.defect_rate,
            "miss_cost": line.miss_cost,
            "max_escape_rate": line.max_escape_rate,
            "false_positive_rate": point.fpr,
            "false_negative_rate": point.fnr,
            "escape_limit_met": point.escape_limit_met,
        },
    )


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


def add_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("deployment", help="the folder `gluelab deploy --out` wrote, or the deployed run's id")
    parser.add_argument(
        "--images", nargs="+", type=Path, required=True, metavar="DIR|FILE", help="frames, or folders of frames"
    )
    parser.add_argument("--runtime", help="onnxruntime or openvino (default: the first the format runs in)")
    parser.add_argument("--watch", action="store_true", help="follow the folder as the camera fills it (Ctrl-C ends)")
    parser.add_argument(
        "--idle",
        type=positive_float,
        metavar="SECONDS",
        help="with --watch: end once no frame has landed for this long (default: watch until Ctrl-C)",
    )
    add_store(parser)
    parser.set_defaults(run=inspect)


def inspect(args: argparse.Namespace) -> int:
    import threading

    from engine.evaluation.line_inspection import Inspector, frame_files, resolve_deployment, watch

    deployed = resolve_deployment(args.deployment, args.store, args.runtime)
    print(
        f"scoring {deployed.part} frames with run {deployed.key.label}: an alarm at score >= {deployed.threshold:.4g}, "
        f"{deployed.threshold_source}",
        file=sys.stderr,
    )
    inspector = Inspector(deployed, args.store)
    shown = [0]

    def progress(totals) -> None:
        seen = totals.scored + sum(totals.rejected.values())
        if seen - shown[0] >= 50:
            shown[0] = seen
            print(f"  {seen} frames, {totals.alarms} alarms, {totals.frames_per_second:.1f} frames/s", file=sys.stderr)

    stop = threading.Event()
    try:
        if args.watch:
            folders = [path for path in args.images if path.is_dir()]
            if len(folders) != 1 or len(args.images) != 1:
                raise ValueError("--watch follows one folder: give --images DIR")
            watch(inspector, folders[0], stop, args.idle, progress)
        else:
            inspector.inspect(frame_files(args.images), progress)
    except KeyboardInterrupt:
        stop.set()
    print(summary(deployed, inspector.totals, args.store))
    return 0


def summary(deployed, totals, store: Path) -> str:
    """A few lines: frames scored and rejected (with reasons), alarms against what the evaluation expects, frames per
    second, and the verdict in words."""
    from engine.analysis.line_watch import expected_alarm_rate, p_chart_limits, training_reference, verdict
    from store.line import line_frames, run_acceptable_scores

    frames = line_frames(store, deployed.key)
    scored = frames[frames["rejected"].isna()]
    rejected = "; ".join(f"{count} {reason}" for reason, count in totals.rejected.most_common())
    lines = [
        f"frames scored: {totals.scored} now, {len(scored)} in all by this deployment",
        f"frames rejected: {sum(totals.rejected.values())}" + (f" ({rejected})" if rejected else ""),
    ]
    line = deployed.line
    expected = None
    if line:
        expected = expected_alarm_rate(line["false_positive_rate"], line["false_negative_rate"], line["defect_rate"])
    alarms = f"alarms: {totals.alarms} now, {int(scored['alarm'].sum())} in all"
    if expected is not None and len(scored):
        limits = p_chart_limits(expected, len(scored))
        alarms += (
            f" ({100 * scored['alarm'].mean():.1f} % of frames; the evaluation expects {100 * expected:.1f} %, "
            f"p-chart limits {100 * limits.lower:.1f}-{100 * limits.upper:.1f} % over {len(scored)} frames)"
        )
    outside = 1 - totals.model_seconds / totals.seconds if totals.seconds else 0.0
    lines += [
        alarms,
        f"frames per second: {totals.frames_per_second:.1f} (read, pre-process, score and record; "
        f"{100 * outside:.0f} % of the time outside the model)",
    ]
    reference = training_reference(store, deployed.part) | {"score": run_acceptable_scores(store, deployed.key.run_id)}
    judged = verdict(frames, reference, expected)
    return "\n".join([*lines, f"verdict: {judged.text}"])


PARSERS = {"deploy": add_deploy, "inspect": add_inspect}
