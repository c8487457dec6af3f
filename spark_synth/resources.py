"""Resource guards: how much memory one generation task needs, checked before any task starts.

A task holds one chunk at a time: the generator (weights and lookup tables), the sampling workspace of
one sub-batch, and the chunk's Arrow columns, about three times over (the decoded parts, the combined
batch, the copy handed to the JVM). An event log's chunk is bounded by its worst case, every subject at
the protected maximum length, since the generator can never draw more. A chunk that cannot fit is
refused on the driver with the chunk size that would, instead of an executor dying out of memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spark_synth.errors import SynthError

if TYPE_CHECKING:
    from spark_synth.generator import Generator
    from spark_synth.log_generator import LogGenerator

DEFAULT_TASK_MEMORY_MB = 4096  # a worst case: most chunks use far less
ARROW_COPIES = 3  # decoded parts, the combined batch, the buffer sent to the JVM
FIXED_TYPES = {"boolean": 2, "tinyint": 2, "smallint": 3, "int": 5, "date": 5, "float": 5}  # value + validity
KEY_BYTES = 24  # "syn-<row>" keys


def value_bytes(column: dict[str, Any]) -> int:
    """Upper estimate of one value of a column in Arrow: fixed width, or offset + the longest known string."""
    kind = column["spark_type"]
    if kind in FIXED_TYPES:
        return FIXED_TYPES[kind]
    if kind != "string":
        return 9  # bigint, double, timestamp: 8 bytes + validity
    if column.get("encoding") == "key":
        return KEY_BYTES
    values = [v for v in column.get("values", ()) if isinstance(v, str)]
    return 5 + max((len(v.encode("utf-8")) for v in values), default=32)


def row_bytes(columns: list[dict[str, Any]]) -> int:
    return sum(value_bytes(c) for c in columns)


def model_bytes(model: Any) -> int:
    """The network's weights plus its generation lookup tables (one float per table cell)."""
    weights = sum(p.numel() for p in model.parameters()) * 4
    cards, hidden = model.config.cardinalities, model.config.hidden
    return weights + len(cards) * sum(cards) * hidden * 4


def chunk_memory(generator: Generator | LogGenerator, chunk: int) -> int:
    """Upper estimate, in bytes, of one task's memory for a chunk of ``chunk`` rows (flat) or subjects (log)."""
    from spark_synth.generator import SUB_BATCH
    from spark_synth.log_generator import EVENT_BATCH, LogGenerator

    if isinstance(generator, LogGenerator):
        events = chunk * generator.sequence["max_length"]
        event_columns = [*generator.event_stats["columns"], {"spark_type": "string", "encoding": "key"}]
        sub_columns = generator.model.events.n_sub
        workspace = min(chunk, EVENT_BATCH) * generator.sequence["max_length"] * sub_columns * 8 * 3  # codes, 3 copies
        return (model_bytes(generator.model.events) + model_bytes(generator.subjects.model) + workspace
                + events * row_bytes(event_columns) * ARROW_COPIES)
    model = generator.model
    workspace = SUB_BATCH * model.n_sub * (16 + 4 * model.config.hidden)
    return model_bytes(model) + workspace + chunk * row_bytes(generator.stats["columns"]) * ARROW_COPIES


def check_chunk_fits(generator: Generator | LogGenerator, chunk: int, limit_mb: int, flag: str) -> None:
    """Refuse a chunk whose task would need more than ``limit_mb``, naming the largest chunk that fits."""
    need = chunk_memory(generator, chunk)
    limit = limit_mb * 2**20
    if need <= limit:
        return
    fixed = chunk_memory(generator, 0)
    per_unit = max((need - fixed) / max(chunk, 1), 1.0)
    fits = int((limit - fixed) / per_unit) if limit > fixed else 0
    from spark_synth.log_generator import LogGenerator

    unit = "subjects" if isinstance(generator, LogGenerator) else "rows"
    fix = (f"Lower {flag} to {fits:,} or less, or raise --max-task-memory-mb (and the executors' memory to match)."
           if fits > 0 else "Raise --max-task-memory-mb (and the executors' memory to match): the generator alone "
           "does not fit.")
    raise SynthError(f"a chunk of {chunk:,} {unit} needs about {need / 2**20:,.0f} MiB in one task, over the "
                     f"{limit_mb:,} MiB a task may use.", fix)
