"""What Line stops says in words beside its figures, and the decision report with it: the cheapest candidate against
the legacy check, candidates the escape limit leaves out, how sure the escape rates are, and candidates whose
cheapest threshold flags nothing. Each note is a `Note`: how loudly to say it, and what to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from engine.analysis.line_stops import (
    LEGACY_MODEL,
    PARTS_WITHOUT_SHIFT,
    Line,
    Policy,
    Shift,
    escape_interval,
    flags_nothing,
)

Level = Literal["success", "info", "warning", "caption"]
POLICY_NAMES: dict[Policy, str] = {  # each threshold policy in words, as Line stops offers it
    "cost": "Least expected cost on your line",
    "f1": "F1-optimal threshold",
    "zero_escape": "Zero escapes on the test set",
}


@dataclass(frozen=True)
class Note:
    level: Level
    text: str


def legacy_comparison(table: pd.DataFrame, part: str, line: Line, shift: Shift) -> list[Note]:
    """The cheapest candidate of `line_figures` against the legacy check in one sentence, or what is missing for it."""
    notes = []
    legacy = table[table["model"] == LEGACY_MODEL]
    if legacy.empty:
        notes.append(
            Note(
                "warning",
                f"No `legacy` run on {part}: run `gluelab evaluate --parts {part} --models legacy` to compare "
                "against it.",
            )
        )
    if not shift.complete:
        notes.append(
            Note(
                "info",
                "Enter parts per shift and minutes lost per stop to turn rates into line-stop minutes per shift; "
                f"until then the figures are per {PARTS_WITHOUT_SHIFT} parts made.",
            )
        )
    if legacy.empty:
        return notes
    on_line = f"at {100 * line.defect_rate:g} % defective and a miss costing {line.miss_cost:g} line stops"
    if "escape_limit_met" in table:  # least expected cost: only candidates meeting the escape limit may be chosen
        table = table[table["escape_limit_met"]]
        if line.max_escape_rate < 1:
            on_line += f", letting at most {100 * line.max_escape_rate:g} % of defects pass"
    if table.empty:
        return [*notes, Note("warning", f"No model, not even the legacy check, meets the escape limit {on_line}.")]
    best, reference = table.iloc[0], legacy.iloc[0]
    if best["model"] == LEGACY_MODEL:
        return [*notes, Note("warning", f"No model beats the legacy check {on_line}.")]
    sentence = (
        f"{best['candidate']} costs least {on_line}: {best['false_alarms_per_shift']:.1f} false alarms and "
        f"{best['misses_per_shift']:.2f} missed defects {shift.per}, against {reference['false_alarms_per_shift']:.1f} "
        f"and {reference['misses_per_shift']:.2f} for the legacy system"
    )
    if shift.complete:
        sentence += f", about {best['minutes_avoided_per_shift']:.0f} line-stop minutes avoided per shift of {shift.parts} parts"
    return [*notes, Note("success", sentence + ".")]


def escape_limit_notes(table: pd.DataFrame, line: Line) -> list[Note]:
    """Candidates that meet the escape limit only by flagging every good part, and how sure the escape rates are."""
    notes = []
    if "escape_limit_met" in table and not table["escape_limit_met"].all():
        names = ", ".join(table.loc[~table["escape_limit_met"], "candidate"])
        notes.append(
            Note(
                "warning",
                f"{names}: on at least one seed, letting at most {100 * line.max_escape_rate:g} % of defects pass "
                "takes a threshold that flags every good part, so no usable threshold meets the limit; left out of "
                "the choice.",
            )
        )
    fewest = int(table["defective_test_images"].min())
    bound = escape_interval(0, fewest)[1] if fewest else 1.0
    if bound > line.max_escape_rate:
        notes.append(
            Note(
                "caption",
                f"Escape rates are measured on as few as {fewest} defective test images, so their 95 % intervals are "
                f"wide: a model that misses none of {fewest} may still let up to {100 * bound:.0f} % of defects "
                f"pass, above the {100 * line.max_escape_rate:g} % limit. Collect more defective images to show the "
                "limit holds.",
            )
        )
    return notes


def silent_notes(runs: pd.DataFrame, policy: Policy) -> list[Note]:
    """Candidates whose least-cost threshold flags nothing on at least one seed (`cost_threshold` inf)."""
    silent = flags_nothing(runs) if policy == "cost" else []
    if not silent:
        return []
    return [
        Note(
            "caption",
            f"{', '.join(silent)}: at this defect rate and miss cost, on at least one seed no threshold catches "
            "enough defects to pay for its false alarms, so the cheapest choice there is to flag nothing.",
        )
    ]


RATES_EXPLAINED = (
    "False alarms are good parts flagged, n·(1 − p)·FPR; missed defects are defective parts let through, n·p·FNR; "
    "FPR and FNR are measured on this part's test set per run and averaged over seeds. Least expected cost picks "
    "each run's threshold minimising (1 − p)·FPR + p·(miss cost)·FNR among those missing at most the maximum "
    "escape rate of the test set's defects, the higher one on a tie. The escape rate's interval is "
    "Clopper–Pearson's, over the defective test images of all seeds. Line-stop minutes "
    "count false alarms only. Zero escapes sets each run's threshold at its lowest-scoring defective image, so no "
    "defect is missed on the test set."
)


def figure_labels(shift: Shift) -> dict[str, str]:
    """Headings of the `line_figures` columns shown, in the order shown."""
    return {
        "false_alarms_per_shift": f"False alarms {shift.per}",
        "misses_per_shift": f"Missed defects {shift.per}",
        "escape_interval": "Escape rate, 95 % interval",
        "stop_minutes_per_shift": f"Line-stop minutes {shift.per}",
        "minutes_avoided_per_shift": f"Minutes avoided {shift.per} vs legacy",
        "expected_cost_per_shift": f"Expected cost {shift.per}, in line stops",
        "cost_saved_per_shift": f"Saved {shift.per} vs legacy, in line stops",
        "false_alarms_per_1000": "Test set: false alarms per 1000 good parts",
        "missed_per_1000": "Test set: missed per 1000 defective parts",
        "good_test_images": "Good test images",
    }


def notes_for_part(
    table: pd.DataFrame, runs: pd.DataFrame, part: str, line: Line, shift: Shift, policy: Policy
) -> list[Note]:
    """Every note Line stops shows for one part, in its order."""
    return [
        *legacy_comparison(table, part, line, shift),
        *escape_limit_notes(table, line),
        *silent_notes(runs, policy),
    ]
