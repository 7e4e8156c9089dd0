"""The report's sections, in the order a reader signs off by: what was asked, the answer, the trade-off behind it,
what it means on the line, what the model fails on, what was left out, and where every figure comes from.

Every figure is the `Decision`'s (`engine.analysis.decision`), worded and charted by the functions the dashboard's
pages use (`recommendation`, `line_stop_notes`, `charts`); a section only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from engine.analysis.charts import line_stops_chart, ranked_front_table, short_label, trade_off_chart
from engine.analysis.decision import Decision, Question, source_name
from engine.analysis.deployment import time_criteria
from engine.analysis.flags import RUN_FLAGS
from engine.analysis.line_stop_notes import (
    POLICY_NAMES,
    RATES_EXPLAINED,
    figure_labels,
    notes_for_part,
)
from engine.analysis.recommendation import INFERENCE, NO_RECOMMENDATION, Recommendation
from engine.analysis.results_table import LOCAL_SOURCE
from engine.report.examples import PartExamples
from engine.report.html import chart, paragraph, picture, table, text
from store.metrics import METRIC_LABELS

SECTIONS = (
    "The question",
    "The recommendation",
    "The trade-off",
    "On the line",
    "What it fails on",
    "Left out, and departures from the study",
    "Provenance",
)


def section(title: str, body: str) -> str:
    return (
        f'<section><h2 id="{text(title.lower().replace(" ", "-").replace(",", ""))}">{text(title)}</h2>{body}</section>'
    )


def question_section(question: Question) -> str:
    accuracy = METRIC_LABELS[question.accuracy]
    limits = [
        f"{METRIC_LABELS[limit.metric]} at least {limit.floor:g}"
        if limit.floor is not None
        else f"{METRIC_LABELS[limit.metric]} at most {limit.ceiling:g}"
        for limit in question.limits
    ]
    weight = question.accuracy_weight
    rule = (
        "the knee of each machine's accuracy/time front (a compromise where more of one criterion costs "
        "disproportionately much of the other)"
        if weight is None
        else f"the front point closest to the weights {weight:.0%} accuracy, {1 - weight:.0%} speed"
    )
    flags = "; ".join(
        f"{flag.label} runs {'put back' if flag.name in question.included else 'left out'}" for flag in RUN_FLAGS
    )
    line, shift = question.line, question.shift
    rows = [
        ("Parts", ", ".join(question.parts) + (" (each candidate counts with its worst figure across them)" if question.several_parts else "")),
        ("Criteria", f"{accuracy}, higher is better, against inference time in ms per image, lower is better ({time_criteria()[question.time]})"),
        ("Acceptability limits", "; ".join(limits) or "none"),
        ("Rule", rule),
        ("Flagged runs", flags),
        ("Condition", question.condition),
        ("Figures from", {"local": "local runs only", "published": "the study's published figures only"}.get(source_name(question.source), "local runs and the study's published figures")),
        ("Defect rate on the line", f"{100 * line.defect_rate:g} % of parts made"),
        ("Cost of a missed defect", f"{line.miss_cost:g} line stops"),
        ("Maximum escape rate", f"{100 * line.max_escape_rate:g} % of defective parts" if line.max_escape_rate < 1 else "no limit"),
        ("Threshold policy", POLICY_NAMES[question.policy]),
        ("Parts per shift", str(shift.parts) if shift.parts else "not given: figures per 1000 parts made"),
        ("Minutes lost per line stop", f"{shift.minutes_per_stop:g}" if shift.minutes_per_stop is not None else "not given"),
    ]  # fmt: skip
    body = '<dl class="question">' + "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in rows) + "</dl>"
    return section(SECTIONS[0], body)


def recommendation_card(card: Recommendation | None) -> str:
    """The page's recommendation card: heading, figures and why (or why there is none)."""
    if card is None:
        return f'<div class="note warning">{text(NO_RECOMMENDATION)}</div>'
    body = f'<h3 class="heading">{text(card.heading)}</h3><p class="figures">{text(card.figures)}.</p>'
    body += f'<p class="why">Why: {text(card.why)}.</p>'
    if card.not_clearly_worse:
        body += paragraph(
            "Within one standard deviation of the front, so not clearly worse: " + ", ".join(card.not_clearly_worse),
            "caption",
        )
    return f'<div class="recommendation">{body}</div>'


