"""Analysis of stored results: result tables and model selection. Imports neither torch nor anomalib."""
