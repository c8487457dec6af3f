"""Seeding an event log with each subject's first events (Spark-free).

A seed subject may come with its first events, some or all of their columns. They travel inside
the subject's seed row as one nested column (a list of event structs), so a batch of seed rows
always holds its subjects' events, whatever Spark's partitioning. The sequence model keeps those
events' codes, runs its history through them and continues from there; the output repeats the
given values exactly, the order column included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from spark_synth.encoding.datetime import to_micros
from spark_synth.encoding.order import FIRST, GAP, split
from spark_synth.encoding.types import arrow_type
from spark_synth.errors import SynthError
from spark_synth.generators.controls import Controls, plan
from spark_synth.model.sequence import EventPrefix

SEED_EVENTS = "__seed_events"  # the nested column of a seed row's first events
SEED_EVENT_ID = "__seed_event"  # each seed event's input position, so events without an order keep theirs


def seed_event_columns(generator, names: list[str]) -> list[str]:
    """The seed events' columns besides the foreign key, in event-table order; unknown ones refused."""
    fk = generator.sequence.foreign_key
    if fk not in names:
        raise SynthError(f"the seed events have no foreign key column '{fk}' linking them to the seed subjects.",
                         f"Add '{fk}' holding the key of each event's seed subject.")
    known = [c for c in generator.event_types if c != fk]
    unknown = [n for n in names if n != fk and n not in known and not n.startswith("__")]
    if unknown:
        raise SynthError(f"the seed events have column(s) {unknown} that the generator's events do not have "
                         f"({known}).", "Rename or drop those columns of the seed events.")
    return [c for c in known if c in names]


def require_link(generator, subject_names: list[str]) -> str:
    """The subject key, which seed subjects must hold when seed events come with them."""
    key = generator.sequence.subject_key
    if key not in subject_names:
        raise SynthError(f"seed events need the subject key '{key}' in the seed subjects, to link them.",
                         f"Add '{key}' to the seed subjects (it only links; generated subjects get new keys).")
    return key


def nest(subjects: pa.Table, events: pa.Table, generator) -> pa.RecordBatch:
    """Seed subjects (with the subject key) and their events -> seed rows with :data:`SEED_EVENTS`, key dropped."""
    key, fk = require_link(generator, subjects.column_names), generator.sequence.foreign_key
    columns = seed_event_columns(generator, events.column_names)
    subject_keys = pc.cast(subjects.column(key), pa.string())
    if pc.count_distinct(subject_keys).as_py() < subjects.num_rows or subject_keys.null_count:
        raise SynthError(f"the seed subjects' key '{key}' is null or repeated.", "Give every seed subject its own key.")
    owner = pc.index_in(pc.cast(events.column(fk), pa.string()), value_set=subject_keys)
    if owner.null_count:
        raise SynthError(f"{owner.null_count} seed event(s) reference no seed subject ('{fk}' not among the seed "
                         f"subjects' '{key}').", "Give each seed event the key of a seed subject.")
    fields = events.select(columns).append_column(SEED_EVENT_ID, pa.array(np.arange(events.num_rows)))
    owner = owner.to_numpy(zero_copy_only=False)
    order = np.argsort(owner, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=subjects.num_rows))]).astype(np.int32)
    structs = pa.StructArray.from_arrays([c.combine_chunks() for c in fields.take(order).columns],
                                         names=fields.column_names)
    nested = pa.ListArray.from_arrays(pa.array(offsets), structs)
    out = subjects.drop_columns([key]).append_column(SEED_EVENTS, nested).combine_chunks()
    return out.to_batches()[0] if out.num_rows else pa.RecordBatch.from_pylist([], schema=out.schema)


