"""A trained event-log generator: a flat generator for subjects plus a sequence model for their events.

Saved like a flat generator (JSON + safetensors, nothing pickled), in two sub-directories. A
chunk of subjects is a pure function of (generator, seed, chunk id): the subject table and the
event table are produced by separate Spark jobs that both replay the chunk's subject codes from
the same random stream, so every event references a subject of the same chunk without a join.
That holds on the CPU (the default) and, per device type, on an accelerator (:meth:`LogGenerator.to`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from safetensors.torch import load, save

from spark_synth.encoding import TableCodec
from spark_synth.encoding.order import FIRST, GAP, fallback_units, restore
from spark_synth.encoding.sequence import SequenceSpec
from spark_synth.encoding.stats import ColumnStats, TableStats
from spark_synth.encoding.types import arrow_type
from spark_synth.errors import SynthError
from spark_synth.generators.controls import Controls, plan
from spark_synth.generators.flat import (
    DEVICE_SUB_BATCH,
    SUB_BATCH,
    FlatGenerator,
    json_bytes,
    read_payload,
    torch_generator,
    unreadable_files_refused,
    with_seed_values,
    write_payload,
)
from spark_synth.generators.log_seed import SEED_EVENTS, nest, seed_events_of
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig
from spark_synth.ownership import LOG_FILES
from spark_synth.resources import ARROW_COPIES, model_bytes, row_bytes

FORMAT_VERSION = 1
FILES = LOG_FILES  # exactly what save writes: a model dir holding only these may be replaced
SUBJECT_STREAM, EVENT_STREAM, EVENT_DECODE_STREAM, SUBJECT_DECODE_STREAM = 0, 1, 2, 3
# subjects whose events are sampled together: stepping through events costs the same few calls per step for
# any batch, so a larger batch spreads them over more events (part of the output contract, keep fixed)
EVENT_BATCH = 8 * SUB_BATCH
DEVICE_EVENT_BATCH = 4 * DEVICE_SUB_BATCH  # the same on an accelerator (LogGenerator.to), where a step costs the same


@dataclass
class LogGenerator:
    """A generator of subjects and their events (see :mod:`spark_synth.generators.kinds` for the contract)."""

    unit: ClassVar[str] = "subjects"
    outputs: ClassVar[tuple[str, ...]] = ("subjects", "events")
    subjects: FlatGenerator
    event_stats: TableStats
    sequence: SequenceSpec
    model_config: SequenceModelConfig
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.event_codec = TableCodec(self.event_stats)
        self.model = SequenceARGN(self.model_config)
        self.model.load_state_dict(self.state)
        self.model.eval()
        self._tables: torch.Tensor | None = None
        self._event_batch: int | None = None
        self.key_codec = next(c for c in self.subjects.codec.columns if c.name == self.sequence.subject_key)
        self.pins_first, self.pins_later = self._order_pins()

    @property
    def stats(self) -> TableStats:
        return self.subjects.stats

    # ---- persistence ------------------------------------------------------------------
    def to_payload(self) -> dict[str, bytes]:
        subject_files = self.subjects.to_payload()
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        model = {"format_version": FORMAT_VERSION, "kind": "log-events", **self.model_config.to_dict()}
        log = {"format_version": FORMAT_VERSION, "kind": "log", **self.sequence.to_json()}
        return {"log.json": json_bytes(log), "meta.json": json_bytes(self.meta),
                **{f"subjects/{name}": subject_files[name] for name in ("stats.json", "model.json", "weights.safetensors")},
                "events/stats.json": json_bytes(self.event_stats.to_json()), "events/model.json": json_bytes(model),
                "events/weights.safetensors": save(state)}

    @classmethod
    def from_payload(cls, payload: dict[str, bytes], where: str = "generator") -> LogGenerator:
        missing = [f for f in FILES if f not in payload]
        if missing:
            raise SynthError(f"{where} is not a spark-synth event-log generator (missing {', '.join(missing)}).",
                             "Pass the --model-dir of a finished `spark-synth train --subjects ... --events ...`.")
        with unreadable_files_refused(where):
            log = json.loads(payload["log.json"])
            config = json.loads(payload["events/model.json"])
            if (log.pop("format_version", None), log.pop("kind", None)) != (FORMAT_VERSION, "log") or \
                    (config.pop("format_version", None), config.pop("kind", None)) != (FORMAT_VERSION, "log-events"):
                raise SynthError(f"{where} holds a generator format this version cannot read.",
                                 "Load it with the spark-synth version that trained it, or retrain.")
            subject_files = {name: payload[f"subjects/{name}"] for name in ("stats.json", "model.json", "weights.safetensors")}
            subjects = FlatGenerator.from_payload({**subject_files, "meta.json": b"{}"}, where=f"{where}/subjects")
            return cls(subjects, TableStats.from_json(json.loads(payload["events/stats.json"])), SequenceSpec.from_json(log),
                       SequenceModelConfig(**config),
                       load(payload["events/weights.safetensors"]), json.loads(payload["meta.json"]))

    def save(self, directory: str) -> None:
        """Write the files atomically: a crash leaves either the old directory or the new one. Only a missing
        or empty directory, or one holding exactly a generator's files, is written (else SynthError)."""
        write_payload(self.to_payload(), directory)

    @classmethod
    def load(cls, directory: str) -> LogGenerator:
        return cls.from_payload(read_payload(directory, FILES), where=directory)

    # ---- sampling ---------------------------------------------------------------------
    def to(self, device: str | torch.device, sub_batch: int | None = None, event_batch: int | None = None,
           bf16: bool = False) -> LogGenerator:
        """Sample subjects and events on ``device``; returns this generator (see :meth:`FlatGenerator.to`).

        Subjects are drawn ``sub_batch`` at a time (``SUB_BATCH`` on the CPU, ``DEVICE_SUB_BATCH``
        elsewhere) and their events stepped through ``event_batch`` subjects at a time (a multiple of
        ``sub_batch``: by default ``EVENT_BATCH`` on the CPU, ``DEVICE_EVENT_BATCH`` elsewhere, where a step costs
        the same launches for any batch). A chunk is then a pure function of (generator, seed, chunk id,
        chunk size, device type, sub-batch, event batch, bf16); with the defaults on the CPU it is exactly
        what it always was.
        """
        self.subjects.to(device, sub_batch, bf16)  # the device, sub-batch and precision live there
        size = self.sub_batch
        if event_batch is not None and (not isinstance(event_batch, int) or event_batch <= 0 or event_batch % size):
            raise SynthError(f"the event batch ({event_batch!r} subjects) must be a positive multiple of the subject "
                             f"sub-batch ({size}).", "Leave it out for the device's default.")
        self._event_batch = event_batch
        self.model.to(self.device)
        self._tables = None
        return self

    @property
    def device(self) -> torch.device:
        return self.subjects.device

    @property
    def sub_batch(self) -> int:
        """Subjects sampled at once."""
        return self.subjects.sub_batch

    @property
    def event_batch(self) -> int:
        """Subjects whose events are sampled together: whole sub-batches."""
        if self._event_batch:
            return self._event_batch
        if self.device.type != "cpu":  # measured on an H200: 2.4x the events/s of one 65,536-subject batch
            return DEVICE_EVENT_BATCH // self.sub_batch * self.sub_batch or self.sub_batch
        return max(EVENT_BATCH // self.sub_batch, 1) * self.sub_batch

    def precision(self) -> AbstractContextManager:
        """The context every sampling call runs in (the subject generator's: bfloat16 autocast if asked for)."""
        return self.subjects.precision()

    @property
    def tables(self) -> torch.Tensor:
        if self._tables is None:
            self._tables = self.model.events.lookup_tables()
        return self._tables

    def _order_pins(self) -> tuple[dict[int, int], dict[int, int]]:
        """The order column's first-value part is null after step 0 and its gap part null at step 0."""
        if not self.sequence.gap_coded:
            return {}, {}
        slices = dict(zip((c.name for c in self.event_codec.modelled), self.event_codec.column_slices, strict=True))
        pins: list[dict[int, int]] = []
        for name in (GAP, FIRST):
            codec = next(c for c in self.event_codec.modelled if c.name == name)
            null_codes = codec.encode(pa.array([None], type=arrow_type(codec.stats.spark_type)))[0]
            lo, _ = slices[name]
            pins.append({lo + i: int(code) for i, code in enumerate(null_codes)})
        return pins[0], pins[1]

    def _streams(self, seed: int, chunk_id: int) -> list[np.random.SeedSequence]:
        return np.random.SeedSequence([seed, chunk_id]).spawn(4)

    def _subject_codes(self, stream: np.random.SeedSequence, n: int, controls: Controls | None = None,
                       seed_batch: pa.RecordBatch | None = None) -> list[torch.Tensor]:
        """The chunk's subject codes (on the generator's device), one whole sub-batch at a time (so a chunk's
        prefix is stable); with a seed, its subject columns are fixed and the others drawn given them."""
        controls = controls or Controls()
        rng = torch_generator(int(stream.generate_state(1, dtype=np.uint64)[0]), self.device)
        subjects, reshape = self.subjects, {"temperature": controls.temperature, "top_p": controls.top_p}
        size = self.sub_batch
        with self.precision():
            if seed_batch is None:
                return [subjects.model.sample(size, rng, tables=subjects.tables, **reshape) for _ in range(0, n, size)]
            seeded = self.seed_columns(seed_batch.schema.names)
            steps = plan(subjects.codec, Controls(), seeded)
            fixed = subjects.encode_columns(seed_batch, seeded)
            return [subjects.model.sample(min(size, n - start), rng, steps.order, tables=subjects.tables, **reshape,
                                          fixed={j: torch.from_numpy(c[start:start + size]) for j, c in fixed.items()})
                    for start in range(0, n, size)]

    @staticmethod
    def check_controls(controls: Controls | None, seed_columns: Collection[str] = ()) -> Controls:
        """Event logs take temperature and top-p; rebalancing and fairness are flat-table controls."""
        controls = controls or Controls()
        controls.check()
        if controls.rebalance_column or controls.fairness_target:
            raise SynthError("rebalancing and fairness apply to flat-table generators; this is an event-log generator.",
                             "Leave them out for an event log (temperature, top-p and a subject seed work).")
        return controls

    @property
    def output_types(self) -> dict[str, dict[str, str]]:
        return {"subjects": self.subjects.output_types["rows"], "events": self.event_types}

    def sample_chunk(self, output: str, seed: int, chunk_id: int, n: int, first: int,
                     controls: Controls | None = None) -> pa.RecordBatch:
        produce = self.generate_subjects_chunk if output == "subjects" else self.generate_events_chunk
        return produce(seed, chunk_id, n, first, controls)

    def sample_seeded_batch(self, output: str, seed_batch: pa.RecordBatch, seed: int, batch_id: int, first: int,
                            controls: Controls | None = None) -> pa.RecordBatch:
        produce = self.generate_seeded_subjects if output == "subjects" else self.generate_seeded_events
        return produce(seed_batch, seed, batch_id, first, controls)

    def chunk_memory(self, chunk: int) -> int:
        """Bounded by the worst case, every subject at the protected maximum length: the model never draws more."""
        max_length = self.sequence.max_length
        event_columns = [*self.event_stats.columns, ColumnStats("key", "string", "key")]
        workspace = min(chunk, EVENT_BATCH) * max_length * self.model.events.n_sub * 8 * 3  # codes, 3 copies
        return (model_bytes(self.model.events) + model_bytes(self.subjects.model) + workspace
                + chunk * max_length * row_bytes(event_columns) * ARROW_COPIES)

    def seed_columns(self, names: list[str]) -> list[str]:
        """A seed's subject columns; the key is refused (new keys link the generated events)."""
        if self.sequence.subject_key in names:
            raise SynthError(f"the seed holds the subject key '{self.sequence.subject_key}'; generated subjects get "
                             "new keys, which link their events.", "Drop the key column from the seed, or pass seed "
                             "events, which it then links.")
        return self.subjects.seed_columns([n for n in names if n != SEED_EVENTS])

    def generate_subjects_chunk(self, seed: int, chunk_id: int, n_subjects: int, first_subject: int,
                                controls: Controls | None = None,
                                seed_batch: pa.RecordBatch | None = None) -> pa.RecordBatch:
        controls = self.check_controls(controls)
        streams = self._streams(seed, chunk_id)
        decode_rng = np.random.default_rng(streams[SUBJECT_DECODE_STREAM])
        batches = []
        size = self.sub_batch
        for i, codes in enumerate(self._subject_codes(streams[SUBJECT_STREAM], n_subjects, controls, seed_batch)):
            start = i * size
            row_ids = np.arange(first_subject + start, first_subject + start + len(codes), dtype=np.int64)
            decoded = self.subjects.codec.decode(codes.cpu().numpy(), decode_rng, row_ids)
            decoded = decoded.slice(0, min(size, n_subjects - start))
            if seed_batch is not None:  # the seed's own values, exactly
                decoded = with_seed_values(decoded, seed_batch.slice(start, decoded.num_rows),
                                        self.seed_columns(seed_batch.schema.names))
            batches.append(decoded)
        if not batches:
            return pa.RecordBatch.from_pylist([], schema=self.subjects.arrow_schema)
        return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]

    def generate_events_chunk(self, seed: int, chunk_id: int, n_subjects: int, first_subject: int,
                              controls: Controls | None = None,
                              seed_batch: pa.RecordBatch | None = None) -> pa.RecordBatch:
        """The events of the chunk's subjects, subject by subject in order; event keys from (chunk, index)."""
        controls = self.check_controls(controls)
        streams = self._streams(seed, chunk_id)
        event_rng = torch_generator(int(streams[EVENT_STREAM].generate_state(1, dtype=np.uint64)[0]), self.device)
        decode_rng = np.random.default_rng(streams[EVENT_DECODE_STREAM])
        max_length = self.sequence.max_length
        given = seed_events_of(self, seed_batch) if seed_batch is not None else None
        batches, emitted = [], 0
        drawn = self._subject_codes(streams[SUBJECT_STREAM], n_subjects, controls, seed_batch)
        for start, subject_codes in event_batches(drawn, self.sub_batch, self.event_batch):
            part = given.between(start, start + len(subject_codes)) if given is not None else None
            with self.precision():
                sampled = self.model.sample(subject_codes, event_rng, self.tables, self.pins_first, self.pins_later,
                                            controls.temperature, controls.top_p,
                                            part.prefix if part is not None else None)
            codes, owner, step = (t.cpu() for t in sampled)
            row_ids = first_subject * max_length + emitted + np.arange(len(codes), dtype=np.int64)
            decoded = self.event_codec.decode(codes.numpy(), decode_rng, row_ids)
            if part is not None:  # the given events' values, exactly (the order column through its parts)
                decoded = part.overlay(decoded, owner.numpy(), step.numpy())
            keep = owner.numpy() < n_subjects - start
            batch = self._assemble(decoded, first_subject + start + owner.numpy(), step.numpy() == 0)
            batch = batch.filter(pa.array(keep))
            emitted += batch.num_rows
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=self.event_schema)
        if table.num_rows == 0:
            return pa.RecordBatch.from_pylist([], schema=self.event_schema)
        return table.combine_chunks().to_batches()[0]

    def generate_seeded_subjects(self, seed_batch: pa.RecordBatch, seed: int, batch_id: int, first_subject: int,
                                 controls: Controls | None = None) -> pa.RecordBatch:
        """One subject per seed row, its subject columns kept."""
        return self.generate_subjects_chunk(seed, batch_id, seed_batch.num_rows, first_subject, controls, seed_batch)

    def generate_seeded_events(self, seed_batch: pa.RecordBatch, seed: int, batch_id: int, first_subject: int,
                               controls: Controls | None = None) -> pa.RecordBatch:
        """The events of the subjects :meth:`generate_seeded_subjects` makes from the same seed batch."""
        return self.generate_events_chunk(seed, batch_id, seed_batch.num_rows, first_subject, controls, seed_batch)

    def _assemble(self, decoded: pa.RecordBatch, subject_rows: np.ndarray, is_start: np.ndarray) -> pa.RecordBatch:
        """Decoded event columns -> the event table's columns: the foreign key, the restored order column."""
        seq = self.sequence
        arrays: dict[str, pa.Array] = {name: decoded.column(name) for name in decoded.schema.names}
        keys = self.key_codec.decode(np.zeros((len(subject_rows), 0)), None, subject_rows)
        arrays[seq.foreign_key] = keys.cast(arrow_type(seq.foreign_key_type))
        if seq.gap_coded:
            first_stats = self.event_stats.column(FIRST)
            order = restore(arrays.pop(FIRST), arrays.pop(GAP), is_start, seq.order_type,
                            fallback_units(first_stats, seq.order_type))
            if seq.order_text == "timestamp":  # parsed from text: written back as text
                order = pc.strftime(order, format="%Y-%m-%d %H:%M:%S")
            arrays[seq.order_by] = order.cast(pa.string()) if seq.order_text else order
        schema = self.event_schema
        return pa.RecordBatch.from_arrays([arrays[f.name] for f in schema], schema=schema)

    @property
    def event_types(self) -> dict[str, str]:
        """Spark type of every output event column, in the event table's column order."""
        seq = self.sequence
        types = {c.name: c.spark_type for c in self.event_stats.columns}
        types[seq.foreign_key] = seq.foreign_key_type
        if seq.order_by and seq.gap_coded:
            types[seq.order_by] = "string" if seq.order_text else seq.order_type
        return {name: types[name] for name in seq.event_columns if name in types}

    @property
    def event_schema(self) -> pa.Schema:
        return pa.schema([(name, arrow_type(kind)) for name, kind in self.event_types.items()])

    def sample_seeded(self, seed_data: pd.DataFrame, seed: int = 0, controls: Controls | None = None,
                      seed_events: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(subjects, events) in this process: one subject per seed row, its subject columns kept, and with
        ``seed_events`` (linked by the subject key) each subject's first events, kept."""
        if seed_data.empty:
            raise SynthError("the seed has no rows.", "Pass a seed with one row per synthetic subject wanted.")
        if seed_events is not None:
            batch = nest(pa.Table.from_pandas(seed_data, preserve_index=False),
                         pa.Table.from_pandas(seed_events, preserve_index=False), self)
        else:
            batch = pa.RecordBatch.from_pandas(seed_data, preserve_index=False)
        self.seed_columns(batch.schema.names)
        subjects = pa.Table.from_batches([self.generate_seeded_subjects(batch, seed, 0, 0, controls)]).to_pandas()
        events = pa.Table.from_batches([self.generate_seeded_events(batch, seed, 0, 0, controls)],
                                       schema=self.event_schema).to_pandas()
        return subjects, events

    def sample(self, n_subjects: int, seed: int = 0, chunk_size: int = 10_240,
               controls: Controls | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(subjects, events) in this process: the same as a Spark generation with this seed and chunk size."""
        if n_subjects <= 0:
            raise SynthError(f"cannot sample {n_subjects} subjects.", "Ask for a positive number of subjects.")
        chunks = [(c, min(chunk_size, n_subjects - c * chunk_size), c * chunk_size)
                  for c in range((n_subjects + chunk_size - 1) // chunk_size)]
        subjects = pa.Table.from_batches([self.generate_subjects_chunk(seed, *c, controls) for c in chunks]).to_pandas()
        events = pa.Table.from_batches([self.generate_events_chunk(seed, *c, controls) for c in chunks],
                                       schema=self.event_schema).to_pandas()
        return subjects, events


    # ---- serving: one table per request, events joined to their subject (spark_synth.generators.mlflow_model) --
    @property
    def max_rows_per_unit(self) -> int:
        """Rows one subject adds to an answer, at most: a request is judged by its worst case before sampling."""
        return max(1, int(self.sequence.max_length))

    def serving_seed(self, request: pd.DataFrame) -> pd.DataFrame | None:
        """The request as a seed (subject columns, and ``event.<column>`` columns for first events, the subject key
        linking a subject's rows), or None: only ``rows``/``seed``."""
        if not set(request.columns) - {"rows", "seed"}:
            return None
        key = self.sequence.subject_key
        if any(c.startswith("event.") for c in request.columns) and key not in request.columns:
            raise SynthError(f"seed events need the subject key '{key}' to link each event row to its subject.",
                             f"Add '{key}' to every row of the request.")
        return request.drop(columns=[c for c in ("rows", "seed") if c in request.columns])

    def seed_units(self, seed_rows: pd.DataFrame) -> int:
        """Subjects the seed asks for: one per row, or one per key where rows carry events."""
        if any(c.startswith("event.") for c in seed_rows.columns):
            return int(seed_rows[self.sequence.subject_key].nunique())
        return len(seed_rows)

    def sample_table(self, n: int, seed: int, controls: Controls | None = None) -> pd.DataFrame:
        return denormalized(*self.sample(n, seed=seed, controls=controls), self.sequence)

    def sample_seeded_table(self, seed_rows: pd.DataFrame, seed: int, controls: Controls | None = None) -> pd.DataFrame:
        key, fk = self.sequence.subject_key, self.sequence.foreign_key
        event_columns = [c for c in seed_rows.columns if c.startswith("event.")]
        subject_columns = [c for c in seed_rows.columns if c not in event_columns]
        if not event_columns:
            return denormalized(*self.sample_seeded(seed_rows, seed, controls), self.sequence)
        subjects = seed_rows[subject_columns].drop_duplicates(key)
        rows = seed_rows[seed_rows[event_columns].notna().any(axis=1)]
        events = rows[[key, *event_columns]].rename(columns={key: fk, **{c: c[len("event."):] for c in event_columns}})
        return denormalized(*self.sample_seeded(subjects, seed, controls, seed_events=events), self.sequence)


def event_batches(subject_codes: list[torch.Tensor], sub_batch: int = SUB_BATCH,
                  event_batch: int = EVENT_BATCH) -> list[tuple[int, torch.Tensor]]:
    """The chunk's subject sub-batches (of ``sub_batch``) joined into batches of ``event_batch``: (first subject,
    codes)."""
    per = event_batch // sub_batch
    return [(i * sub_batch, torch.cat(subject_codes[i:i + per])) for i in range(0, len(subject_codes), per)]


def denormalized(subjects: pd.DataFrame, events: pd.DataFrame, sequence: SequenceSpec) -> pd.DataFrame:
    """Events with their subject's attributes (subjects without events keep one row of nulls): the
    single table the MLflow pyfunc returns."""
    key, fk = sequence.subject_key, sequence.foreign_key
    right = events.rename(columns={c: f"event.{c}" for c in events.columns if c != fk})
    merged = subjects.merge(right, how="left", left_on=key, right_on=fk)
    return merged.drop(columns=[fk]) if fk != key else merged