def escape_sentence(decision: Decision, candidate: str) -> str:
    """The recommended local candidate's escape rate per part with its 95 % interval, against the limit."""
    limit = decision.question.line.max_escape_rate
    sentences = []
    for part, figures in decision.line_stops.items():
        own = figures[figures["candidate"] == candidate]
        if own.empty:
            continue
        row = own.iloc[0]
        rate = row["missed_per_1000"] / 10
        within = "within" if row["escape_high"] <= limit else "not shown to be within"
        sentences.append(
            f"On {part} it lets {rate:.1f} % of defective test images pass (95 % interval {row['escape_interval']}), "
            f"{within} the {100 * limit:g} % limit"
            + (" (few defective images make the interval wide)" if row["escape_high"] > limit >= rate / 100 else "")
            + "."
        )
    return " ".join(sentences)


def recommendation_section(decision: Decision) -> str:
    if not decision.results:
        return section(SECTIONS[1], recommendation_card(None))
    body = ""
    if len(decision.results) > 1:
        body += paragraph(
            "Inference times measured on different machines are not comparable, so each machine has its own front "
            "and recommendation: " + "; ".join(decision.results) + ".",
            "caption",
        )
    for machine, card in decision.recommendations.items():
        body += f"<h3>Timed on {text(machine)}</h3>" + recommendation_card(card)
        if card is not None and _is_local(decision.results[machine].feasible, card.candidate):
            body += paragraph(escape_sentence(decision, card.candidate))
    return section(SECTIONS[1], body)


def _is_local(feasible: pd.DataFrame, candidate: str) -> bool:
    return bool(((feasible["candidate"] == candidate) & (feasible["source"] == LOCAL_SOURCE)).any())


def trade_off_section(decision: Decision) -> str:
    accuracy = decision.question.criterion
    body = ""
    for index, (machine, result) in enumerate(decision.results.items()):
        body += f"<h3>Timed on {text(machine)}</h3>"
        if result.feasible.empty:
            body += paragraph("No candidate timed on this machine meets every limit.")
            continue
        body += chart(trade_off_chart(result, INFERENCE, accuracy, True, accuracy), f"trade-off-{index}")
        body += paragraph(
            f"Knee method: {result.knee_method}. Error bars: ± one standard deviation over seeds (published single "
            "values have none). The time axis is logarithmic.",
            "caption",
        )
        ranked = ranked_front_table(result, INFERENCE, accuracy, accuracy)
        x_label, y_label = short_label(INFERENCE.metric), short_label(accuracy.metric)
        body += '<p class="caption">The front, by number on the chart:</p>' + table(
            ["#", "chosen", "candidate", x_label, y_label],
            [
                (int(rank), mark, name, f"{x:.4g}", f"{y:.3f}")
                for rank, mark, name, x, y in ranked[["rank", "chosen", "candidate", x_label, y_label]].itertuples(
                    index=False
                )
            ],
            numeric=[True, False, False, True, True],
        )
    return section(SECTIONS[2], body or paragraph(NO_RECOMMENDATION))


def line_section(decision: Decision) -> str:
    question = decision.question
    labels = figure_labels(question.shift)
    body = paragraph(f"Threshold policy: {POLICY_NAMES[question.policy]}. {RATES_EXPLAINED}", "caption")
    for index, part in enumerate(question.parts):
        body += f"<h3>{text(part)}</h3>"
        figures = decision.line_stops.get(part)
        if figures is None:
            body += paragraph(
                f"No finished local run on {part} ({question.condition}): line-stop figures need per-image scores, "
                "which the published study does not give."
            )
            continue
        for note in notes_for_part(
            figures, decision.part_runs[part], part, question.line, question.shift, question.policy
        ):
            body += f'<div class="note {note.level}">{text(note.text)}</div>'
        body += operating_points(decision, part)
        body += chart(line_stops_chart(figures, labels, question.shift), f"line-stops-{index}")
        shown = [column for column in labels if column in figures]
        body += table(
            ["Model", *[labels[column] for column in shown], "Seeds"],
            [
                (row["candidate"], *[_cell(column, row[column]) for column in shown], int(row["seeds"]))
                for _, row in figures.iterrows()
            ],
            numeric=[False, *[column != "escape_interval" for column in shown], True],
        )
    return section(SECTIONS[3], body)


