"""Anomaly-detection models behind one interface (`Detector`), and the registry that names them."""
