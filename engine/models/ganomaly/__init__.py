"""GANomaly: an adversarially trained encoder-decoder-encoder (anomalib's own class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.ganomaly.entry import ENTRY

__all__ = ["ENTRY"]
