"""Differential privacy: the budget and its accounting, and the mechanisms for statistics (no Spark here)."""
