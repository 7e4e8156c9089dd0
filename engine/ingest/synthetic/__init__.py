"""Synthetic glue-line plant: part geometry, normal variation, warp defects, MVTec-layout output."""
