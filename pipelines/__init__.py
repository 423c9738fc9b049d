"""Prefect flows that drive the DVC stages (retraining, scheduling)."""
