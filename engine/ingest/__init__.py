"""Data intake: the synthetic plant, import layouts and their validation, and loading a registered part."""
