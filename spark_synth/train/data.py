"""Reads encoded Parquet shards (one row = one training sample) into code tensors."""

from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow.parquet as pq
import torch

SPLIT_COLUMN = "__validation"


def shard_files(directory: str) -> list[str]:
    """The Parquet parts of an encoded directory, in a stable order (ranks take disjoint slices)."""
    files = sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True))
    return [f for f in files if not os.path.basename(f).startswith(("_", "."))]


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
