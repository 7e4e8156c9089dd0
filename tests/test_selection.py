"""Selection maths on the study's published figures (store/reference/paper_results.csv), and fronts per machine
on a real store holding local runs and the published figures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import cached_queries
from engine.analysis.recommendation import STUDY_HARDWARE, STUDY_TIMING, hardware_label, recommend
from engine.analysis.selection import (
    KNEE_BY_IDEAL,
    KNEE_BY_TRADEOFF,
    Constraint,
    Criterion,
    candidate_table,
    chosen,
    hardware_groups,
    leave_out,
    select,
    select_per_hardware,
    worst_case_across_parts,
)
from store.published import load_published_results, read_published_csv
from store.queries import store_stamp
from tests.conftest import run_key, write_finished_run

SPEED = Criterion("inference_ms", "min")
IMAGE_AUROC = Criterion("image_auroc", "max")
PIXEL_AUROC = Criterion("pixel_auroc", "max")
REFERENCE_CSV = Path(__file__).resolve().parent.parent / "store" / "reference" / "paper_results.csv"


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return read_published_csv()


@pytest.fixture(scope="module")
def part1(published) -> pd.DataFrame:
    """Table 4 (runtime) joined with Table 5 (accuracy): part1 baseline, one row per (model, backbone)."""
    return candidate_table(published[published["source_table"].isin(["Table 4", "Table 5"])])


def label(model: str, backbone: str) -> str:
    return f"{model}-{backbone}" if backbone else model


def names(frame: pd.DataFrame) -> set[str]:
    return {label(model, backbone) for model, backbone in zip(frame["model"], frame["backbone"], strict=True)}


def flagged(result, column: str) -> set[str]:
    return names(result.feasible[result.feasible[column]])


def reasons_by_name(excluded: pd.DataFrame) -> dict[str, str]:
    return {
        label(model, backbone): reason for model, backbone, reason in excluded[["model", "backbone", "reason"]].values
    }


def test_tables_4_and_5_join_one_to_one_on_model_and_backbone(published, part1):
    keys = {
        table: set(zip(rows["model"], rows["backbone"], strict=True))
        for table, rows in published[published["source_table"].isin(["Table 4", "Table 5"])].groupby("source_table")
    }
    assert keys["Table 4"] == keys["Table 5"]
    assert len(part1) == len(keys["Table 5"])
    assert part1[["inference_ms_mean", "image_auroc_mean"]].notna().all().all()
    assert part1.loc[part1["model"] == "EfficientAD", "backbone"].tolist() == [""]


def test_candidate_table_refuses_rows_it_cannot_tell_apart(published):
    part1_both_conditions = published[published["source_table"].isin(["Table 5", "Table C.9"])]
    with pytest.raises(ValueError, match="several rows"):
        candidate_table(part1_both_conditions)
    keyed = candidate_table(part1_both_conditions, ["condition", "model", "backbone"])
    assert set(keyed["condition"]) == {"baseline", "augmented"}


def test_front_of_inference_time_and_image_auroc_is_the_published_four(part1):
    result = select(part1, [SPEED, IMAGE_AUROC])
    assert flagged(result, "on_front") == {"DFKDE-ResNet18", "GANomaly", "EfficientAD", "STFPM-ResNet18"}
    assert result.excluded.empty


def published_front() -> dict[str, np.ndarray]:
    """The four-point front of part1 (Tables 4 and 5), read from the CSV: name -> (inference ms, -image AUROC).

    Both columns are to be minimised; the AUROC is negated. Min-max normalised, so 0 is the best on the front.
    """
    table = pd.read_csv(REFERENCE_CSV, keep_default_na=False)
    table = table[(table["part"] == "part1") & table["source_table"].isin(["Table 4", "Table 5"])]
    means = table.set_index(["model", "backbone", "metric"])["mean"].astype(float)
    front = {"DFKDE-ResNet18": ("DFKDE", "ResNet18"), "GANomaly": ("GANomaly", ""),
             "EfficientAD": ("EfficientAD", ""), "STFPM-ResNet18": ("STFPM", "ResNet18")}  # fmt: skip
    points = np.array([[means[(*key, "inference_ms")], -means[(*key, "image_auroc")]] for key in front.values()])
    normalised = (points - points.min(axis=0)) / (points.max(axis=0) - points.min(axis=0))
    return dict(zip(front, normalised, strict=True))


def high_tradeoff_knee(front: dict[str, np.ndarray]) -> str | None:
    """The knee as the selection module defines it, worked out directly.

    For each front point, the least sacrifice per unit of gain of moving to another front point (sacrifice: the
    summed amounts by which the other point is worse; gain: by which it is better). The point where even the
    cheapest move costs the most is the knee when that value is an outlier: at least 2 std above the mean, or,
    when none is, the largest if more than 1 std above the mean. On this front no point has two others within
    0.125, so every point's neighbours are all the others.
    """
    names = list(front)
    tradeoff = []
    for name in names:
        ratios = []
        for other in names:
            if other != name:
                difference = front[other] - front[name]
                ratios.append(np.clip(difference, 0, None).sum() / np.clip(-difference, 0, None).sum())
        tradeoff.append(min(ratios))
    deviation = (np.array(tradeoff) - np.mean(tradeoff)) / np.std(tradeoff)
    outliers = [name for name, d in zip(names, deviation, strict=True) if d >= 2]
    if not outliers and deviation.max() > 1:
        outliers = [names[int(np.argmax(deviation))]]
    return outliers[0] if len(outliers) == 1 else None


def test_knee_lies_on_the_front_and_names_its_method(part1):
    front = published_front()
    for name, point in front.items():  # the neighbourhood rule's condition for using every other point
        assert sum(np.linalg.norm(point - other) <= 0.125 for other in front.values()) <= 2, name
    filters = list(warnings.filters)
    result = select(part1, [SPEED, IMAGE_AUROC])
    assert warnings.filters == filters  # pymoo's HighTradeoffPoints must not silence warnings for everyone
    assert result.knee_method == KNEE_BY_TRADEOFF
    assert flagged(result, "knee") == {high_tradeoff_knee(front)} == {"GANomaly"}
    assert flagged(result, "knee") <= flagged(result, "on_front")
    assert result.feasible.loc[~result.feasible["on_front"], "ideal_distance"].isna().all()


def test_constraints_apply_before_the_front_and_excluded_say_why(part1):
    result = select(
        part1,
        [SPEED, IMAGE_AUROC],
        [Constraint("image_auroc", floor=0.9), Constraint("inference_ms", ceiling=250)],
    )
    assert flagged(result, "on_front") == {"EfficientAD", "STFPM-ResNet18"}
    reasons = reasons_by_name(result.excluded)
    assert "image_auroc" in reasons["GANomaly"] and "below the floor 0.9" in reasons["GANomaly"]
    assert "above the ceiling 250" in reasons["MMR-WideResNet50"]
    assert "below the floor" in reasons["CFA-ResNet18"] and "above the ceiling" in reasons["CFA-ResNet18"]
    assert not names(result.excluded) & names(result.feasible)
    assert len(result.excluded) + len(result.feasible) == len(part1)
    assert result.knee_method == KNEE_BY_IDEAL
    assert flagged(result, "knee") == {"EfficientAD", "STFPM-ResNet18"}


def test_single_point_front_is_its_own_knee_and_preference(part1):
    result = select(
        part1, [SPEED, Criterion("throughput_fps", "max")], weights={"inference_ms": 1, "throughput_fps": 0}
    )
    fastest = part1.loc[[part1["inference_ms_mean"].idxmin()]]
    assert flagged(result, "on_front") == flagged(result, "knee") == flagged(result, "preferred") == names(fastest)
    assert result.knee_method == KNEE_BY_IDEAL


def test_identical_candidates_share_front_knee_and_preference(part1):
    twin = part1[part1["model"] == "EfficientAD"].assign(model="EfficientAD twin")
    result = select(pd.concat([part1, twin]), [SPEED, IMAGE_AUROC], weights={"inference_ms": 0.1, "image_auroc": 0.9})
    assert {"EfficientAD", "EfficientAD twin"} <= flagged(result, "on_front")
    assert flagged(result, "preferred") == {"EfficientAD", "EfficientAD twin"}
    assert flagged(result, "knee") == {"GANomaly"}


def test_models_without_pixel_figures_are_excluded_from_pixel_criteria_with_a_reason(part1):
    result = select(part1, [SPEED, PIXEL_AUROC])
    assert reasons_by_name(result.excluded) == {
        "DFKDE-ResNet18": "no pixel_auroc figure",
        "DFKDE-WideResNet50": "no pixel_auroc figure",
        "GANomaly": "no pixel_auroc figure",
    }
    assert {"DFKDE-ResNet18", "GANomaly"} <= flagged(select(part1, [SPEED, IMAGE_AUROC]), "on_front")


def pseudo_weight_choice(front: dict[str, np.ndarray], weights: np.ndarray) -> str:
    """The front point whose pseudo-weights are closest (L1) to `weights`.

    A point's pseudo-weight on a criterion is its normalised distance from the worst front value, (1 - f), divided
    by the sum of those distances over the criteria.
    """
    pseudo = {name: (1 - point) / (1 - point).sum() for name, point in front.items()}
    return min(pseudo, key=lambda name: np.abs(pseudo[name] - weights).sum())


def test_pseudo_weights_pick_different_candidates_for_different_weights(part1):
    def preferred(speed: float, accuracy: float) -> set[str]:
        return flagged(
            select(part1, [SPEED, IMAGE_AUROC], weights={"inference_ms": speed, "image_auroc": accuracy}), "preferred"
        )

    front = published_front()
    for speed, accuracy, expected in [(0.9, 0.1, "DFKDE-ResNet18"), (0.5, 0.5, "GANomaly"), (0.1, 0.9, "EfficientAD")]:
        assert preferred(speed, accuracy) == {pseudo_weight_choice(front, np.array([speed, accuracy]))} == {expected}
    assert preferred(1, 9) == preferred(0.1, 0.9)
    assert flagged(select(part1, [SPEED, IMAGE_AUROC]), "preferred") == set()
    with pytest.raises(ValueError, match="exactly the criteria"):
        select(part1, [SPEED, IMAGE_AUROC], weights={"inference_ms": 1})


def test_near_front_flags_dominated_candidates_within_one_std(part1):
    result = select(part1, [SPEED, IMAGE_AUROC])
    near = flagged(result, "near_front")
    assert not near & flagged(result, "on_front")
    assert "FastFlow-WideResNet50" in near  # slower than STFPM-ResNet18, AUROC intervals overlap
    assert "DFKDE-WideResNet50" not in near  # slower and worse than DFKDE-ResNet18, both with std 0
    stds = result.feasible.set_index(["model", "backbone"])["image_auroc_std"]
    assert stds.equals(part1.set_index(["model", "backbone"])["image_auroc_std"])


def test_worst_case_across_parts_takes_each_criterion_at_its_worst_part(published):
    parts = ["part1", "part6", "part16"]
    accuracy = published[published["source_table"].isin(["Table 5", "Table D.10", "Table 6"])]
    candidates, excluded = worst_case_across_parts(accuracy, parts, [IMAGE_AUROC, PIXEL_AUROC])

    per_part = (
        candidate_table(accuracy, ["part", "model", "backbone"]).set_index(["model", "backbone", "part"]).sort_index()
    )
    for row in candidates.itertuples():
        for metric in ("image_auroc", "pixel_auroc"):
            figures = per_part.loc[(row.model, row.backbone), f"{metric}_mean"]
            assert getattr(row, f"{metric}_mean") == figures.min()
            worst_part = getattr(row, f"{metric}_worst_part")
            assert figures[worst_part] == figures.min()
            worst_std = per_part.at[(row.model, row.backbone, worst_part), f"{metric}_std"]
            assert pd.Series([getattr(row, f"{metric}_std")]).equals(pd.Series([worst_std]))

    reasons = reasons_by_name(excluded)
    assert set(reasons) == {
        "DFKDE-ResNet18",
        "DFKDE-WideResNet50",
        "DFM-ResNet18",
        "GANomaly",
        "MMR-WideResNet50",
        "SimpleNet-WideResNet50",
    }
    assert reasons["MMR-WideResNet50"] == "no image_auroc figure for part16; no pixel_auroc figure for part16"
    assert reasons["GANomaly"] == "no pixel_auroc figure for part1, part6, part16"
    assert not select(candidates, [IMAGE_AUROC, PIXEL_AUROC]).front.empty


def test_criteria_and_constraints_are_checked():
    with pytest.raises(ValueError, match="two criteria"):
        select(pd.DataFrame(), [SPEED])
    with pytest.raises(ValueError, match="'max' or 'min'"):
        Criterion("image_auroc", "up")
    with pytest.raises(ValueError, match="floor or a ceiling"):
        Constraint("image_auroc")


XEON = "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"
EPYC = "AMD EPYC 7B13 64-Core Processor"
A100 = "NVIDIA A100-SXM4-40GB"


def environment(processor: str, cpu_count: int, gpu: str | None = None) -> dict:
    """What `engine.evaluation.evaluate.environment` records of a machine."""
    hardware = {"machine": "x86_64", "processor": processor, "cpu_count": cpu_count, "torch_threads": cpu_count,
                "memory_gb": 15.6, "gpu": gpu}  # fmt: skip
    return {"versions": {"torch": "2.5.1", "anomalib": "2.0.0"}, "python": "3.11.10", "hardware": hardware}


def test_both_sources_never_place_cpu_and_gpu_times_on_one_front(tmp_path):
    """Local runs on a 2-CPU Xeon (legacy 0.96 ms, PaDiM 45 ms, DFM 60 ms), one PaDiM seed on an EPYC with a GPU
    (8 ms), and the study's figures timed on its RTX 4090: three machines, three fronts, three recommendations."""
    store = tmp_path / "store.duckdb"
    load_published_results(store)
    xeon, gpu_machine = environment(XEON, 2), environment(EPYC, 64, A100)
    for run_id, model, seed, ms, auroc, machine in [
        ("legacy", "legacy", 0, 0.96, 0.55, xeon),
        ("padim0", "padim", 0, 45.0, 0.95, xeon),
        ("padim1", "padim", 1, 8.0, 0.97, gpu_machine),
        ("dfm", "dfm", 0, 60.0, 0.90, xeon),
    ]:
        key = run_key(model=model, seed=seed)
        metrics = {"image_auroc": auroc}
        write_finished_run(store, run_id, key, [0.1], [0.9], 0.5, metrics, inference_ms=ms, environment=machine)

    rows = cached_queries.selection_rows(str(store), str(store_stamp(store)), ["part1"], "baseline", None)
    keys = ("candidate", "source", "model", "hardware")
    criteria = (SPEED, IMAGE_AUROC)
    candidates, _ = worst_case_across_parts(rows, ["part1"], criteria, keys)
    results = select_per_hardware(candidates, criteria)

    xeon_machine, epyc_machine = hardware_label(XEON, None, 2), hardware_label(EPYC, A100, 64)
    assert set(results) == {xeon_machine, epyc_machine, STUDY_HARDWARE}
    for machine, result in results.items():
        assert set(result.feasible["hardware"]) == {machine}
        assert not result.front.empty and set(result.front["hardware"]) == {machine}
        card = recommend(result, ["part1"], IMAGE_AUROC, {"image_auroc": "Image AUROC"})
        assert card is not None and card.hardware == machine
        timed = STUDY_TIMING if machine == STUDY_HARDWARE else f"measured here on {machine}"
        assert f"ms per image ({timed})" in card.figures and f"timed on {machine}" in card.why

    padim = candidates[candidates["model"] == "padim"].set_index("hardware")["inference_ms_mean"]
    assert padim.to_dict() == {xeon_machine: 45.0, epyc_machine: 8.0}  # each machine's own seed, never averaged
    xeon_front = set(results[xeon_machine].front["candidate"])
    study_front = set(results[STUDY_HARDWARE].front["candidate"])
    assert "EfficientAD (paper)" in study_front and not any("(paper)" in name for name in xeon_front)
    assert xeon_front == {"Legacy camera check / EfficientNet-Lite0 (cpu)", "PaDiM / EfficientNet-Lite0 (cpu)"}

    mixed = select(candidates, criteria)  # what one axis for every machine would have claimed
    assert mixed.front["hardware"].nunique() > 1


