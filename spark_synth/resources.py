"""Resource guards: how much memory one generation task needs, checked before any task starts.

A task holds one chunk at a time: the generator (weights and lookup tables), the sampling workspace of
one sub-batch, and the chunk's Arrow columns, about three times over (the decoded parts, the combined
batch, the copy handed to the JVM). An event log's chunk is bounded by its worst case, every subject at
the protected maximum length, since the generator can never draw more. A chunk that cannot fit is
refused on the driver with the chunk size that would, instead of an executor dying out of memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from spark_synth.encoding.stats import ColumnStats
from spark_synth.errors import SynthError

if TYPE_CHECKING:
    from spark_synth.generators.kinds import Generator

DEFAULT_TASK_MEMORY_MB = 4096  # a worst case: most chunks use far less
ARROW_COPIES = 3  # decoded parts, the combined batch, the buffer sent to the JVM
FIXED_TYPES = {"boolean": 2, "tinyint": 2, "smallint": 3, "int": 5, "date": 5, "float": 5}  # value + validity
KEY_BYTES = 24  # "syn-<row>" keys


def value_bytes(column: ColumnStats) -> int:
    """Upper estimate of one value of a column in Arrow: fixed width, or offset + the longest known string."""
    kind = column.spark_type
    if kind in FIXED_TYPES:
        return FIXED_TYPES[kind]
    if kind != "string":
        return 9  # bigint, double, timestamp: 8 bytes + validity
    if column.encoding == "key":
        return KEY_BYTES
    values = [v for v in column.values or () if isinstance(v, str)]
    return 5 + max((len(v.encode("utf-8")) for v in values), default=32)


def row_bytes(columns: Iterable[ColumnStats]) -> int:
    return sum(value_bytes(c) for c in columns)


def model_bytes(model: Any) -> int:
    """The network's weights plus its generation lookup tables (one float per table cell)."""
    weights = sum(p.numel() for p in model.parameters()) * 4
    cards, hidden = model.config.cardinalities, model.config.hidden
    return weights + len(cards) * sum(cards) * hidden * 4


def check_chunk_fits(generator: Generator, chunk: int, limit_mb: int, flag: str) -> None:
    """Refuse a chunk whose task would need more than ``limit_mb``, naming the largest chunk that fits."""
    need = generator.chunk_memory(chunk)
    limit = limit_mb * 2**20
    if need <= limit:
        return
    fixed = generator.chunk_memory(0)
    per_unit = max((need - fixed) / max(chunk, 1), 1.0)
    fits = int((limit - fixed) / per_unit) if limit > fixed else 0
    unit = generator.unit
    fix = (f"Lower {flag} to {fits:,} or less, or raise --max-task-memory-mb (and the executors' memory to match)."
           if fits > 0 else "Raise --max-task-memory-mb (and the executors' memory to match): the generator alone "
           "does not fit.")
    raise SynthError(f"a chunk of {chunk:,} {unit} needs about {need / 2**20:,.0f} MiB in one task, over the "
                     f"{limit_mb:,} MiB a task may use.", fix)
