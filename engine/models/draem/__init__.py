"""DRAEM: a reconstruction and a discriminative sub-network trained on simulated anomalies (anomalib's own class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.draem.entry import ENTRY

__all__ = ["ENTRY"]
