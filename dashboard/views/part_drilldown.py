"""One part in depth: its images, each model's metrics, how many training images it needs, its training, and a
segmentation gallery with models side by side."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis import learning_curves, training
from engine.analysis.charts import learning_curve_chart
from engine.analysis.image_sizes import size_counts, sizes_in_words
from engine.analysis.results_table import LOCAL_SOURCE, METRIC_ORDER
from store.runs import artifacts_dir

GALLERY_SIZE = 6
SIZE_BARS = 12  # up to this many distinct image sizes get a bar each; more are shown as width and height spreads

st.title("Part drill-down")


def metrics_per_model(ctx: widgets.StoreContext, filters: widgets.Filters) -> None:
    """Each model's metrics (mean ± std over seeds) with how it trained: converged, under-trained or one pass."""
    st.subheader("Metrics per model")
    results = cached_queries.part_results(ctx.store, ctx.stamp, filters.part)
    local = results[(results["condition"] == filters.condition) & (results["source"] == LOCAL_SOURCE)]
    if local.empty:
        st.info(f"No finished local runs on {filters.part} ({filters.condition}) yet.")
        return
    runs = cached_queries.part_training(ctx.store, ctx.stamp, filters.part)
    trained = training.candidate_training(runs[runs["condition"] == filters.condition], ["candidate"])
    table = widgets.wide_table(local, METRIC_ORDER).merge(trained, on="candidate", how="left")
    shown = widgets.readable_table(table, keep=("candidate", "n_seeds", "training"))
    shown.column_config["training"] = st.column_config.TextColumn("Training")
    shown.show()


def training_section(ctx: widgets.StoreContext, filters: widgets.Filters) -> None:
    """Under-trained runs named up front, then the chosen run's loss curve and why its training stopped."""
    st.subheader("Training")
    runs = cached_queries.part_training(ctx.store, ctx.stamp, filters.part)
    runs = runs[runs["condition"] == filters.condition]
    if runs.empty:
        st.info(f"No finished local runs on {filters.part} ({filters.condition}) yet.")
        return
    under = [run for _, run in runs.iterrows() if training.is_under_trained(run)]
    if under:
        st.warning(
            f"{len(under)} of {len(runs)} runs are under-trained; their figures understate the model:\n"
            + "\n".join(f"- {run['candidate']}, seed {run['seed']}: {training.run_note(run)}" for run in under),
            icon=":material/warning:",
        )
    run = widgets.choose_run(runs, "Run", key="training_run")
    widgets.training_panel(run, cached_queries.training_losses(ctx.store, ctx.stamp, run["run_id"]))


def how_many_images(ctx: widgets.StoreContext, filters: widgets.Filters) -> None:
    """Learning curves: each candidate's AUROC against the training images it fitted on, and where it reaches 95 %."""
    st.subheader("How many images?")
    table = learning_curves.curves(
        cached_queries.learning_curve_runs(ctx.store, ctx.stamp, filters.part, filters.condition)
    )
    if table.empty:
        st.info(
            f"No learning curve for {filters.part} ({filters.condition}) yet: evaluate models on fewer training images, "
            f"e.g. `gluelab evaluate --parts {filters.part} --models padim patchcore --train-sizes 10 25 50 all "
            "--seeds 3`, or queue a sweep from the Runs page."
        )
        return
    marks = {
        str(candidate): learning_curves.smallest_reaching(curve) for candidate, curve in table.groupby("candidate")
    }
    st.plotly_chart(learning_curve_chart(table, marks))
    for sentence in learning_curves.sentences(table):
        st.markdown(f"- {sentence}.")
    st.caption(
        "Each size's images are drawn by the seed from the part's training images and nested (a seed's 10 are among "
        "its 25); every run is tested on the full test split. A point is the mean over seeds, its bar the standard "
        "deviation; the ring marks the fewest images reaching 95 % of the candidate's image AUROC on all of them."
    )


