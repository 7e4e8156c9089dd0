"""PatchCore: a memory bank of patch features and nearest-neighbour scores; `model.py` selects its coreset fast and
exactly as anomalib's greedy.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.patchcore.entry import ENTRY

__all__ = ["ENTRY"]
