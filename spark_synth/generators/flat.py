"""A trained generator as data: protected stats (JSON), model config (JSON), weights (safetensors).

Loading never unpickles: the network is rebuilt from the JSON config and filled from
safetensors. Sampling is a pure function of (generator, seed, chunk id, chunk size) on the CPU, the
default; :meth:`FlatGenerator.to` samples on an accelerator instead (see there for what the output then
depends on).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from safetensors.torch import load, save

from spark_synth.encoding import TableCodec
from spark_synth.encoding.base import null_mask
from spark_synth.encoding.stats import TableStats
from spark_synth.errors import SynthError
from spark_synth.generators.controls import Controls, Plan, null_codes, plan
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.ownership import FLAT_FILES, write_files
from spark_synth.resources import ARROW_COPIES, model_bytes, row_bytes

FORMAT_VERSION = 1
FILES = FLAT_FILES  # exactly what save writes: a model dir holding only these may be replaced
SUB_BATCH = 2048  # rows sampled at once inside a chunk (cache-sized); part of the output contract, keep fixed
# the same on an accelerator (FlatGenerator.to), where 2048-row batches are bound by kernel launches, not arithmetic
DEVICE_SUB_BATCH = 65_536
MAX_OVERSAMPLING = 20  # rebalancing draws at most this many times a chunk's rows before fixing rare values


@dataclass
class FlatGenerator:
    """A generator of one table's rows (see :mod:`spark_synth.generators.kinds` for the contract)."""

    unit: ClassVar[str] = "rows"
    outputs: ClassVar[tuple[str, ...]] = ("rows",)
    stats: TableStats
    model_config: ModelConfig
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.codec = TableCodec(self.stats)
        self.model = FlatARGN(self.model_config)
        self.model.load_state_dict(self.state)
        self.model.eval()
        self._tables: torch.Tensor | None = None
        self.device = torch.device("cpu")
        self.bf16 = False
        self._sub_batch: int | None = None

    # ---- persistence ------------------------------------------------------------------
    def to_payload(self) -> dict[str, bytes]:
        """The generator as its four files' bytes: what is saved, logged to MLflow, or shipped to workers."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        model = {"format_version": FORMAT_VERSION, "kind": "flat", **self.model_config.to_dict()}
        return {"stats.json": json_bytes(self.stats.to_json()), "model.json": json_bytes(model),
                "meta.json": json_bytes(self.meta), "weights.safetensors": save(state)}

    @classmethod
    def from_payload(cls, payload: dict[str, bytes], where: str = "generator") -> FlatGenerator:
        missing = [f for f in FILES if f not in payload]
        if missing:
            raise SynthError(f"{where} is not a spark-synth generator (missing {', '.join(missing)}).",
                             "Pass the --model-dir of a finished `spark-synth train`, or models:/NAME/VERSION.")
        with unreadable_files_refused(where):
            config = json.loads(payload["model.json"])
            if config.pop("format_version", None) != FORMAT_VERSION or config.pop("kind", None) != "flat":
                raise SynthError(f"{where} holds a generator format this version cannot read.",
                                 "Load it with the spark-synth version that trained it, or retrain.")
            return cls(TableStats.from_json(json.loads(payload["stats.json"])), ModelConfig(**config), load(payload["weights.safetensors"]),
                       json.loads(payload["meta.json"]))

    def save(self, directory: str) -> None:
        """Write the files atomically: a crash leaves either the old directory or the new one. Only a missing
        or empty directory, or one holding exactly a generator's files, is written (else SynthError)."""
        write_payload(self.to_payload(), directory)

    @classmethod
    def load(cls, directory: str) -> FlatGenerator:
        """Read a generator directory; only the known data files are read, nothing is executed."""
        if not os.path.isdir(directory):
            raise SynthError(f"no generator at {directory}.", "Pass the --model-dir of a finished `spark-synth train`.")
        return cls.from_payload(read_payload(directory, FILES), where=directory)

    # ---- sampling ---------------------------------------------------------------------
    def to(self, device: str | torch.device, sub_batch: int | None = None, bf16: bool = False) -> FlatGenerator:
        """Sample on ``device`` ("cuda", "cuda:1", or back to "cpu"); returns this generator.

        The network and its lookup tables move there and every draw comes from a torch generator on that
        device, seeded from (seed, chunk id) as on the CPU; codes come back to the CPU for decoding. Rows
        are sampled ``sub_batch`` at a time: by default ``SUB_BATCH`` on the CPU and ``DEVICE_SUB_BATCH``
        elsewhere. Output is then a pure function of (generator, seed, chunk id, chunk size, device type,
        sub-batch, bf16): the CPU output with the defaults is the contract (Spark jobs, tests), unchanged;
        another device type draws other random numbers, so other (equally distributed) rows.
        ``bf16`` (CUDA only) runs the network's matrix products in bfloat16 under autocast; softmax and
        draws stay float32. It is there to measure speed against quality.
        """
        self.device, self._sub_batch, self.bf16 = _check_device(device, sub_batch, bf16)
        self.model.to(self.device)
        self._tables = None  # rebuilt on the device from the moved weights
        return self

    @property
    def sub_batch(self) -> int:
        """Rows sampled at once: a fixed function of the device type unless :meth:`to` set it."""
        return self._sub_batch or (SUB_BATCH if self.device.type == "cpu" else DEVICE_SUB_BATCH)

    def precision(self) -> AbstractContextManager:
        """The context every sampling call runs in: bfloat16 autocast when :meth:`to` asked for it."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    @property
    def tables(self) -> torch.Tensor:
        """The sampler's lookup tables, built once per generator (on its device)."""
        if self._tables is None:
            self._tables = self.model.lookup_tables()
        return self._tables

    @property
    def output_types(self) -> dict[str, dict[str, str]]:
        return {"rows": {c.name: c.spark_type for c in self.stats.columns}}

    def check_controls(self, controls: Controls | None, seed_columns: Collection[str] = ()) -> Controls:
        controls = controls or Controls()
        plan(self.codec, controls, list(seed_columns))
        return controls

    def sample_chunk(self, output: str, seed: int, chunk_id: int, n: int, first: int,
                     controls: Controls | None = None) -> pa.RecordBatch:
        return self.generate_chunk(seed, chunk_id, n, first, controls)

    def sample_seeded_batch(self, output: str, seed_batch: pa.RecordBatch, seed: int, batch_id: int, first: int,
                            controls: Controls | None = None) -> pa.RecordBatch:
        return self.generate_seeded(seed_batch, seed, batch_id, first, controls)

    def chunk_memory(self, chunk: int) -> int:
        workspace = SUB_BATCH * self.model.n_sub * (16 + 4 * self.model.config.hidden)
        return model_bytes(self.model) + workspace + chunk * row_bytes(self.stats.columns) * ARROW_COPIES

    def generate_chunk(self, seed: int, chunk_id: int, n_rows: int, first_row: int,
                       controls: Controls | None = None) -> pa.RecordBatch:
        """The rows of one chunk: every random draw comes from generators seeded by (seed, chunk id).

        Sub-batches are always drawn whole and the last one truncated, so a chunk's first m rows
        do not depend on its length: ``sample(n)`` is a prefix of any longer generation.
        """
        controls = controls or Controls()
        steps = plan(self.codec, controls)
        torch_rng, numpy_rng = _generators(seed, chunk_id, self.device)
        if steps.rebalance is not None:
            codes = self._rebalanced_codes(n_rows, torch_rng, numpy_rng, controls, steps)
            return self.codec.decode(codes.numpy(), numpy_rng, np.arange(first_row, first_row + n_rows, dtype=np.int64))
        batches, size = [], self.sub_batch
        for start in range(0, n_rows, size):
            codes = self._draw(size, torch_rng, steps, controls, {})
            row_ids = np.arange(first_row + start, first_row + start + size, dtype=np.int64)
            decoded = self.codec.decode(codes.numpy(), numpy_rng, row_ids)
            batches.append(decoded.slice(0, min(size, n_rows - start)))
        return self._concat(batches)

    def _rebalanced_codes(self, n: int, torch_rng: torch.Generator, numpy_rng: np.random.Generator,
                          controls: Controls, steps: Plan) -> torch.Tensor:
        """n rows whose rebalanced column has exactly the target shares (to the row).

        Rows are drawn as usual and kept by value until each value's quota is filled, so every value's
        rows follow the model's own distribution given that value; a value too rare to fill its quota
        within ``MAX_OVERSAMPLING`` times the chunk is completed by fixing the value and drawing the rest
        given it.
        """
        first, values, shares = steps.rebalance
        quota = np.floor(shares * n).astype(np.int64)
        short = n - quota.sum()  # the rows rounding left out go to the largest remainders
        quota[np.argsort(-(shares * n - quota), kind="stable")[:short]] += 1
        free = plan(self.codec, replace(controls, rebalance_column=None, rebalance_shares={}))  # as without it
        width, size = values.shape[1], self.sub_batch
        kept: list[torch.Tensor] = []
        for _ in range(int(np.ceil(n / size)) * MAX_OVERSAMPLING):
            if not quota.any():
                break
            codes = self._draw(size, torch_rng, free, controls, {})
            match = (codes[:, None, first:first + width] == torch.from_numpy(values)[None]).all(-1)  # (rows, values)
            for v in np.flatnonzero(quota):
                rows = match[:, v].nonzero().squeeze(1)[: quota[v]]
                kept.append(codes[rows])
                quota[v] -= len(rows)
        if quota.any():  # rare values: conditional draws
            missing = np.repeat(np.arange(len(quota)), quota)
            fixed = {first + k: torch.from_numpy(values[missing, k].astype(np.int64)) for k in range(width)}
            kept.append(self._draw(len(missing), torch_rng, steps, controls, fixed))
        codes = torch.cat(kept)
        return codes[torch.from_numpy(numpy_rng.permutation(len(codes)))]  # values interleaved

    def generate_seeded(self, seed_batch: pa.RecordBatch, seed: int, batch_id: int, first_row: int,
                        controls: Controls | None = None) -> pa.RecordBatch:
        """One synthetic row per seed row: the seed's columns are kept exactly, the others are generated
        conditioned on them (the seed's codes are fixed and drawn first)."""
        controls = controls or Controls()
        seeded = self.seed_columns(seed_batch.schema.names)
        steps = plan(self.codec, controls, seeded)
        torch_rng, numpy_rng = _generators(seed, batch_id, self.device)
        codes = self.encode_columns(seed_batch, seeded)
        batches, size = [], self.sub_batch
        for start in range(0, seed_batch.num_rows, size):
            n = min(size, seed_batch.num_rows - start)
            fixed = {j: torch.from_numpy(c[start:start + n]) for j, c in codes.items()}
            drawn = self._draw(n, torch_rng, steps, controls, fixed)
            row_ids = np.arange(first_row + start, first_row + start + n, dtype=np.int64)
            decoded = self.codec.decode(drawn.numpy(), numpy_rng, row_ids)
            batches.append(with_seed_values(decoded, seed_batch.slice(start, n), seeded))
        return self._concat(batches)

    def impute_batch(self, batch: pa.RecordBatch, columns: list[str], seed: int, batch_id: int,
                     controls: Controls | None = None) -> pa.RecordBatch:
        """``batch`` with the nulls of ``columns`` filled by model samples conditioned on each row's present
        values; every present value is left as it was."""
        controls = controls or Controls()
        index = {c.name: i for i, c in enumerate(self.codec.modelled)}
        torch_rng, numpy_rng = _generators(seed, batch_id, self.device)
        present = self.encode_columns(batch, [c.name for c in self.codec.modelled])
        owner = {j: i for i, (lo, hi) in enumerate(self.codec.column_slices) for j in range(lo, hi)}
        missing = np.stack([null_mask(batch.column(c)) for c in columns], axis=1)
        frame = batch.to_pandas()
        for pattern in np.unique(missing, axis=0):
            if not pattern.any():
                continue
            rows = np.flatnonzero((missing == pattern).all(axis=1))
            filled = [c for c, m in zip(columns, pattern, strict=True) if m]
            kept = [c.name for c in self.codec.modelled if c.name not in filled]
            steps = plan(self.codec, controls, kept)
            fixed = {j: torch.from_numpy(c[rows]) for j, c in present.items()
                     if self.codec.modelled[owner[j]].name in kept}
            forbidden = null_codes(self.codec, [index[c] for c in filled])
            drawn = self._draw(len(rows), torch_rng, steps, controls, fixed, forbidden)
            decoded = self.codec.decode(drawn.numpy(), numpy_rng, rows.astype(np.int64)).to_pandas()
            for name in filled:
                frame.loc[frame.index[rows], name] = decoded[name].to_numpy()
        return pa.RecordBatch.from_pandas(frame, schema=batch.schema, preserve_index=False)

    def seed_columns(self, names: list[str]) -> list[str]:
        """The seed's columns, in the generator's order; a column the generator does not know is refused."""
        known = self.codec.column_names
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SynthError(f"the seed has column(s) {unknown} that the generator does not know (it has {known}).",
                             "Rename or drop those columns of the seed.")
        return [n for n in known if n in names]

    def encode_columns(self, batch: pa.RecordBatch, names: list[str]) -> dict[int, np.ndarray]:
        """Sub-column index -> codes of these (modelled) columns."""
        out = {}
        for codec, (lo, _) in zip(self.codec.modelled, self.codec.column_slices, strict=True):
            if codec.name in names:
                values = batch.column(batch.schema.get_field_index(codec.name))
                codes = codec.encode(values.cast(self.arrow_schema.field(codec.name).type))
                out |= {lo + k: codes[:, k].astype(np.int64) for k in range(codes.shape[1])}
        return out

    def _draw(self, n: int, torch_rng: torch.Generator, steps: Plan, controls: Controls,
              fixed: dict[int, torch.Tensor], forbidden: dict[int, list[int]] | None = None) -> torch.Tensor:
        """(n, S) codes on the CPU, sampled on the generator's device."""
        with self.precision():
            codes = self.model.sample(n, torch_rng, column_order=steps.order, fixed=fixed,
                                      temperature=controls.temperature, tables=self.tables, top_p=controls.top_p,
                                      blind=steps.blind, forbidden=forbidden)
        return codes.cpu()

    def _concat(self, batches: list[pa.RecordBatch]) -> pa.RecordBatch:
        if not batches:
            return self.empty_batch()
        return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]

    def empty_batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pylist([], schema=self.arrow_schema)

    @property
    def arrow_schema(self) -> pa.Schema:
        from spark_synth.encoding.types import arrow_type

        return pa.schema([(c.name, arrow_type(c.spark_type)) for c in self.stats.columns])

    def sample(self, n: int, seed: int = 0, chunk_size: int = 100_000, controls: Controls | None = None) -> pd.DataFrame:
        """n synthetic rows in this process: the first n rows of any Spark generation with this seed and chunk size."""
        if n <= 0:
            raise SynthError(f"cannot sample {n} rows.", "Ask for a positive number of rows.")
        parts = [
            self.generate_chunk(seed, chunk, min(chunk_size, n - chunk * chunk_size), chunk * chunk_size, controls)
            for chunk in range((n + chunk_size - 1) // chunk_size)
        ]
        return pa.Table.from_batches(parts).to_pandas()

    def sample_seeded(self, seed_data: pd.DataFrame, seed: int = 0, controls: Controls | None = None) -> pd.DataFrame:
        """One synthetic row per row of ``seed_data``, its columns kept, in this process."""
        if seed_data.empty:
            raise SynthError("the seed has no rows.", "Pass a seed with one row per synthetic row wanted.")
        self.seed_columns(list(seed_data.columns))
        batch = pa.RecordBatch.from_pandas(seed_data, preserve_index=False)
        return pa.Table.from_batches([self.generate_seeded(batch, seed, 0, 0, controls)]).to_pandas()

    # ---- serving: one table per request (spark_synth.generators.mlflow_model) ------------------------------
    max_rows_per_unit: ClassVar[int] = 1  # rows one unit adds to an answer, at most

    def serving_seed(self, request: pd.DataFrame) -> pd.DataFrame | None:
        """The request's seed rows (its columns of this table, rows not all null), or None: not seeded."""
        seeded = [c for c in request.columns if c in self.codec.column_names]
        return request[seeded].dropna(how="all") if seeded else None

    def seed_units(self, seed_rows: pd.DataFrame) -> int:
        return len(seed_rows)

    def sample_table(self, n: int, seed: int, controls: Controls | None = None) -> pd.DataFrame:
        return self.sample(n, seed=seed, controls=controls)

    def sample_seeded_table(self, seed_rows: pd.DataFrame, seed: int, controls: Controls | None = None) -> pd.DataFrame:
        return self.sample_seeded(seed_rows, seed=seed, controls=controls)

    def impute(self, data: pd.DataFrame, columns: list[str], seed: int = 0,
               controls: Controls | None = None) -> pd.DataFrame:
        """``data`` with the nulls of ``columns`` filled, in this process."""
        self.check_imputation(list(data.columns), columns)
        batch = pa.RecordBatch.from_pandas(data, preserve_index=False)
        return pa.Table.from_batches([self.impute_batch(batch, columns, seed, 0, controls)]).to_pandas()

    def check_imputation(self, names: list[str], columns: list[str]) -> None:
        """The table must hold every modelled column, and the filled columns must be modelled ones."""
        modelled = [c.name for c in self.codec.modelled]
        missing = [c for c in modelled if c not in names]
        if missing:
            raise SynthError(f"the table to impute lacks the generator's column(s) {missing}.",
                             "Impute a table with the columns the generator was trained on.")
        wrong = [c for c in columns if c not in modelled]
        if wrong or not columns:
            raise SynthError(f"cannot impute {wrong or 'no columns'}: only modelled columns can be filled ({modelled}).",
                             "Pass --columns with one or more of them.")


def _generators(seed: int, stream: int, device: torch.device | str = "cpu") -> tuple[torch.Generator, np.random.Generator]:
    """The torch (on ``device``) and numpy generators of one chunk or batch, from (seed, stream id)."""
    sequence = np.random.SeedSequence([seed, stream])
    torch_seed, numpy_seed = sequence.generate_state(2, dtype=np.uint64)
    return torch_generator(int(torch_seed), device), np.random.default_rng(int(numpy_seed))


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with the low 63 bits of ``seed``."""
    return torch.Generator(device=device).manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)


def _check_device(device: str | torch.device, sub_batch: int | None, bf16: bool) -> tuple[torch.device, int | None, bool]:
    """(device, sub-batch, bf16) for :meth:`FlatGenerator.to`, refused with a reason when they cannot work."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SynthError(f"cannot sample on {device}: this process sees no CUDA device.",
                         "Run where the GPUs are (on Spark: executors with GPUs and spark.task.resource.gpu.amount "
                         "set), or sample on the CPU (the default).")
    if sub_batch is not None and (not isinstance(sub_batch, int) or sub_batch <= 0):
        raise SynthError(f"the sub-batch must be a positive number of rows (got {sub_batch!r}).",
                         "Leave it out for the device's default.")
    if bf16 and device.type != "cuda":
        raise SynthError(f"bfloat16 sampling is offered on CUDA only (asked for on {device}).",
                         "Leave bf16 out on this device.")
    return device, sub_batch, bool(bf16)


