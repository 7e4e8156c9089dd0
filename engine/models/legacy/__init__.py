"""The legacy camera check: a rule-based bead inspector and its Detector, the baseline every model must beat."""
