"""Generation speed benchmark: spark-synth writing census rows vs Spark writing random rows.

Why: a generator is only useful at scale if sampling costs little next to the write itself. The
baseline is the cheapest Spark job producing a table of the same shape (15 census columns, bigint
and string, strings drawn from the real category lists so their lengths are realistic) from
``spark.range(n)`` and random expressions. Both run alternately in one Spark session and are
reported as rows/s and the ratio ours/baseline, plus the peak memory of the driver, the JVM and
the Python workers. An in-process breakdown of one 100k-row chunk (model sampling, decoding,
Parquet write) shows where the sampler spends its time.

    .venv/bin/python benchmarks/generation_speed.py [--rows 1000000] [--repeats 2] [--model DIR]

Timings on a shared machine are noisy: compare the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import DEFAULT_DATA_DIR, RESULTS_DIR, MemorySampler, machine, process_status, table, write_result
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows written per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of (ours, baseline)")
    ap.add_argument("--master", default="local[2]", help="Spark master")
    ap.add_argument("--model", help="an existing generator directory (default: train a small one)")
    ap.add_argument("--train-minutes", type=float, default=0.5, help="budget of the small generator")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="holds census_train.parquet")
    ap.add_argument("--chunk-rows", type=int, default=100_000, help="rows of the in-process breakdown chunk")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "generation_speed.json"))
    return ap.parse_args()


# ------------------------------------------------------------------------------------------ the two jobs


def baseline_frame(spark: SparkSession, census: pa.Table, rows: int, seed: int) -> DataFrame:
    """Random rows shaped like census: ints from a clipped normal, strings from the real category lists."""
    columns: list[Column] = []
    for i, field in enumerate(census.schema):
        values = census.column(field.name)
        if pa.types.is_integer(field.type):
            data = values.to_numpy()
            normal = F.randn(seed + i) * float(data.std()) + float(data.mean())
            clipped = F.least(F.greatest(normal, F.lit(float(data.min()))), F.lit(float(data.max())))
            columns.append(clipped.cast("bigint").alias(field.name))
        else:
            categories = sorted(v for v in values.unique().to_pylist() if v is not None)
            pick = (F.rand(seed + i) * len(categories)).cast("int") + 1
            columns.append(F.element_at(F.array(*[F.lit(v) for v in categories]), pick).alias(field.name))
    return spark.range(rows).select(*columns)


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def breakdown(model_dir: str, rows: int) -> list[dict[str, Any]]:
    """One chunk the way a Spark task makes it (one torch thread), each stage timed separately; model
    sampling is split into the network (embedding sums, matmuls, activations) and the draws."""
    import torch

    import spark_synth.model.argn as argn
    from spark_synth.generators.flat import SUB_BATCH, FlatGenerator

    torch.set_num_threads(1)  # what a one-core Spark task uses (spark_synth.spark.sample_job._set_threads)
    generator = FlatGenerator.load(model_dir)
    stages = {"lookup tables (once per worker)": 0.0, "model: network (embedding sums, matmuls)": 0.0,
              "model: drawing codes (softmax, inverse CDF)": 0.0, "decode": 0.0, "parquet write": 0.0}
    stages["lookup tables (once per worker)"] = timed(lambda: generator.tables)
    drawing = [0.0]
    original = argn.draw

    def timed_draw(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = original(*args, **kwargs)
        drawing[0] += time.perf_counter() - started
        return out

    argn.draw = timed_draw
    torch_rng, numpy_rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    batches = []
    try:
        for start in range(0, rows, SUB_BATCH):
            size = min(SUB_BATCH, rows - start)
            t0 = time.perf_counter()
            codes = generator.model.sample(size, torch_rng, tables=generator.tables)
            t1 = time.perf_counter()
            batches.append(generator.codec.decode(codes.numpy(), numpy_rng,
                                                  np.arange(start, start + size, dtype=np.int64)))
            t2 = time.perf_counter()
            stages["model: network (embedding sums, matmuls)"] += t1 - t0
            stages["decode"] += t2 - t1
    finally:
        argn.draw = original
    stages["model: network (embedding sums, matmuls)"] -= drawing[0]
    stages["model: drawing codes (softmax, inverse CDF)"] = drawing[0]
    path = os.path.join(tempfile.gettempdir(), f"bench-chunk-{os.getpid()}.parquet")
    stages["parquet write"] = timed(lambda: pq.write_table(pa.Table.from_batches(batches), path))
    os.remove(path)
    total = sum(v for k, v in stages.items() if not k.startswith("lookup"))
    stages["chunk total (excl. lookup tables)"] = total
    return [{"stage": k, "seconds": round(v, 3), "rows_per_s": None if k.startswith("lookup") else rows / v,
             "share": None if k.startswith("lookup") else v / total} for k, v in stages.items()]


def train_small(spark: SparkSession, data: str, work: str, minutes: float) -> str:
    import mlflow

    from spark_synth import train
    from spark_synth.config import TrainConfig

    uri = f"sqlite:///{os.path.join(work, 'mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("generation-speed", artifact_location=os.path.join(work, "mlartifacts"))
    config = TrainConfig(data=data, model_dir=os.path.join(work, "model"), max_minutes=minutes, quality_rows=0,
                         tracking_uri=uri, experiment="generation-speed", work_dir=work, progress=False)
    return train(config, spark).model_dir


def main() -> None:
    args = parse_args()
    host = machine()
    from spark_synth import generate
    from spark_synth.config import GenerateConfig
    from spark_synth.spark.session import get_spark

    data = os.path.abspath(os.path.join(args.data_dir, "census_train.parquet"))
    census = pq.read_table(data)
    work = tempfile.mkdtemp(prefix="bench-generation-")
    sampler = MemorySampler()
    sampler.start()
    try:
        spark = get_spark(args.master)
        model_dir = args.model or train_small(spark, data, work, args.train_minutes)
        ours_out, base_out = os.path.join(work, "ours"), os.path.join(work, "baseline")

        def ours(rows: int, seed: int, chunk_size: int = 100_000) -> None:
            generate(GenerateConfig(model=model_dir, rows=rows, output=ours_out, mode="overwrite", seed=seed,
                                    chunk_size=chunk_size), spark)

        def baseline(rows: int, seed: int) -> None:
            baseline_frame(spark, census, rows, seed).write.mode("overwrite").parquet(base_out)

        sampler.phase = "warm-up"  # first jobs pay for JIT, worker start and the generator build per worker
        parallelism = spark.sparkContext.defaultParallelism
        ours(5_000 * parallelism, 99, chunk_size=5_000)  # one chunk per task: every worker builds its generator
        baseline(5_000 * parallelism, 99)
        times: dict[str, list[float]] = {"ours": [], "baseline": []}
        for r in range(args.repeats):
            for name, job in (("ours", ours), ("baseline", baseline)):
                sampler.phase = name
                times[name].append(timed(lambda job=job, r=r: job(args.rows, r)))
                print(f"round {r + 1}: {name} {times[name][-1]:.1f} s")
        sampler.phase = "check"
        written = spark.read.parquet(ours_out).count()
        if written != args.rows:
            raise SystemExit(f"spark-synth wrote {written} rows, not {args.rows}")
        sampler.phase = "breakdown"
        stages = breakdown(model_dir, args.chunk_rows)
        spark.stop()
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)
    driver_hwm = process_status(os.getpid()).get("VmHWM", 0) / 1024

    best = {k: min(v) for k, v in times.items()}
    speed = {k: args.rows / v for k, v in best.items()}
    result = {"benchmark": "generation_speed", "rows": args.rows, "repeats": args.repeats, "master": args.master,
              "machine": host, "seconds": times, "rows_per_s_best": speed,
              "ratio_ours_over_baseline": speed["ours"] / speed["baseline"],
              "peak_mib_sampled": sampler.peaks, "driver_vmhwm_mib": driver_hwm, "breakdown": stages}

    print(f"\ngeneration speed, {args.rows:,} rows x {args.repeats}, {args.master}, "
          f"{host['nproc']} x {host['cpu']}, load {host['loadavg_1m_at_start']}")
    columns = ("driver", "jvm", "n_workers", "workers", "total_pss")
    rows = []
    for name in ("ours", "baseline"):
        peak = sampler.peaks.get(name, {})
        rounds = " / ".join(f"{t:.1f}" for t in times[name])
        rows.append([name, rounds, speed[name], *(round(peak[k]) if k in peak else None for k in columns)])
    header = ["job", "seconds (each round)", "rows/s (best)", "driver MiB", "JVM MiB", "py workers",
              "py workers MiB", "total MiB (PSS)"]
    print(table(header, rows))
    print(f"ratio ours/baseline (rows/s): {result['ratio_ours_over_baseline']:.3f}")
    print("MiB: peak RSS per role, and peak total PSS (shared pages counted once), sampled every 0.2 s during each"
          f" job; driver VmHWM over the run: {driver_hwm:.0f} MiB. Python workers are reused, so the"
          " baseline's worker figures are the idle workers ours left.")
    print(f"\nin-process breakdown of one {args.chunk_rows:,}-row chunk, 1 torch thread:")
    print(table(["stage", "seconds", "rows/s", "share"], [list(s.values()) for s in stages]))
    per_core = stages[-1]["rows_per_s"]
    print(f"Spark generation reaches {speed['ours'] / per_core:.2f} x the in-process single-thread chunk rate "
          f"({host['nproc']} cores available)")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
