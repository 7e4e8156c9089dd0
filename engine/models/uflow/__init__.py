"""U-Flow: a U-shaped normalising flow; `model.py` builds it on any timm CNN's stages.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.uflow.entry import ENTRY

__all__ = ["ENTRY"]
