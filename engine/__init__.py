"""gluelab engine: the synthetic plant and image import, models and backbones, evaluation (here, queued for a
worker or on Ray), deployment, the analysis of results, and the `gluelab` command."""
