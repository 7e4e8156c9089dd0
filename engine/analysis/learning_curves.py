"""How many training images does a part need? Learning curves from runs fitted on nested subsets of a part's training
images (`gluelab evaluate --train-sizes`), each candidate's figure against the number of images it fitted on.

A candidate's curve is the mean and standard deviation over seeds of its image and pixel AUROC at each number of
training images (`n_train`; a run on all of them is the curve's last point). The smallest number reaching
`SHARE` (95 %) of the candidate's figure on all its images is the size the page marks and names: where adding images
has stopped paying. A candidate needs runs at two sizes at least to have a curve.
"""

from __future__ import annotations

import pandas as pd

SHARE = 0.95
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
        full = curve.iloc[-1]
        said.append(
            f"{candidate} reaches {100 * SHARE:.0f} % of its {figure.replace('_', ' ').replace('auroc', 'AUROC')} "
            f"({full[f'{figure}_mean']:.3f} with {int(full['n_train'])} images) with {size} images"
        )
    return said
