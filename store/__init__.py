"""gluelab results store: one DuckDB file holding the registered parts and their images, every evaluation run
with its metrics, per-image scores and example heatmaps (files beside the store, indexed in it), the queue of
evaluation requests, deployments, and the study's published figures.

Only this package writes SQL. Connections are short-lived and retried on lock conflicts, because
DuckDB admits one writing process or many readers, never both at once.
"""

from store.connection import DEFAULT_STORE, StoreError, StoreLockedError, read_store, write_store
from store.datasets import (
    DatasetRecord,
    ImageRecord,
    dataset_parts,
    part_images,
    register_dataset,
    training_split_sizes,
)

__all__ = [
    "DEFAULT_STORE",
    "DatasetRecord",
    "ImageRecord",
    "StoreError",
    "StoreLockedError",
    "dataset_parts",
    "part_images",
    "read_store",
    "register_dataset",
    "training_split_sizes",
    "write_store",
]
