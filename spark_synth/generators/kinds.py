"""The contract every generator keeps, and loading whichever kind a directory or a payload holds.

The Spark jobs, MLflow serving and the stages use only this contract, so a new data shape is a new
generator class, not a new branch in each of them. A generator makes one or more output tables (a flat
table: its rows; an event log: its subjects and their events), chunk by chunk, each chunk a pure function of
(generator, seed, chunk id, chunk size) on a given device type.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import ClassVar, Protocol

import pyarrow as pa
import torch

from spark_synth.errors import SynthError
from spark_synth.generators.controls import Controls
from spark_synth.generators.event_log import LogGenerator
from spark_synth.generators.flat import FlatGenerator


class Generator(Protocol):
    unit: ClassVar[str]  # what a chunk counts: "rows" or "subjects"
    outputs: ClassVar[tuple[str, ...]]  # the tables one chunk yields, in writing order
    device: torch.device

    def to_payload(self) -> dict[str, bytes]:
        """The generator's files as bytes: what is saved, logged to MLflow, or shipped to Spark workers."""

    def save(self, directory: str) -> None: ...

    def to(self, device: str | torch.device, sub_batch: int | None = None, bf16: bool = False) -> Generator:
        """Sample on ``device`` from now on; returns this generator."""

    def precision(self) -> AbstractContextManager: ...

    @property
    def output_types(self) -> dict[str, dict[str, str]]:
        """For each output table, its columns' Spark types in column order."""

    def check_controls(self, controls: Controls | None, seed_columns: Collection[str] = ()) -> Controls:
        """The controls (defaults for None), refused with a clear error where this generator cannot honour them."""

    def seed_columns(self, names: list[str]) -> list[str]:
        """The seed's columns this generator keeps; a seed it cannot take is refused."""

    def sample_chunk(self, output: str, seed: int, chunk_id: int, n: int, first: int,
                     controls: Controls | None = None) -> pa.RecordBatch:
        """Output table ``output`` of the chunk of ``n`` units starting at unit ``first``."""

    def sample_seeded_batch(self, output: str, seed_batch: pa.RecordBatch, seed: int, batch_id: int, first: int,
                            controls: Controls | None = None) -> pa.RecordBatch:
        """Output table ``output`` for one unit per seed row, the seed's values kept."""

    def chunk_memory(self, chunk: int) -> int:
        """Upper estimate, in bytes, of one task's memory while it samples a chunk of ``chunk`` units."""


def generator_class(file_names: Collection[str]) -> type[FlatGenerator] | type[LogGenerator]:
    """The generator class whose files these are (an event log has ``log.json`` at its root)."""
    return LogGenerator if "log.json" in file_names else FlatGenerator


def from_payload(payload: dict[str, bytes], where: str = "generator") -> Generator:
    return generator_class(payload).from_payload(payload, where)


def load_directory(directory: str) -> Generator:
    """A flat or an event-log generator, whichever the directory holds; only known data files are read."""
    if not os.path.isdir(directory):
        raise SynthError(f"no generator at {directory}.", "Pass the --model-dir of a finished `spark-synth train`.")
    return generator_class(os.listdir(directory)).load(directory)
