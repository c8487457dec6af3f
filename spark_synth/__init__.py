"""spark-synth: privacy-preserving synthetic data, trained and sampled on Spark."""

__version__ = "0.1.0"
