"""What sizes a part's images come in, in words and as counts, for the import summary and Part drill-down.

Every model resizes each image to its input size, so a part of many sizes is evaluated like a part of one; these
say what the models were given before that resize.
"""

from __future__ import annotations

import pandas as pd


def size_counts(images: pd.DataFrame) -> pd.DataFrame:
    """One row per (width, height) of `images` (columns `width`, `height`), with its `size` ("WxH") and the
    number of `images` of that size: most common first, the larger first among equally common ones (as the
    legacy check picks the size it works at)."""
    counts = images.groupby(["width", "height"]).size().reset_index(name="images")
    counts["size"] = counts["width"].astype(str) + "x" + counts["height"].astype(str)
    counts["area"] = counts["width"] * counts["height"]
    ordered = counts.sort_values(["images", "area", "width"], ascending=False, ignore_index=True)
    return ordered.drop(columns="area")


def sizes_in_words(images: pd.DataFrame) -> str:
    """ "all 640x480", or "3 sizes, 512x384 to 640x480 (most 640x480)": the smallest and largest by area."""
    counts = size_counts(images)
    if counts.empty:
        return "no images"
    if len(counts) == 1:
        return f"all {counts['size'].iloc[0]}"
    by_area = counts.assign(area=counts["width"] * counts["height"]).sort_values(["area", "width"])
    smallest, largest = by_area["size"].iloc[0], by_area["size"].iloc[-1]  # by area
    shown = f"{len(counts)} sizes, {smallest} to {largest}"
    return f"{shown} (most {counts['size'].iloc[0]})" if counts["images"].iloc[0] > 1 else shown
