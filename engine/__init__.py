"""gluelab engine: synthetic glue-line plant, image import, backbones, models and evaluation."""
