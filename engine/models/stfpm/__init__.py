"""STFPM: student-teacher feature pyramid matching (anomalib's own class).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.stfpm.entry import ENTRY

__all__ = ["ENTRY"]
