"""DFM: deep feature modelling: PCA of pooled backbone features, scored by feature reconstruction error (anomalib's own
class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.dfm.entry import ENTRY

__all__ = ["ENTRY"]