@dataclass
class SeedEvents:
    """A seed batch's given events as the model takes them and as the output repeats them."""

    prefix: EventPrefix
    values: pa.RecordBatch  # the given columns (and the order's first value and gap), subject-major
    offsets: np.ndarray  # (n + 1,): subject i's given events are values[offsets[i]:offsets[i + 1]]

    def between(self, start: int, stop: int) -> SeedEvents:
        """The subjects start..stop-1 (a sub-batch), renumbered from 0."""
        p = self.prefix
        prefix = EventPrefix(p.codes[start:stop], p.lengths[start:stop], p.sub_columns, p.column_order)
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return SeedEvents(prefix, self.values.slice(lo, hi - lo), self.offsets[start:stop + 1] - lo)

    def overlay(self, decoded: pa.RecordBatch, owner: np.ndarray, step: np.ndarray) -> pa.RecordBatch:
        """Generated event columns with the given values at the given steps (rows of subject ``owner``)."""
        given = step < self.prefix.lengths.numpy()[owner]
        index = pa.array(np.where(given, self.offsets[owner] + step, 0))
        mask = pa.array(given)
        arrays = []
        for name, column in zip(decoded.schema.names, decoded.columns, strict=True):
            if name in self.values.schema.names:
                seeded = self.values.column(name).cast(column.type).take(index) if len(self.values) else column
                column = pc.if_else(mask, seeded, column)
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, schema=decoded.schema)


def seed_events_of(generator, batch: pa.RecordBatch) -> SeedEvents | None:
    """The given events of a seed batch's subjects (None when the batch has no :data:`SEED_EVENTS`)."""
    if SEED_EVENTS not in batch.schema.names:
        return None
    nested = batch.column(batch.schema.get_field_index(SEED_EVENTS))
    n, seq = batch.num_rows, generator.sequence
    flat = pc.list_flatten(nested)
    owner = pc.list_parent_indices(nested).to_numpy(zero_copy_only=False).astype(np.int64)
    names = [f.name for f in flat.type]
    columns = seed_event_columns(generator, [seq.foreign_key, *names])
    events = pa.RecordBatch.from_arrays(flat.flatten(), names=names)
    order_by = seq.order_by
    ordered = order_by in columns and bool(seq.gap_coded)
    keys = [events.column(SEED_EVENT_ID).to_numpy(zero_copy_only=False)] if SEED_EVENT_ID in names else []
    if ordered:  # by subject, then order value, then input position (np.lexsort: last key first)
        values = events.column(order_by).cast(arrow_type(seq.order_type))
        if values.null_count:
            raise SynthError(f"{values.null_count} seed event(s) have a null order column '{order_by}'.",
                             f"Give every seed event its '{order_by}'.")
        keys.append(_sortable(values))
    sort = np.lexsort([*keys, owner])
    events, owner = events.take(pa.array(sort)), owner[sort]
    lengths = np.bincount(owner, minlength=n)
    if n and lengths.max(initial=0) > seq.max_length:
        raise SynthError(f"a seed subject has {int(lengths.max())} events; this generator makes at most "
                         f"{seq.max_length} per subject.", f"Give at most {seq.max_length} events per subject.")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    step = np.arange(len(owner)) - offsets[owner]
    given = {c: events.column(c) for c in columns}
    if ordered:
        given[FIRST], given[GAP] = split(given.pop(order_by).cast(arrow_type(seq.order_type)), step == 0,
                                         seq.order_type)
    codec = generator.event_codec
    codes = np.zeros((n, max(int(lengths.max(initial=0)), 1), len(codec.sub_columns)), dtype=np.int64)
    sub_columns = []
    for column, (lo, hi) in zip(codec.modelled, codec.column_slices, strict=True):
        if column.name in given:
            codes[owner, step, lo:hi] = column.encode(given[column.name].cast(_stats_type(codec, column.name)))
            sub_columns += range(lo, hi)
    order = plan(codec, Controls(), [c.name for c in codec.modelled if c.name in given]).order
    prefix = EventPrefix(torch.from_numpy(codes), torch.from_numpy(lengths), sub_columns, order)
    values = pa.RecordBatch.from_arrays(list(given.values()), names=list(given))
    return SeedEvents(prefix, values, offsets)


def _sortable(values: pa.Array) -> np.ndarray:
    if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type):
        return to_micros(values)
    return values.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _stats_type(codec, name: str) -> pa.DataType:
    return arrow_type(codec.stats.column(name).spark_type)
