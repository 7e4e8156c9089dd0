"""CFA: coupled-hypersphere feature adaptation; `model.py` reads features through timm.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.cfa.entry import ENTRY

__all__ = ["ENTRY"]