def image_sizes(images: pd.DataFrame) -> None:
    """The sizes the part's images come in: their range in words, and how many images each size has."""
    counts = size_counts(images)
    st.markdown(
        f"**Image sizes:** {sizes_in_words(images)}. Every model resizes each image to its input size (shown per run"
        " on the Runs page); defect masks are resized with their images."
    )
    if len(counts) == 1:
        return
    if len(counts) <= SIZE_BARS:
        figure = px.bar(counts, x="size", y="images", labels={"size": "Image size", "images": "Images"})
    else:  # too many sizes for a bar each: how widths and heights spread
        sides = images.melt(value_vars=["width", "height"], var_name="side", value_name="pixels")
        figure = px.histogram(
            sides,
            x="pixels",
            color="side",
            barmode="overlay",
            nbins=30,
            labels={"pixels": "Side length (pixels)", "side": "Side"},
        ).update_layout(yaxis_title="Images")
    st.plotly_chart(figure.update_layout(title="Image sizes (pixels)", height=260))


ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx, source=False)
    images = cached_queries.part_images(ctx.store, ctx.stamp, filters.part)
    if images.empty:
        widgets.empty_state(f"{filters.part} has no images in this store (published figures only).", ctx)
    else:
        test = images[images["split"] == "test"]
        columns = st.columns(4)
        columns[0].metric("Training images", int((images["split"] == "train").sum()))
        columns[1].metric("Good test images", int((test["label"] == "normal").sum()))
        columns[2].metric("Defective test images", int((test["label"] == "anomalous").sum()))
        columns[3].metric("Over-exposed images", int(images["over_exposed"].fillna(False).sum()))
        image_sizes(images)
        left, right = st.columns(2)
        defects = test[test["label"] == "anomalous"].fillna({"region": "unknown"})
        if not defects.empty:
            per_region = defects.groupby(["region", "defect_type"]).size().reset_index(name="images")
            left.plotly_chart(
                px.bar(per_region, x="region", y="images", color="defect_type", title="Defects per region")
            )
        right.plotly_chart(
            px.histogram(
                images,
                x="mean_brightness",
                color="label",
                nbins=40,
                barmode="overlay",
                title="Brightness (mean grey level)",
            )
        )

        metrics_per_model(ctx, filters)
        how_many_images(ctx, filters)
        training_section(ctx, filters)

        st.subheader("Segmentation gallery")
        examples = cached_queries.part_examples(ctx.store, ctx.stamp, filters.part, filters.condition)
        if examples.empty:
            st.info(
                "No kept heatmaps for this part and condition: they are written by models that produce anomaly maps."
            )
        else:
            regions = sorted(examples["region"].dropna().unique())
            defect_types = sorted(examples["defect_type"].unique())
            candidates = sorted(examples["candidate"].unique())
            filter_columns = st.columns(4)
            region = filter_columns[0].multiselect("Region", regions, default=regions, key="gallery_regions")
            defect = filter_columns[1].multiselect(
                "Defect type", defect_types, default=defect_types, key="gallery_defects"
            )
            first = filter_columns[2].selectbox("Model", candidates, key="gallery_model")
            others = ["(none)"] + [c for c in candidates if c != first]
            second = filter_columns[3].selectbox("Compare with", others, key="gallery_compare")
            shown = examples[
                examples["defect_type"].isin(defect) & (examples["region"].isin(region) | examples["region"].isna())
            ]
            image_paths = shown.loc[shown["candidate"] == first, "image_path"]
            if image_paths.empty:
                st.info("No kept example matches these filters.")
            page = st.number_input(
                "Gallery page", 1, max(1, -(-len(image_paths) // GALLERY_SIZE)), 1, key="gallery_page"
            )
            root = artifacts_dir(ctx.store)
            for image_path in image_paths.iloc[(page - 1) * GALLERY_SIZE : page * GALLERY_SIZE]:
                rows = shown[shown["image_path"] == image_path]
                example = rows[rows["candidate"] == first].iloc[0]
                st.markdown(
                    f"**{image_path}** · {example['label']} · {example['defect_type']}"
                    + (
                        f" · region {example['region']} · {example['severity']}"
                        if isinstance(example["region"], str)
                        else ""
                    )
                )
                compared = [example] + [row for _, row in rows[rows["candidate"] == second].iterrows()]
                if second != "(none)" and len(compared) == 1:
                    st.caption(
                        f"{second} kept no heatmap for this image (only defective and its 10 highest-scoring good images are kept)."
                    )
                widgets.segmentation_panels(compared, root)
