"""CFlow: conditional normalising flows on backbone features (anomalib's own class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.cflow.entry import ENTRY

__all__ = ["ENTRY"]
