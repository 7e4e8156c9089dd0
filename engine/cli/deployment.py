"""`gluelab deploy`: a finished run's model exported with anomalib, checked against its run and timed here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.arguments import add_store


def add_deploy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="a finished run's id (the Runtime page lists them; `gluelab export runs`)")
    parser.add_argument(
        "--format",
        required=True,
        help="onnx (timed in ONNX Runtime and OpenVINO) or openvino (OpenVINO IR, timed in OpenVINO)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder; the model goes to OUT/weights/FORMAT/")
    add_store(parser)
    parser.set_defaults(run=deploy)


def deploy(args: argparse.Namespace) -> int:
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


PARSERS = {"deploy": add_deploy}
