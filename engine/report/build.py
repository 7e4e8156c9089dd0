"""Build the decision report of a question on a store: check the question, decide it, lay the decision out.

`gluelab report` and the dashboard's Download decision report button both call `build_report`, so a file
downloaded from a page equals the command's for the same choices, apart from the date it was made.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from engine.analysis import decision as deciding
from engine.analysis.candidates import with_candidates
from engine.analysis.decision import Decision, Question
from engine.analysis.deployment import time_criteria
from engine.analysis.flags import RUN_FLAGS
from engine.analysis.recommendation import STUDY_HARDWARE, hardware_label
from engine.analysis.results_table import LOCAL_SOURCE
from engine.report import examples, sections
from engine.report.html import document
from store import queries
from store.metrics import ACCURACY_METRICS, METRIC_LABELS, METRICS

REPORT_FILE_NAME = "decision_report.html"


class ReportError(ValueError):
    """The question cannot be reported on this store; the message names the value or file at fault."""


def check_question(store: Path | str, question: Question) -> None:
    """ReportError naming the first thing that keeps `question` from being reported on `store`."""
    if not Path(store).is_file():
        raise ReportError(f"there is no results store at {store}")
    known = queries.result_parts(store)
    if not known:
        raise ReportError(
            f"the store {store} holds no parts, runs or published figures; fill it with `gluelab evaluate` or "
            f"`gluelab load-published --store {store}`"
        )
    if not question.parts:
        raise ReportError("choose at least one part")
    for part in question.parts:
        if part not in known:
            raise ReportError(f"part {part!r} is not in the store {store}; it has {', '.join(known)}")
    metrics = [question.accuracy, *(limit.metric for limit in question.limits)]
    for metric in metrics:
        if metric not in METRICS:
            raise ReportError(f"{metric!r} is not a metric; the metrics are {', '.join(METRICS)}")
    if question.accuracy not in ACCURACY_METRICS:
        raise ReportError(
            f"criterion {question.accuracy!r} is not an accuracy metric: the report weighs one of "
            f"{', '.join(ACCURACY_METRICS)} against inference time"
        )
    if question.time not in time_criteria():
        raise ReportError(f"time {question.time!r} is not one of {', '.join(time_criteria())}")
    unknown = question.included - {flag.name for flag in RUN_FLAGS}
    if unknown:
        raise ReportError(
            f"no run flag is named {', '.join(sorted(unknown))}; the flags are {', '.join(f.name for f in RUN_FLAGS)}"
        )


def build_report(store: Path | str, question: Question, now: datetime | None = None) -> str:
    """The decision report's HTML for `question` on `store`; ReportError where it cannot be reported."""
    check_question(store, question)
    made = deciding.decide(deciding.load_figures(store, question), question)
    used = queries.finished_runs_on(store, list(question.parts), question.condition)
    if question.source == "published":
        used = used.iloc[0:0]
    body = f"<h1>Decision report: {', '.join(question.parts)}</h1>"
    body += (
        f'<p class="subtitle">Which anomaly-detection model to run on the glue line, compared on '
        f"{METRIC_LABELS[question.accuracy]} against inference time, and what it means on the line.</p>"
    )
    body += sections.question_section(question)
    body += sections.recommendation_section(made)
    body += sections.trade_off_section(made)
    body += sections.line_section(made)
    body += sections.examples_section(made, _examples(store, made))
    body += sections.left_out_section(made, _departures(store, question))
    facts = _provenance(store, question, used, now or datetime.now(UTC))
    body += sections.provenance_section(facts, list(used["run_id"]), question.command(store))
    return document(f"Decision report: {', '.join(question.parts)}", body)


def _examples(store: Path | str, made: Decision) -> dict[str, list[examples.PartExamples | None]]:
    """Per recommended local candidate (once, however many machines recommend it), its pictures on each part."""
    local = [
        card.candidate
        for machine, card in made.recommendations.items()
        if card is not None and machine != STUDY_HARDWARE
    ]
    condition = made.question.condition
    return {
        candidate: [examples.part_examples(store, part, condition, candidate) for part in made.question.parts]
        for candidate in dict.fromkeys(local)
    }


def _departures(store: Path | str, question: Question) -> dict[str, pd.DataFrame]:
    if question.source == "published":
        return {}
    return {part: with_candidates(queries.run_deviations(store, part), LOCAL_SOURCE) for part in question.parts}


def runs_digest(store: Path | str, question: Question, run_ids: list[str]) -> str:
    """sha256 of the used runs' per-image results (run id, image, label, score), in a fixed order: the same digest
    means the report was built from the same results."""
    scores = queries.finished_run_scores(store, list(question.parts), question.condition)
    scores = scores[scores["run_id"].isin(run_ids)]
    digest = hashlib.sha256()
    for run_id, label, score in scores[["run_id", "label", "score"]].itertuples(index=False):
        digest.update(f"{run_id}\t{label}\t{score!r}\n".encode())
    return digest.hexdigest()


def _provenance(store: Path | str, question: Question, used: pd.DataFrame, now: datetime) -> list[tuple[str, str]]:
    machines = [
        f"{hardware_label(processor, gpu, cpus)}"
        + (f", {memory:g} GB of memory" if pd.notna(memory) else "")
        + f": {count} run{'s' if count != 1 else ''}"
        for (processor, gpu, cpus, memory), count in used.groupby(
            ["processor", "gpu", "cpu_count", "memory_gb"], dropna=False, sort=True
        )
        .size()
        .items()
    ]
    if question.source != "local":
        machines.append(f"{STUDY_HARDWARE}: the study's published figures")
    return [
        ("gluelab version", version("gluelab")),
        ("Results store", Path(store).name),
        ("Runs used", f"{len(used)} finished local runs of {', '.join(question.parts)} in {question.condition}"),
        ("sha256 of their per-image results", runs_digest(store, question, list(used["run_id"]))),
        ("Machines", "; ".join(machines) or "none"),
        ("Made", now.strftime("%Y-%m-%d %H:%M UTC")),
    ]
