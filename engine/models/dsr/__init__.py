"""DSR: dual subspace re-projection on a pretrained VQ codebook; `model.py` loads the codebook from disk.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.dsr.entry import ENTRY

__all__ = ["ENTRY"]
