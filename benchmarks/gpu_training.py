"""GPU training check and throughput, without Spark: the rank entry point on CUDA (fp32, bf16 autocast, DP)
and through NCCL, against the same training on the host's CPU cores.

Why: GPU machines lent for a check rarely have Java or Spark; the training ranks need neither. The
census table is encoded here with the codec of a trained generator (its ``stats.json``) into shards
with a 10% validation split, then each configuration trains for ``--epochs`` epochs.

    torchrun --nproc_per_node=1 benchmarks/gpu_training.py --data census_train.parquet --stats stats.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spark_synth.encoding import TableCodec  # noqa: E402
from spark_synth.encoding.packing import Field, layout, pack  # noqa: E402
from spark_synth.model.argn import ModelConfig  # noqa: E402
from spark_synth.privacy import plan as dp  # noqa: E402
from spark_synth.privacy.budget import Budget, statistics_noise  # noqa: E402
from spark_synth.training.data import SPLIT_COLUMN  # noqa: E402
from spark_synth.training.loop import TrainSettings  # noqa: E402
from spark_synth.training.rank import Phase, RankJob, run_rank  # noqa: E402


def encode(data: str, stats: dict, directory: str, shards: int = 4) -> list[Field]:
    """Shards as the Spark encoder writes them (codes packed into words), from the numpy codecs."""
    codec = TableCodec(stats)
    names = [c["name"] for c in stats["columns"]]
    table = pq.read_table(data, columns=names)
    codes = codec.encode(pa.RecordBatch.from_arrays([table.column(n).combine_chunks() for n in names], names=names))
    is_val = np.random.default_rng(0).random(len(codes)) < 0.1
    fields = layout(codec.cardinalities)
    words = pack(codes, fields)
    for i, part in enumerate(np.array_split(np.arange(len(codes)), shards)):
        columns = {name: pa.array(word[part]) for name, word in words.items()}
        pq.write_table(pa.table({**columns, SPLIT_COLUMN: pa.array(is_val[part])}), f"{directory}/part-{i}.parquet")
    return fields


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--stats", required=True, help="stats.json of a generator trained on this table")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="gpu_training.json")
    args = ap.parse_args()
    with open(args.stats, encoding="utf-8") as handle:
        stats = json.load(handle)
    codec = TableCodec(stats)
    work = tempfile.mkdtemp()
    fields = encode(args.data, stats, work)
    files = sorted(os.path.join(work, f) for f in os.listdir(work))
    config = ModelConfig(cardinalities=codec.cardinalities, column_slices=codec.column_slices, hidden=256,
                         dropout=0.3).to_dict()
    budget = Budget(4.0, 1e-5)
    release = dp.StatsRelease(budget, statistics_noise(budget), partitions=len(codec.modelled), counts=1)
    rows = []
    configs = [  # label, backend, GPU, bf16, batch, DP
        ("cpu fp32", "local", False, False, None, False),
        ("cuda fp32", "local", True, False, None, False),
        ("cuda bf16", "local", True, True, None, False),
        ("cuda bf16, batch 4096", "local", True, True, 4096, False),
        ("cpu DP", "local", False, False, None, True),
        ("cuda DP", "local", True, False, None, True),
        ("cuda bf16, NCCL (torchrun)", "torch-distributor", True, True, None, False),
        ("cuda DP, NCCL (torchrun)", "torch-distributor", True, False, None, True),
    ]
    for label, backend, gpu, bf16, batch, private in configs:
        if gpu and not torch.cuda.is_available():
            continue
        settings = TrainSettings(max_minutes=10, max_epochs=args.epochs, patience=100, progress=False)
        job = RankJob(backend, [{"rows": files}], {"rows": fields}, [Phase("model", config, None, batch, args.epochs)],
                      settings, tempfile.mkdtemp(), "bench", use_gpu=gpu, mixed_precision=bf16,
                      release=release if private else None)
        outcome = run_rank(job)["phases"]["model"]
        result = outcome["result"]
        rows.append({"config": label, "samples_per_s": round(outcome["samples_per_second"], 1),
                     "train_s": round(result["seconds"], 1), "epochs": result["epochs"],
                     "val_loss": result["best_val_loss"], "device": torch.cuda.get_device_name(0) if gpu else "cpu",
                     "threads": torch.get_num_threads()})
        print(json.dumps(rows[-1]), flush=True)
    base = {r["config"]: r["samples_per_s"] for r in rows}
    for r in rows:
        r["vs_cpu"] = round(r["samples_per_s"] / base["cpu DP" if "DP" in r["config"] else "cpu fp32"], 2)
    print(f"{'config':32} {'samples/s':>10} {'vs cpu':>7} {'train s':>8} {'val loss':>9}")
    for r in rows:
        loss = "-" if r["val_loss"] is None else f"{r['val_loss']:.3f}"
        print(f"{r['config']:32} {r['samples_per_s']:>10,.0f} {r['vs_cpu']:>7} {r['train_s']:>8} {loss:>9}")
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"torch": torch.__version__, "cpus": os.cpu_count(), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
