"""How many training images does a part need? Learning curves from runs fitted on nested subsets of a part's training
images (`gluelab evaluate --train-sizes`), each candidate's figure against the number of images it fitted on.

A candidate's curve is the mean and standard deviation over seeds of its image and pixel AUROC at each number of
training images (`n_train`; a run on all of them is the curve's last point). The smallest number reaching
`SHARE` (95 %) of the candidate's figure on all its images is the size the page marks and names: where adding images
has stopped paying. A curve can also fall (a density model's acceptance widens with each new kind of normal image it
sees); the sentence says so when its best size beats its full-data figure by more than `FALLING_MARGIN` and the
best size's spread over seeds. A candidate needs runs at two sizes at least to have a curve.
"""

from __future__ import annotations

import pandas as pd

SHARE = 0.95
FALLING_MARGIN = 0.01  # a curve whose best size beats its full-data figure by more (and by more than its std) falls
FIGURES = ("image_auroc", "pixel_auroc")


def curves(runs: pd.DataFrame) -> pd.DataFrame:
    """`store.queries.learning_curve_runs` rows (with a `candidate` label) as one row per candidate and `n_train`:
    `<figure>_mean`, `<figure>_std` and `seeds`, for candidates with at least two sizes."""
    grouped = runs.groupby(["candidate", "model", "n_train"], as_index=False)
    table = grouped.agg(
        seeds=("seed", "nunique"),
        **{f"{figure}_{how}": (figure, how) for figure in FIGURES for how in ("mean", "std")},
    )
    sizes = table.groupby("candidate")["n_train"].transform("nunique")
    return table[sizes >= 2].sort_values(["candidate", "n_train"]).reset_index(drop=True)


def smallest_reaching(curve: pd.DataFrame, figure: str = "image_auroc", share: float = SHARE) -> int | None:
    """The fewest training images at which one candidate's mean `figure` reaches `share` of its figure at its
    largest size (None without a figure)."""
    means = curve.set_index("n_train")[f"{figure}_mean"].dropna().sort_index()
    if means.empty:
        return None
    target = share * means.iloc[-1]
    return int(means[means >= target].index[0])


def sentences(table: pd.DataFrame, figure: str = "image_auroc") -> list[str]:
    """One sentence per candidate of `curves`' table, e.g. "PaDiM / EfficientNet-Lite0 (cpu) reaches 95 % of its
    image AUROC (0.951 with 120 images) with 50 images"."""
    said = []
    for candidate, curve in table.groupby("candidate", sort=False):
        size = smallest_reaching(curve, figure)
        if size is None:
            continue
        full, name = curve.iloc[-1], figure.replace("_", " ").replace("auroc", "AUROC")
        sentence = (
            f"{candidate} reaches {100 * SHARE:.0f} % of its {name} ({full[f'{figure}_mean']:.3f} with "
            f"{int(full['n_train'])} images) with {size} images"
        )
        best = curve.loc[curve[f"{figure}_mean"].idxmax()]
        spread = max(float(best[f"{figure}_std"]) if pd.notna(best[f"{figure}_std"]) else 0.0, FALLING_MARGIN)
        if best[f"{figure}_mean"] - full[f"{figure}_mean"] > spread:
            sentence += (
                f"; it is highest with {int(best['n_train'])} ({best[f'{figure}_mean']:.3f}) and falls as images are "
                "added: more of this part's normal variation widens what the model accepts as normal"
            )
        said.append(sentence)
    return said