def test_hardware_groups_keep_first_appearance_and_refuse_a_candidate_without_a_machine(part1):
    local = part1.head(3).assign(hardware="a Xeon, 2 CPUs", source="local")
    published = part1.assign(hardware=STUDY_HARDWARE)
    groups = hardware_groups(pd.concat([local, published]))
    assert list(groups) == ["a Xeon, 2 CPUs", STUDY_HARDWARE]
    assert len(groups["a Xeon, 2 CPUs"]) == 3 and len(groups[STUDY_HARDWARE]) == len(part1)
    assert select_per_hardware(part1.iloc[0:0], [SPEED, IMAGE_AUROC]) == {}
    with pytest.raises(ValueError, match="'hardware' column"):
        hardware_groups(part1)
    with pytest.raises(ValueError, match="no hardware for"):
        hardware_groups(local.assign(hardware=[None, "x", "x"]))


def test_leave_out_removes_the_named_candidates_with_their_reason_and_keeps_the_rest_in_order(part1):
    reasons = pd.DataFrame(
        {"model": ["EfficientAD", "STFPM"], "backbone": ["", "ResNet18"], "reason": ["budget", "epoch cap"]}
    )
    kept, gone = leave_out(part1, reasons)
    assert names(gone) == {"EfficientAD", "STFPM-ResNet18"}
    assert dict(zip(gone["model"], gone["reason"], strict=True)) == {"EfficientAD": "budget", "STFPM": "epoch cap"}
    staying = ~part1.set_index(["model", "backbone"]).index.isin(
        list(zip(reasons["model"], reasons["backbone"], strict=True))
    )
    assert kept.equals(part1[staying].reset_index(drop=True))  # the rest, in input order
    assert names(kept) == names(part1) - names(gone) and len(kept) == len(part1) - 2
    assert "EfficientAD" not in names(select(kept, [SPEED, IMAGE_AUROC]).front)
    unchanged, none = leave_out(part1, reasons.iloc[0:0])
    assert unchanged.equals(part1.reset_index(drop=True)) and none.empty


def test_a_tied_knee_points_to_one_candidate_the_best_on_the_preferred_criterion(part1):
    """A two-point front ties under the ideal-point rule; the reader is pointed to one candidate, not both."""
    result = select(
        part1,
        [SPEED, IMAGE_AUROC],
        [Constraint("image_auroc", floor=0.9), Constraint("inference_ms", ceiling=250)],
    )
    assert flagged(result, "knee") == {"EfficientAD", "STFPM-ResNet18"}
    picked = {criterion: chosen(result, criterion) for criterion in (IMAGE_AUROC, SPEED)}
    assert label(picked[IMAGE_AUROC]["model"], picked[IMAGE_AUROC]["backbone"]) == "STFPM-ResNet18"  # more accurate
    assert label(picked[SPEED]["model"], picked[SPEED]["backbone"]) == "EfficientAD"  # the faster
    assert chosen(select(part1.iloc[:0], [SPEED, IMAGE_AUROC]), IMAGE_AUROC) is None
