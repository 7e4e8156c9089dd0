"""DFKDE: deep feature kernel density estimation (anomalib's own class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.dfkde.entry import ENTRY

__all__ = ["ENTRY"]
