"""Reads encoded Parquet shards into training samples: table rows, or subjects with their event sequences."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow.parquet as pq
import torch

from spark_synth.encoding.packing import Field, unpack, words
from spark_synth.errors import SynthError

SPLIT_COLUMN = "__validation"
SUBJECT_ID = "__subject"  # a 64-bit hash of the subject key, linking encoded subjects and events
STEP_COLUMN = "__step"  # an event's position in its subject's sequence
BUCKET = "__bucket"  # the group of whole subjects an encoded event-log row belongs to (directories BUCKET=k)


def shard_files(directory: str) -> list[str]:
    """The Parquet parts of an encoded directory, in a stable order (ranks take disjoint slices)."""
    files = sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True))
    return [f for f in files if not os.path.basename(f).startswith(("_", "."))]


def balance(weights: dict[str, int], ranks: int) -> list[list[str]]:
    """The keys in ``ranks`` disjoint lists of near-equal total weight (heaviest first, to the lightest rank)."""
    shares: list[list[str]] = [[] for _ in range(ranks)]
    load = [0] * ranks
    for key, weight in sorted(weights.items(), key=lambda t: (-t[1], t[0])):
        lightest = load.index(min(load))
        shares[lightest].append(key)
        load[lightest] += weight
    return [sorted(share) for share in shares]


def assign_shards(files: list[str], ranks: int) -> list[dict[str, list[str]]]:
    """Each rank's files of a flat table, balanced by their row counts (Parquet footers: no data is read)."""
    return [{"rows": share} for share in balance({f: _rows(f) for f in files}, ranks)]


def assign_buckets(subject_dir: str, event_dir: str, ranks: int) -> list[dict[str, list[str]]]:
    """Each rank's subject and event files of an event log: whole buckets (subjects with all their events),
    balanced by their events. Unbucketed shards (one rank) all go to that rank."""
    buckets = sorted(d for d in os.listdir(subject_dir) if d.startswith(BUCKET + "="))
    if not buckets:
        return [{"subjects": shard_files(subject_dir), "events": shard_files(event_dir)}]
    events = {b: shard_files(os.path.join(event_dir, b)) if os.path.isdir(os.path.join(event_dir, b)) else []
              for b in buckets}
    weights = {b: sum(_rows(f) for f in events[b]) + 1 for b in buckets}
    return [{"subjects": [f for b in share for f in shard_files(os.path.join(subject_dir, b))],
             "events": [f for b in share for f in events[b]]} for share in balance(weights, ranks)]


def _rows(path: str) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def split_counts(files: list[str]) -> tuple[int, int]:
    """(training rows, validation rows) of encoded shards, reading only the split flag."""
    train = val = 0
    for path in files:
        flags = pq.read_table(path, columns=[SPLIT_COLUMN]).column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
        val += int(flags.sum())
        train += len(flags) - int(flags.sum())
    return train, val