def _cell(column: str, value: object) -> str:
    if column == "escape_interval":
        return str(value)
    return f"{value:d}" if column == "good_test_images" else f"{value:.2f}"


def operating_points(decision: Decision, part: str) -> str:
    """The thresholds of each recommended local candidate's runs on `part`, and how they were chosen."""
    runs, question = decision.part_runs[part], decision.question
    sentences = []
    for card in decision.recommendations.values():
        if card is None:
            continue
        own = runs[runs["candidate"] == card.candidate].sort_values("seed")
        if own.empty or question.policy != "cost":
            continue
        points = ", ".join(
            ("flag nothing" if np.isinf(threshold) else f"score ≥ {threshold:.4g}") + f" (seed {seed})"
            for threshold, seed in zip(own["cost_threshold"], own["seed"], strict=True)
        )
        limit = question.line.max_escape_rate
        within = f" among those letting at most {100 * limit:g} % of the test set's defects pass" if limit < 1 else ""
        sentences.append(
            f"{card.candidate}'s operating point on {part}: flag a part when its {points}; each seed's threshold is "
            f"the one of least expected cost on this line{within}."
        )
    return "".join(paragraph(sentence) for sentence in dict.fromkeys(sentences))


def examples_section(decision: Decision, examples: dict[str, list[PartExamples | None]]) -> str:
    """Per recommended local candidate and part: its highest-scoring acceptable and lowest-scoring defective images."""
    body = paragraph(
        "Each picture is the image with the run's heatmap over it (red: where the model sees an anomaly). The "
        "acceptable images it scores highest are the false alarms it raises or comes closest to; the defective "
        "images it scores lowest are the defects it lets through or nearly does.",
        "caption",
    )
    if not examples:
        body += paragraph(
            "No recommended candidate has local runs: the study's published figures come without per-image results."
        )
    for candidate, parts in examples.items():
        for part, found in zip(decision.question.parts, parts, strict=True):
            body += f"<h3>{text(candidate)} on {text(part)}</h3>"
            if found is None:
                body += paragraph(f"No kept heatmap of {candidate} on {part} in {decision.question.condition}.")
                continue
            body += paragraph(f"From its {found.run}.", "caption")
            for heading, pictures in (
                ("Acceptable images it scores highest", found.acceptable),
                ("Defective images it scores lowest", found.defective),
            ):
                body += f"<h4>{text(heading)}</h4>"
                body += '<div class="examples">' + "".join(picture(p.png, p.caption) for p in pictures) + "</div>"
            if found.missing:
                body += paragraph("Not shown: " + "; ".join(found.missing) + ".", "caption")
    return section(SECTIONS[4], body)


def left_out_section(decision: Decision, departures: dict[str, pd.DataFrame]) -> str:
    body = ""
    if decision.left_out.empty:
        body += paragraph("No candidate was left out: every one had every figure and met every limit.")
    else:
        body += "<h3>Left out of the fronts</h3>" + table(
            ["Model", "Machine", "Reason"],
            decision.left_out[["candidate", "hardware", "reason"]].itertuples(index=False),
        )
    for flag in RUN_FLAGS:
        reasons = decision.flagged[flag.name]
        if reasons.empty:
            continue
        included = flag.name in decision.question.included
        heading = f"{flag.label.capitalize()}, yet included" if included else f"Left out as {flag.label}"
        body += f"<h3>{text(heading)}</h3>" + table(
            ["Model", "Machine", "Reason"], reasons[["candidate", "hardware", "reason"]].itertuples(index=False)
        )
    body += "<h3>How the local runs depart from the study's setup</h3>"
    rows = [
        (part, row.candidate, "; ".join(_items(row.deviations)) or "none recorded")
        for part, frame in departures.items()
        for row in frame.itertuples()
    ]
    body += table(["Part", "Model", "Departures"], rows) if rows else paragraph("No local run on these parts.")
    return section(SECTIONS[5], body)


def _items(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, (list, tuple, np.ndarray)) else []


def provenance_section(facts: Sequence[tuple[str, str]], run_ids: Sequence[str], command: str) -> str:
    body = table(["", ""], facts)
    body += "<h3>Runs used</h3>" + (
        f'<p class="caption"><code>{text(", ".join(run_ids))}</code></p>' if run_ids else paragraph("No local run.")
    )
    body += "<h3>Rebuild this report</h3>" + f'<code class="command">{text(command)}</code>'
    return section(SECTIONS[6], body)
