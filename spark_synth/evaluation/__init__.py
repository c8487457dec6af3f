"""Quality evaluation of synthetic data against the real data it imitates, computed with Spark."""
