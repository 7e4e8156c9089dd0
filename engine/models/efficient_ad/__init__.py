"""EfficientAD: a student-teacher pair and an autoencoder; `model.py` takes a frozen-backbone teacher and its own
training loop, `pdn_teacher.py` distils the paper's PDN teacher offline.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.efficient_ad.entry import ENTRY

__all__ = ["ENTRY"]
