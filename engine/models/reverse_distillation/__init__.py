"""Reverse Distillation: a student decoder reconstructing a frozen teacher's features; `model.py` adapts it to any timm
CNN.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.reverse_distillation.entry import ENTRY

__all__ = ["ENTRY"]
