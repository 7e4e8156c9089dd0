"""CS-Flow: cross-scale flows; `model.py` reads an EfficientNet's stages through timm.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.csflow.entry import ENTRY

__all__ = ["ENTRY"]
