"""SuperSimpleNet: standing in for the study's SimpleNet (anomalib's own class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.supersimplenet.entry import ENTRY

__all__ = ["ENTRY"]