def with_seed_values(decoded: pa.RecordBatch, seed: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
    """``decoded`` with the seed's own values in its columns (kept exactly, never re-drawn inside a bin)."""
    arrays = [seed.column(seed.schema.get_field_index(f.name)).cast(f.type) if f.name in names else decoded.column(i)
              for i, f in enumerate(decoded.schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=decoded.schema)


def write_payload(payload: dict[str, bytes], directory: str) -> None:
    """Write named files (names may hold one sub-directory) via a staging sibling swapped into place; a
    ``directory`` holding anything but one generator's files is refused, never deleted."""
    write_files(payload, directory)


@contextmanager
def unreadable_files_refused(where: str) -> Iterator[None]:
    """A generator file that is not what it should be (truncated, edited, replaced: a pickle in place of the
    safetensors weights, say) is refused with an error; it is parsed as data, never executed."""
    try:
        yield
    except SynthError:
        raise
    except Exception as exc:
        raise SynthError(f"{where} holds a damaged or foreign generator file ({type(exc).__name__}); nothing "
                         "from it was run.", "Load the directory as `spark-synth train` wrote it, or retrain.") from exc


def read_payload(directory: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The known files of a generator directory that exist; nothing else is read."""
    payload = {}
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                payload[name] = handle.read()
    return payload


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, indent=1, default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
