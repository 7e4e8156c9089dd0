"""`gluelab report`: the decision report, one HTML file for the people who sign a model change off.

The flags ask what Model selection and Line stops ask; the file is the one their Download decision report button
writes for the same choices (`engine.report.build_report`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from engine.cli.arguments import add_store, non_negative_float, positive_float, positive_int
from store.runs import CONDITIONS

SOURCES = ("local", "published", "both")
POLICIES = ("cost", "f1", "zero_escape")


def share(text: str) -> float:
    """A share between 0 and 1, e.g. 0.005 for 5 in 1000."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, e.g. 0.05 for 5 % (got {text})")
    return value


def html_path(text: str) -> Path:
    if not text.lower().endswith((".html", ".htm")):
        raise argparse.ArgumentTypeError(f"must be a file name ending in .html (got {text!r})")
    return Path(text)


def add_report(parser: argparse.ArgumentParser) -> None:
    question = parser.add_argument_group("the question (as Model selection asks it)")
    question.add_argument("--parts", nargs="+", required=True, metavar="PART")
    question.add_argument(
        "--criteria",
        nargs="+",
        default=["image_auroc"],
        metavar="METRIC",
        help="the accuracy metric weighed against inference time, e.g. image_auroc or pixel_auroc "
        "(inference_ms may be named too; it is always the other criterion)",
    )
    question.add_argument(
        "--floor",
        nargs="+",
        default=[],
        metavar="METRIC=VALUE",
        help="acceptability limits: the least acceptable value of a higher-is-better metric (image_auroc=0.9), "
        "the most acceptable of a lower-is-better one (inference_ms=50)",
    )
    question.add_argument(
        "--weights",
        nargs="+",
        default=[],
        metavar="METRIC=WEIGHT",
        help="choose the front point closest to these weights (e.g. image_auroc=0.7) instead of the knee",
    )
    question.add_argument(
        "--include",
        nargs="+",
        default=[],
        metavar="FLAG",
        help="put back flagged runs: under_trained, timed_under_load",
    )
    question.add_argument(
        "--time", default="eager", help="eager (as evaluated), or a runtime of `gluelab deploy` (onnxruntime, openvino)"
    )
    question.add_argument("--condition", choices=CONDITIONS, default=CONDITIONS[0])
    question.add_argument("--source", choices=SOURCES, default="both", help="the figures compared (default: both)")
    line = parser.add_argument_group("the line (as Line stops asks it)")
    line.add_argument("--defect-rate", type=positive_float, default=None, help="share defective, e.g. 0.005")
    line.add_argument("--miss-cost", type=non_negative_float, default=None, help="a missed defect, in line stops")
    line.add_argument("--max-escape-rate", type=share, default=None, help="share of defects that may pass (0.05)")
    line.add_argument("--policy", choices=POLICIES, default="cost", help="how each run's threshold is chosen")
    line.add_argument("--parts-per-shift", type=positive_int, default=None)
    line.add_argument("--minutes-per-stop", type=non_negative_float, default=None)
    parser.add_argument("--out", type=html_path, required=True, help="the report file, ending in .html")
    add_store(parser)
    parser.set_defaults(run=report)


def pairs(words: list[str], flag: str) -> dict[str, float]:
    """`METRIC=VALUE` words as a mapping; ValueError naming the word that is not one."""
    found = {}
    for word in words:
        name, _, value = word.partition("=")
        try:
            found[name] = float(value)
        except ValueError:
            raise ValueError(f"{flag} {word!r}: write METRIC=NUMBER, e.g. image_auroc=0.9") from None
    return found


def question_of(args: argparse.Namespace):
    """The report's `decision.Question` from the flags; ValueError naming a value that cannot be one."""
    from engine.analysis.decision import SOURCES as SOURCE_VALUES
    from engine.analysis.decision import Question
    from engine.analysis.line_stops import DEFAULT_DEFECT_RATE, DEFAULT_MAX_ESCAPE_RATE, DEFAULT_MISS_COST, Line, Shift
    from engine.analysis.recommendation import INFERENCE
    from engine.analysis.selection import Constraint
    from store.metrics import METRICS

    accuracy = [name for name in args.criteria if name != INFERENCE.metric]
    if len(accuracy) != 1:
        raise ValueError(
            f"--criteria {' '.join(args.criteria)}: name one accuracy metric (it is weighed against inference time)"
        )
    limits = []
    for name, bound in pairs(args.floor, "--floor").items():
        if name not in METRICS:
            raise ValueError(f"--floor {name}: not a metric; the metrics are {', '.join(METRICS)}")
        higher = METRICS[name].direction == "higher"
        limits.append(Constraint(name, floor=bound) if higher else Constraint(name, ceiling=bound))
    weights = pairs(args.weights, "--weights")
    unknown = set(weights) - {accuracy[0], INFERENCE.metric}
    if unknown:
        raise ValueError(f"--weights {', '.join(sorted(unknown))}: weigh {accuracy[0]} or {INFERENCE.metric} only")
    if accuracy[0] in weights and INFERENCE.metric in weights and abs(sum(weights.values()) - 1) > 1e-9:
        raise ValueError(f"--weights must add up to 1 (got {sum(weights.values()):g})")
    if any(not 0 <= weight <= 1 for weight in weights.values()):
        raise ValueError("--weights: each weight lies between 0 and 1")
    weight = weights.get(accuracy[0], 1 - weights[INFERENCE.metric] if INFERENCE.metric in weights else None)
    line = Line(
        DEFAULT_DEFECT_RATE if args.defect_rate is None else args.defect_rate,
        DEFAULT_MISS_COST if args.miss_cost is None else args.miss_cost,
        DEFAULT_MAX_ESCAPE_RATE if args.max_escape_rate is None else args.max_escape_rate,
    )
    return Question(
        tuple(dict.fromkeys(args.parts)),
        accuracy=accuracy[0],
        condition=args.condition,
        source=SOURCE_VALUES.get(args.source),
        limits=tuple(limits),
        accuracy_weight=weight,
        included=frozenset(args.include),
        time=args.time,
        line=line,
        policy=args.policy,
        shift=Shift(args.parts_per_shift, args.minutes_per_stop),
    )


def report(args: argparse.Namespace) -> int:
    from engine.report import build_report

    started = time.perf_counter()
    page = build_report(args.store, question_of(args))
    write_atomically(args.out, page)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - started:.1f} s; "
        "open it in a browser, or print it to PDF from there"
    )
    return 0


def write_atomically(path: Path, content: str) -> None:
    """`content` into `path`, never leaving a half-written file there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's owner-only one
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


PARSERS = {"report": add_report}
