"""A trained generator as data: protected stats (JSON), model config (JSON), weights (safetensors).

Loading never unpickles: the network is rebuilt from the JSON config and filled from
safetensors. Sampling is a pure function of (generator, seed, chunk id, chunk size).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from safetensors.torch import load, save

from spark_synth.encoding import TableCodec
from spark_synth.errors import SynthError
from spark_synth.model.argn import FlatARGN, ModelConfig

FORMAT_VERSION = 1
FILES = ("stats.json", "model.json", "weights.safetensors", "meta.json")
SUB_BATCH = 2048  # rows sampled at once inside a chunk (cache-sized); part of the output contract, keep fixed


@dataclass
class Generator:
    stats: dict[str, Any]
    model_config: ModelConfig
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.codec = TableCodec(self.stats)
        self.model = FlatARGN(self.model_config)
        self.model.load_state_dict(self.state)
        self.model.eval()
        self._tables: torch.Tensor | None = None

    # ---- persistence ------------------------------------------------------------------
    def to_payload(self) -> dict[str, bytes]:
        """The generator as its four files' bytes: what is saved, logged to MLflow, or shipped to workers."""
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        model = {"format_version": FORMAT_VERSION, "kind": "flat", **self.model_config.to_dict()}
        return {"stats.json": _json_bytes(self.stats), "model.json": _json_bytes(model),
                "meta.json": _json_bytes(self.meta), "weights.safetensors": save(state)}

    @classmethod
    def from_payload(cls, payload: dict[str, bytes], where: str = "generator") -> Generator:
        missing = [f for f in FILES if f not in payload]
        if missing:
            raise SynthError(f"{where} is not a spark-synth generator (missing {', '.join(missing)}).",
                             "Pass the --model-dir of a finished `spark-synth train`, or models:/NAME/VERSION.")
        config = json.loads(payload["model.json"])
        if config.pop("format_version", None) != FORMAT_VERSION or config.pop("kind", None) != "flat":
            raise SynthError(f"{where} holds a generator format this version cannot read.",
                             "Load it with the spark-synth version that trained it, or retrain.")
        return cls(json.loads(payload["stats.json"]), ModelConfig(**config), load(payload["weights.safetensors"]),
                   json.loads(payload["meta.json"]))

    def save(self, directory: str) -> None:
        """Write the files atomically: a crash leaves either the old directory or the new one."""
        write_payload(self.to_payload(), directory)

    @classmethod
    def load(cls, directory: str) -> Generator:
        """Read a generator directory; only the known data files are read, nothing is executed."""
        if not os.path.isdir(directory):
            raise SynthError(f"no generator at {directory}.", "Pass the --model-dir of a finished `spark-synth train`.")
        return cls.from_payload(read_payload(directory, FILES), where=directory)

    # ---- sampling ---------------------------------------------------------------------
    @property
    def tables(self) -> torch.Tensor:
        """The sampler's lookup tables, built once per generator."""
        if self._tables is None:
            self._tables = self.model.lookup_tables()
        return self._tables

    def generate_chunk(self, seed: int, chunk_id: int, n_rows: int, first_row: int,
                       temperature: float = 1.0) -> pa.RecordBatch:
        """The rows of one chunk: every random draw comes from generators seeded by (seed, chunk id).

        Sub-batches are always drawn whole and the last one truncated, so a chunk's first m rows
        do not depend on its length: ``sample(n)`` is a prefix of any longer generation.
        """
        sequence = np.random.SeedSequence([seed, chunk_id])
        torch_seed, numpy_seed = sequence.generate_state(2, dtype=np.uint64)
        torch_rng = torch.Generator().manual_seed(int(torch_seed) & 0x7FFF_FFFF_FFFF_FFFF)
        numpy_rng = np.random.default_rng(int(numpy_seed))
        batches = []
        for start in range(0, n_rows, SUB_BATCH):
            codes = self.model.sample(SUB_BATCH, torch_rng, temperature=temperature, tables=self.tables)
            row_ids = np.arange(first_row + start, first_row + start + SUB_BATCH, dtype=np.int64)
            decoded = self.codec.decode(codes.numpy(), numpy_rng, row_ids)
            batches.append(decoded.slice(0, min(SUB_BATCH, n_rows - start)))
        if not batches:
            return self.empty_batch()
        return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]

    def empty_batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pylist([], schema=self.arrow_schema)

    @property
    def arrow_schema(self) -> pa.Schema:
        from spark_synth.encoding.types import arrow_type

        return pa.schema([(c["name"], arrow_type(c["spark_type"])) for c in self.stats["columns"]])

    def sample(self, n: int, seed: int = 0, chunk_size: int = 100_000) -> pd.DataFrame:
        """n synthetic rows in this process: the first n rows of any Spark generation with this seed and chunk size."""
        if n <= 0:
            raise SynthError(f"cannot sample {n} rows.", "Ask for a positive number of rows.")
        parts = [
            self.generate_chunk(seed, chunk, min(chunk_size, n - chunk * chunk_size), chunk * chunk_size)
            for chunk in range((n + chunk_size - 1) // chunk_size)
        ]
        return pa.Table.from_batches(parts).to_pandas()


def write_payload(payload: dict[str, bytes], directory: str) -> None:
    """Write named files (names may hold one sub-directory) via a staging sibling renamed into place."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(directory)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        for name, content in payload.items():
            os.makedirs(os.path.dirname(os.path.join(staging, name)), exist_ok=True)
            with open(os.path.join(staging, name), "wb") as handle:
                handle.write(content)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_payload(directory: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The known files of a generator directory that exist; nothing else is read."""
    payload = {}
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                payload[name] = handle.read()
    return payload


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, indent=1, default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
