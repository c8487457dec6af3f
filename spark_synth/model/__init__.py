"""Torch models over integer sub-column codes. No Spark here."""

from spark_synth.model.argn import FlatARGN, ModelConfig

__all__ = ["FlatARGN", "ModelConfig"]
