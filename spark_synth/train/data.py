"""Reads encoded Parquet shards into training samples: table rows, or subjects with their event sequences."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow.parquet as pq
import torch

from spark_synth.errors import SynthError

SPLIT_COLUMN = "__validation"
SUBJECT_ID = "__subject"  # a 64-bit hash of the subject key, linking encoded subjects and events
STEP_COLUMN = "__step"  # an event's position in its subject's sequence


def shard_files(directory: str) -> list[str]:
    """The Parquet parts of an encoded directory, in a stable order (ranks take disjoint slices)."""
    files = sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True))
    return [f for f in files if not os.path.basename(f).startswith(("_", "."))]


def assign_shards(files: list[str], ranks: int) -> list[list[str]]:
    """Disjoint lists of files, one per rank, with rows as even as whole files allow (largest first to the
    lightest rank); row counts come from the Parquet footers, no data is read."""
    sizes = [(pq.ParquetFile(f).metadata.num_rows, f) for f in files]
    shares: list[list[str]] = [[] for _ in range(ranks)]
    rows = [0] * ranks
    for size, path in sorted(sizes, key=lambda t: (-t[0], t[1])):
        lightest = rows.index(min(rows))
        shares[lightest].append(path)
        rows[lightest] += size
    return [sorted(share) for share in shares]


def split_counts(files: list[str]) -> tuple[int, int]:
    """(training rows, validation rows) of encoded shards, reading only the split flag."""
    train = val = 0
    for path in files:
        flags = pq.read_table(path, columns=[SPLIT_COLUMN]).column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
        val += int(flags.sum())
        train += len(flags) - int(flags.sum())
    return train, val


def load_codes(directory: str, sub_columns: list[str], files: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(train codes, validation codes) as int64 tensors of shape (rows, sub-columns)."""
    train_parts, val_parts = [], []
    for path in files if files is not None else shard_files(directory):
        table = pq.read_table(path, columns=[*sub_columns, SPLIT_COLUMN])
        if table.num_rows == 0:
            continue
        codes = np.stack([table.column(c).to_numpy() for c in sub_columns], axis=1) if sub_columns else np.zeros(
            (table.num_rows, 0), dtype=np.int32
        )
        is_val = table.column(SPLIT_COLUMN).to_numpy().astype(bool)
        train_parts.append(codes[~is_val])
        val_parts.append(codes[is_val])
    width = len(sub_columns)

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


def load_sequences(subject_dir: str, event_dir: str, subject_fields: list[str], event_fields: list[str],
                   max_length: int, window: int) -> tuple[SequenceSamples, SequenceSamples]:
    """(train, validation) subjects with their events, from encoded shards linked by ``SUBJECT_ID``.

    Subjects come in a canonical order (by codes, then id), so training does not depend on file layout.
    """
    subjects = _read(subject_dir, [SUBJECT_ID, *subject_fields, SPLIT_COLUMN])
    ids = subjects[SUBJECT_ID]
    codes = np.stack([subjects[f] for f in subject_fields], axis=1) if subject_fields else np.zeros((len(ids), 0), np.int32)
    order = np.lexsort([ids, *codes.T[::-1]])
    ids, codes, is_val = ids[order], codes[order], subjects[SPLIT_COLUMN][order].astype(bool)
    if len(np.unique(ids)) != len(ids):
        raise SynthError("two subject keys hash to the same internal id.", "Train again with another --seed.")
    events = _read(event_dir, [SUBJECT_ID, STEP_COLUMN, *event_fields])
    by_id = np.argsort(ids)
    owner = by_id[np.searchsorted(ids[by_id], events[SUBJECT_ID])]
    padded = np.zeros((len(ids), max_length, len(event_fields)), dtype=np.int16)
    if event_fields:
        padded[owner, events[STEP_COLUMN]] = np.stack([events[f] for f in event_fields], axis=1)
    lengths = np.bincount(owner, minlength=len(ids))

    def part(mask: np.ndarray) -> SequenceSamples:
        return SequenceSamples(torch.from_numpy(codes[mask].astype(np.int64)), torch.from_numpy(padded[mask]),
                               torch.from_numpy(lengths[mask].astype(np.int64)), window)

    return part(~is_val), part(is_val)


def _read(directory: str, columns: list[str]) -> dict[str, np.ndarray]:
    tables = [pq.read_table(path, columns=columns) for path in shard_files(directory)]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return {c: np.zeros(0, dtype=np.int64) for c in columns}
    return {c: np.concatenate([t.column(c).to_numpy() for t in tables]) for c in columns}
