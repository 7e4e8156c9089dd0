"""Anomaly-detection models behind one interface (`Detector`): one package per model, each registering its entry
(`registry.ModelEntry`); `catalogue` imports them all and is where the models are asked for."""
