"""Legacy camera check: the rule-based bead check in the style of the plant's current camera system (`inspector.py`), as
a Detector (`detector.py`).

Importing this package registers its entry (`entry.py`).
"""

from engine.models.legacy.entry import ENTRY

__all__ = ["ENTRY"]
