"""PaDiM: patch distributions modelled by Gaussians; `model.py` scores with batched Mahalanobis distances.

Importing this package registers its entry (`entry.py`).
"""

from engine.models.padim.entry import ENTRY

__all__ = ["ENTRY"]