def load_codes(fields: list[Field], files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(train codes, validation codes) as int64 tensors of shape (rows, sub-columns), from these shards."""
    train_parts, val_parts = [], []
    for path in files:
        table = pq.read_table(path, columns=[*words(fields), SPLIT_COLUMN])
        if table.num_rows == 0:
            continue
        codes = unpack(table, fields)
        is_val = table.column(SPLIT_COLUMN).to_numpy().astype(bool)
        train_parts.append(codes[~is_val])
        val_parts.append(codes[is_val])
    width = len(fields)

    def stack(parts: list[np.ndarray]) -> torch.Tensor:
        array = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.int32)
        if width:  # rows in a canonical order: training must not depend on the input's file layout
            array = array[np.lexsort(array.T[::-1])]
        return torch.from_numpy(array.astype(np.int64))

    return stack(train_parts), stack(val_parts)


class Samples(Protocol):
    """Training samples the loop can batch: rows of a flat table, or subjects with their events."""

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]: ...

    def head(self, n: int) -> Samples: ...


@dataclass
class FlatSamples:
    codes: torch.Tensor  # (rows, sub-columns)

    def __len__(self) -> int:
        return len(self.codes)

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        return (self.codes[index],)

    def head(self, n: int) -> FlatSamples:
        return FlatSamples(self.codes[:n])


@dataclass
class SequenceSamples:
    """Subjects with their padded event codes; long sequences are cut into windows when batched."""

    subject_codes: torch.Tensor  # (subjects, subject sub-columns) int64
    event_codes: torch.Tensor  # (subjects, max length, event sub-columns) int16, zero-padded
    lengths: torch.Tensor  # (subjects,) int64
    window: int = 64

    def __len__(self) -> int:
        return len(self.subject_codes)

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """(subject codes, event window, lengths, window starts). Training draws a random window per
        subject longer than the window; evaluation (no generator) takes the first one."""
        lengths = self.lengths[index]
        width = int(min(self.window, lengths.max().item() if len(index) else 0))
        starts = torch.zeros(len(index), dtype=torch.long)
        if generator is not None and width:
            slack = (lengths - width).clamp(min=0)
            starts = (torch.rand(len(index), generator=generator) * (slack + 1)).long().clamp(max=slack)
        steps = (starts[:, None] + torch.arange(width)[None, :]).clamp(max=self.event_codes.shape[1] - 1)
        events = self.event_codes[index[:, None], steps].long()
        return self.subject_codes[index], events, lengths, starts

    def head(self, n: int) -> SequenceSamples:
        return SequenceSamples(self.subject_codes[:n], self.event_codes[:n], self.lengths[:n], self.window)


def load_sequences(subject_files: list[str], event_files: list[str], subject_fields: list[Field],
                   event_fields: list[Field], max_length: int, window: int) -> tuple[SequenceSamples, SequenceSamples]:
    """(train, validation) subjects with their events, from encoded shards linked by ``SUBJECT_ID`` (the
    event files hold the events of these subjects, and may hold others': those are left out).

    Subjects come in a canonical order (by codes, then id), so training does not depend on file layout.
    """
    subjects, codes = _read(subject_files, [SUBJECT_ID, SPLIT_COLUMN], subject_fields)
    ids = subjects[SUBJECT_ID]
    order = np.lexsort([ids, *codes.T[::-1]])
    ids, codes, is_val = ids[order], codes[order], subjects[SPLIT_COLUMN][order].astype(bool)
    if len(np.unique(ids)) != len(ids):
        raise SynthError("two subject keys hash to the same internal id.", "Train again with another --seed.")
    events, event_codes = _read(event_files, [SUBJECT_ID, STEP_COLUMN], event_fields)
    by_id = np.argsort(ids)
    found = np.searchsorted(ids[by_id], events[SUBJECT_ID]).clip(max=max(len(ids) - 1, 0))
    known = ids[by_id][found] == events[SUBJECT_ID] if len(ids) else np.zeros(len(found), dtype=bool)
    owner = by_id[found[known]]
    padded = np.zeros((len(ids), max_length, len(event_fields)), dtype=np.int16)
    if event_fields:
        padded[owner, events[STEP_COLUMN][known]] = event_codes[known]
    lengths = np.bincount(owner, minlength=len(ids))

    def part(mask: np.ndarray) -> SequenceSamples:
        return SequenceSamples(torch.from_numpy(codes[mask].astype(np.int64)), torch.from_numpy(padded[mask]),
                               torch.from_numpy(lengths[mask].astype(np.int64)), window)

    return part(~is_val), part(is_val)


def event_rows(*parts: SequenceSamples) -> torch.Tensor:
    """Every real event's codes (no padding), as rows."""
    rows = [p.event_codes[torch.arange(p.event_codes.shape[1])[None, :] < p.lengths[:, None]] for p in parts]
    return torch.cat(rows).long()


def _read(files: list[str], columns: list[str], fields: list[Field]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The plain ``columns`` of these shards, and their codes (rows, sub-columns) unpacked."""
    tables = [pq.read_table(path, columns=[*columns, *words(fields)]) for path in files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return {c: np.zeros(0, dtype=np.int64) for c in columns}, np.zeros((0, len(fields)), dtype=np.int32)
    plain = {c: np.concatenate([t.column(c).to_numpy() for t in tables]) for c in columns}
    return plain, np.concatenate([unpack(t, fields) for t in tables])
