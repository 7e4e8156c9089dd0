"""FastFlow: 2D normalising flows on backbone features; `model.py` builds them on any timm CNN.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.fastflow.entry import ENTRY

__all__ = ["ENTRY"]
