"""Event-log generation benchmark: spark-synth writing subjects + their events vs Spark writing random rows.

Why: an event-log generator must scale with the number of subjects at constant memory (the issue
asks for 1M subjects with ~10 events each on this machine). Generation works in chunks of subjects,
so the peak memory of the driver, the JVM and the Python workers should be the same at two sizes
ten times apart; this benchmark measures it. At each size (``--subjects``, default 100,000 and
1,000,000) it alternates, for ``--repeats`` rounds:

- ours: ``spark_synth.stages.generate.generate`` writing N subjects to OUTPUT/subjects and their events to
  OUTPUT/events (Parquet, mode overwrite), from a generator trained on the baseball log
  (players / batting seasons; ``--model DIR``, or a small one trained for ``--train-minutes`` in a child
  process so that the memory figures are generation's alone);
- baseline: the cheapest Spark job producing the same two tables: N subject rows and as many event
  rows as ours just wrote, with the same column names and types, from ``spark.range`` and random
  expressions (clipped normals for numbers, real values for strings, the real null shares, keys
  ``syn-<n>`` like ours, and events pointing at random subjects).

It reports rows/s (subjects + events), events/s, the ratio ours/baseline, the peak memory per role
(sampled from /proc every 0.2 s, as ``generation_speed.py`` does) and how much it grows from the
smallest to the largest size. Events per subject are whatever the generator draws: the baseball
data has ~5.4 seasons per player, fewer than the issue's ~10, and the table says so rather than
padding the sequences. An in-process breakdown of one chunk (subject sampling, event sampling,
decoding, assembly, Parquet write) shows where the sampler spends its time.

    .venv/bin/python benchmarks/log_generation.py [--subjects 100000 1000000] [--repeats 2] [--model DIR]
    .venv/bin/python benchmarks/log_generation.py --subjects 5000 20000 --train-minutes 0.2 --repeats 1 \
        --chunk-size 2048 --breakdown-subjects 10240   # smoke run, ~4 min; several chunks at both sizes

Timings on a shared machine are noisy: compare the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from common import REPO, RESULTS_DIR, MemorySampler, machine, process_status, table, write_result
from generation_speed import timed
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

DEFAULT_LOG_DIR = os.path.join(REPO, "..", "shared", "data", "baseball")
SUBJECTS_FILE, EVENTS_FILE = "players_train.parquet", "batting_train.parquet"
LOG_KEYS = {"subject_key": "id", "foreign_key": "players_id", "order_by": "year"}
SIM_KEYS = {"subject_key": "customer_id", "foreign_key": "customer_id", "order_by": "event_time"}
SIM_CUSTOMERS, SIM_MEAN_EVENTS = 50_000, 10
ROLES = ("driver", "jvm", "workers", "total_pss")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, nargs="+", default=[100_000, 1_000_000],
                    help="subjects written per measurement, one measurement series per size")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of (ours, baseline) per size")
    ap.add_argument("--master", default="local[2]", help="Spark master")
    ap.add_argument("--model", help="an existing event-log generator directory (default: train a small one)")
    ap.add_argument("--train-minutes", type=float, default=0.5, help="budget of the small generator")
    ap.add_argument("--dataset", choices=("baseball", "simulated"), default="baseball",
                    help="what the generator learns: the baseball log, or the simulator's customers and events "
                         f"({SIM_CUSTOMERS:,} customers, ~{SIM_MEAN_EVENTS} events each)")
    ap.add_argument("--data-dir", default=DEFAULT_LOG_DIR, help=f"holds {SUBJECTS_FILE} and {EVENTS_FILE}")
    ap.add_argument("--chunk-size", type=int, default=10_240,
                    help="subjects per chunk (the product's default for event logs)")
    ap.add_argument("--breakdown-subjects", type=int, default=20_480,
                    help="subjects of the in-process chunk (a multiple of the 2,048-subject sub-batch)")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "log_generation.json"))
    ap.add_argument("--train-into", help=argparse.SUPPRESS)  # internal: the training child process
    return ap.parse_args()


# ------------------------------------------------------------------------------------------ baseline


def _numeric(values: pa.ChunkedArray, seed: int, spark_type: str) -> Column:
    data = pc.drop_null(values).to_numpy().astype(float)
    normal = F.randn(seed) * float(data.std()) + float(data.mean())
    clipped = F.least(F.greatest(normal, F.lit(float(data.min()))), F.lit(float(data.max())))
    return clipped.cast(spark_type)


def _picked(values: pa.ChunkedArray, seed: int, spark_type: str, limit: int = 1_000) -> Column:
    """One of the real values (at most ``limit`` of them, drawn once), so lengths are realistic."""
    distinct = pc.unique(pc.drop_null(values)).to_pylist()
    if len(distinct) > limit:
        picks = np.random.default_rng(seed).choice(len(distinct), limit, replace=False)
        distinct = [distinct[i] for i in sorted(picks)]
    pick = (F.rand(seed) * len(distinct)).cast("int") + 1
    return F.element_at(F.array(*[F.lit(v) for v in distinct]), pick).cast(spark_type)


def _key(number: Column, spark_type: str) -> Column:
    """The generator's key format (spark_synth.encoding.keys): ``syn-<row+1>`` for strings, row+1 otherwise."""
    if spark_type in ("tinyint", "smallint", "int", "bigint"):
        return (number + 1).cast(spark_type)
    return F.concat(F.lit("syn-"), (number + 1).cast("string")).cast(spark_type)


def baseline_frame(spark: SparkSession, real: pa.Table, types: dict[str, str], rows: int, seed: int,
                   key: str | None = None, foreign_key: str | None = None, n_subjects: int = 0) -> DataFrame:
    """``rows`` random rows with the columns and Spark types ``types``, values shaped like ``real``."""
    columns: list[Column] = []
    for i, (name, spark_type) in enumerate(types.items()):
        col_seed = seed * 1_000 + i
        if name == key:
            column = _key(F.col("id"), spark_type)
        elif name == foreign_key:
            column = _key(F.floor(F.rand(col_seed) * n_subjects).cast("bigint"), spark_type)
        else:
            values = real.column(name)
            if spark_type in ("tinyint", "smallint", "int", "bigint", "float", "double") and \
                    (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
                column = _numeric(values, col_seed, spark_type)
            else:
                column = _picked(values, col_seed, spark_type)
            null_share = values.null_count / max(len(values), 1)
            if null_share > 0:
                column = F.when(F.rand(col_seed + 500) < null_share, F.lit(None)).otherwise(column)
        columns.append(column.alias(name))
    return spark.range(rows).select(*columns)


# ------------------------------------------------------------------------------------------ breakdown


def breakdown(model_dir: str, subjects: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One chunk of subjects the way a Spark task makes it (one torch thread), each stage timed separately.

    Mirrors ``LogGenerator.generate_subjects_chunk`` / ``generate_events_chunk``; the two public methods
    are then timed as they are as a cross-check of the stage sum.
    """
    import torch

    from spark_synth.generators.event_log import (
        EVENT_DECODE_STREAM,
        EVENT_STREAM,
        SUBJECT_DECODE_STREAM,
        SUBJECT_STREAM,
        LogGenerator,
        event_batches,
    )
    from spark_synth.generators.flat import SUB_BATCH

    torch.set_num_threads(1)  # what a one-core Spark task uses (spark_synth.spark.sample_job._set_threads)
    generator = LogGenerator.load(model_dir)
    seed, chunk_id, first = 0, 0, 0
    stages = dict.fromkeys(("lookup tables (once per worker)", "subject sampling", "subject decode",
                            "subject sampling again (events job replays it)", "event sampling", "event decode",
                            "event assembly (foreign key, order column)", "parquet write (both tables)"), 0.0)
    stages["lookup tables (once per worker)"] = timed(lambda: (generator.subjects.tables, generator.tables))
    streams = generator._streams(seed, chunk_id)

    t0 = time.perf_counter()
    subject_codes = generator._subject_codes(streams[SUBJECT_STREAM], subjects)
    stages["subject sampling"] = time.perf_counter() - t0
    decode_rng = np.random.default_rng(streams[SUBJECT_DECODE_STREAM])
    subject_batches = []
    t0 = time.perf_counter()
    for i, codes in enumerate(subject_codes):
        start = i * SUB_BATCH
        row_ids = np.arange(first + start, first + start + SUB_BATCH, dtype=np.int64)
        decoded = generator.subjects.codec.decode(codes.numpy(), decode_rng, row_ids)
        subject_batches.append(decoded.slice(0, min(SUB_BATCH, subjects - start)))
    subject_table = pa.Table.from_batches(subject_batches).combine_chunks()
    stages["subject decode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    replayed = generator._subject_codes(streams[SUBJECT_STREAM], subjects)
    stages["subject sampling again (events job replays it)"] = time.perf_counter() - t0
    event_rng = torch.Generator().manual_seed(
        int(streams[EVENT_STREAM].generate_state(1, dtype=np.uint64)[0]) & 0x7FFF_FFFF_FFFF_FFFF)
    decode_rng = np.random.default_rng(streams[EVENT_DECODE_STREAM])
    max_length, emitted, event_tables, sampled = generator.sequence.max_length, 0, [], 0
    for start, codes in event_batches(replayed):
        t0 = time.perf_counter()
        event_codes, owner, step = generator.model.sample(codes, event_rng, generator.tables, generator.pins_first,
                                                          generator.pins_later)
        t1 = time.perf_counter()
        row_ids = first * max_length + emitted + np.arange(len(event_codes), dtype=np.int64)
        decoded = generator.event_codec.decode(event_codes.numpy(), decode_rng, row_ids)
        t2 = time.perf_counter()
        batch = generator._assemble(decoded, first + start + owner.numpy(), step.numpy() == 0)
        batch = batch.filter(pa.array(owner.numpy() < subjects - start))
        t3 = time.perf_counter()
        emitted += batch.num_rows
        sampled += len(event_codes)  # the last sub-batch's subjects past the chunk are sampled, then dropped
        event_tables.append(batch)
        stages["event sampling"] += t1 - t0
        stages["event decode"] += t2 - t1
        stages["event assembly (foreign key, order column)"] += t3 - t2
    event_table = pa.Table.from_batches(event_tables, schema=generator.event_schema).combine_chunks()

    path = os.path.join(tempfile.gettempdir(), f"bench-log-chunk-{os.getpid()}.parquet")
    t0 = time.perf_counter()
    pq.write_table(subject_table, path)
    pq.write_table(event_table, path)
    stages["parquet write (both tables)"] = time.perf_counter() - t0
    os.remove(path)

    total = sum(v for k, v in stages.items() if not k.startswith("lookup"))
    stages["chunk total (excl. lookup tables)"] = total
    rows = subjects + event_table.num_rows
    out = [{"stage": k, "seconds": round(v, 3), "rows_per_s": None if k.startswith("lookup") else rows / v,
            "share": None if k.startswith("lookup") else v / total} for k, v in stages.items()]

    check_subjects: list[pa.RecordBatch] = []
    check_events: list[pa.RecordBatch] = []
    public = {
        "generate_subjects_chunk_s": timed(lambda: check_subjects.append(
            generator.generate_subjects_chunk(seed, chunk_id, subjects, first))),
        "generate_events_chunk_s": timed(lambda: check_events.append(
            generator.generate_events_chunk(seed, chunk_id, subjects, first))),
    }
    public |= {"subjects": subjects, "subjects_sampled": len(replayed) * SUB_BATCH, "events": event_table.num_rows,
               "events_sampled": sampled,
               "same_output": check_subjects[0].equals(subject_table.to_batches()[0])
               and check_events[0].equals(event_table.to_batches()[0])}
    return out, public


# ------------------------------------------------------------------------------------------ set-up


def log_files(dataset: str, data_dir: str, work: str) -> tuple[str, str, dict[str, str]]:
    """(subject table, event table, keys) of the dataset the generator learns."""
    if dataset == "simulated":
        return os.path.join(work, "sim", "customers"), os.path.join(work, "sim", "events"), SIM_KEYS
    return os.path.join(data_dir, SUBJECTS_FILE), os.path.join(data_dir, EVENTS_FILE), LOG_KEYS


def write_simulated(spark: Any, work: str) -> None:
    """The simulator's log (:func:`spark_synth.examples.datasets.simulate_log`) as Parquet under ``work/sim``."""
    from spark_synth.examples.datasets import simulate_log

    customers, events = simulate_log(spark, SIM_CUSTOMERS, seed=3, mean_events=SIM_MEAN_EVENTS)
    subjects_path, events_path, _ = log_files("simulated", "", work)
    customers.write.mode("overwrite").parquet(subjects_path)
    events.write.mode("overwrite").parquet(events_path)


def train_small(master: str, dataset: str, data_dir: str, work: str, minutes: float) -> str:
    """Train in this process (Spark session included); MLflow store and artifacts stay under ``work``."""
    import mlflow

    from spark_synth import train
    from spark_synth.config import TrainConfig
    from spark_synth.spark.session import get_spark

    spark = get_spark(master)
    if dataset == "simulated":
        write_simulated(spark, work)
    subjects, events, keys = log_files(dataset, data_dir, work)
    uri = f"sqlite:///{os.path.join(work, 'mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("log-generation", artifact_location=os.path.join(work, "mlartifacts"))
    config = TrainConfig(subjects=subjects, events=events, **keys, model_dir=os.path.join(work, "model"),
                         max_minutes=minutes, quality_rows=0, tracking_uri=uri, experiment="log-generation",
                         work_dir=work, progress=False)
    return train(config, spark).model_dir


def train_apart(master: str, dataset: str, data_dir: str, work: str, minutes: float) -> str:
    """Train in a child process, so the memory figures show generation, not what training left resident
    (the driver's RSS does not come back down after training, nor does the JVM's heap right away)."""
    # this script again, not `python -c`: without grpc, pyspark.sql.connect (which spark_synth.spark.io imports)
    # takes a main module with no __file__ for its doctests and exits the process with status 0
    subprocess.run([sys.executable, os.path.abspath(__file__), "--master", master, "--dataset", dataset,
                    "--data-dir", data_dir, "--train-minutes", str(minutes), "--train-into", work], check=True)
    model_dir = os.path.join(work, "model")
    if not os.path.isfile(os.path.join(model_dir, "log.json")):
        raise SystemExit(f"training left no generator in {model_dir}")
    return model_dir


def _growth(peaks: dict[str, dict[str, float]], small: str, large: str) -> dict[str, dict[str, float]]:
    out = {}
    for role in ROLES:
        a, b = peaks.get(small, {}).get(role), peaks.get(large, {}).get(role)
        if a is not None and b is not None:
            out[role] = {"small_mib": a, "large_mib": b, "change_mib": b - a, "change_share": (b - a) / a if a else None}
    return out


def main() -> None:
    args = parse_args()
    if args.train_into:
        train_small(args.master, args.dataset, args.data_dir, args.train_into, args.train_minutes)
        return
    sizes = sorted(set(args.subjects))
    host = machine()
    from spark_synth import generate
    from spark_synth.config import GenerateConfig
    from spark_synth.generators.event_log import LogGenerator
    from spark_synth.generators.flat import SUB_BATCH
    from spark_synth.spark.session import get_spark

    data_dir = os.path.abspath(args.data_dir)
    work = tempfile.mkdtemp(prefix="bench-log-generation-")
    sampler = MemorySampler()
    sampler.start()
    try:
        sampler.phase = "training (child process)"
        model_dir = args.model or train_apart(args.master, args.dataset, data_dir, work, args.train_minutes)
        sampler.phase = "setup"
        spark = get_spark(args.master)
        if args.dataset == "simulated" and args.model:  # the baseline's values come from the simulated log
            write_simulated(spark, work)
        subjects_path, events_path, _ = log_files(args.dataset, data_dir, work)
        real_subjects, real_events = pq.read_table(subjects_path), pq.read_table(events_path)
        real_mean = real_events.num_rows / real_subjects.num_rows
        generator = LogGenerator.load(model_dir)
        seq = generator.sequence
        subject_types = {c["name"]: c["spark_type"] for c in generator.subjects.stats["columns"]}  # spark_schema's
        event_types = generator.event_types
        ours_out, base_out = os.path.join(work, "ours"), os.path.join(work, "baseline")
        parallelism = spark.sparkContext.defaultParallelism

        def ours(subjects: int, seed: int, chunk_size: int) -> None:
            generate(GenerateConfig(model=model_dir, subjects=subjects, output=ours_out, mode="overwrite", seed=seed,
                                    chunk_size=chunk_size), spark)

        def baseline(subjects: int, events: int, seed: int) -> None:
            baseline_frame(spark, real_subjects, subject_types, subjects, seed, key=seq.subject_key) \
                .write.mode("overwrite").parquet(os.path.join(base_out, "subjects"))
            baseline_frame(spark, real_events, event_types, events, seed + 1, foreign_key=seq.foreign_key,
                           n_subjects=subjects).write.mode("overwrite").parquet(os.path.join(base_out, "events"))

        def written(name: str) -> int:
            return spark.read.parquet(os.path.join(ours_out, name)).count()

        sampler.phase = "warm-up"  # first jobs pay for JIT, worker start and the generator build per worker
        warm = SUB_BATCH * parallelism
        ours(warm, 99, chunk_size=SUB_BATCH)  # one chunk per task: every worker builds its generator
        baseline(warm, int(warm * real_mean), 99)
        runs: dict[int, dict[str, list[dict[str, float]]]] = {}
        for n in sizes:
            runs[n] = {"ours": [], "baseline": []}
            for r in range(args.repeats):
                sampler.phase = f"ours {n}"
                seconds = timed(lambda n=n, r=r: ours(n, r, args.chunk_size))
                sampler.phase = "check"
                n_subjects, n_events = written("subjects"), written("events")
                if n_subjects != n:
                    raise SystemExit(f"spark-synth wrote {n_subjects} subjects, not {n}")
                runs[n]["ours"].append({"seconds": seconds, "subjects": n, "events": n_events})
                sampler.phase = f"baseline {n}"
                seconds = timed(lambda n=n, r=r, e=n_events: baseline(n, e, r))
                runs[n]["baseline"].append({"seconds": seconds, "subjects": n, "events": n_events})
                print(f"{n:,} subjects, round {r + 1}: ours {runs[n]['ours'][-1]['seconds']:.1f} s "
                      f"({n_events:,} events), baseline {seconds:.1f} s")
        sampler.phase = "breakdown"
        stages, public = breakdown(model_dir, args.breakdown_subjects)
        spark.stop()
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)
    driver_hwm = process_status(os.getpid()).get("VmHWM", 0) / 1024

    per_size = []
    for n in sizes:
        entry: dict[str, Any] = {"subjects": n, "chunks": math.ceil(n / args.chunk_size),
                                 "tasks": min(parallelism, math.ceil(n / args.chunk_size))}
        for job in ("ours", "baseline"):
            for run in runs[n][job]:
                run["rows_per_s"] = (run["subjects"] + run["events"]) / run["seconds"]
                run["events_per_s"] = run["events"] / run["seconds"]
            best = max(runs[n][job], key=lambda run: run["rows_per_s"])
            entry[job] = {"rounds": runs[n][job], "best": best, "peak_mib_sampled": sampler.peaks.get(f"{job} {n}", {})}
        entry["events_per_subject"] = entry["ours"]["best"]["events"] / n
        entry["ratio_ours_over_baseline"] = entry["ours"]["best"]["rows_per_s"] / entry["baseline"]["best"]["rows_per_s"]
        per_size.append(entry)
    growth = {job: _growth(sampler.peaks, f"{job} {sizes[0]}", f"{job} {sizes[-1]}") for job in ("ours", "baseline")}
    result = {"benchmark": "log_generation", "dataset": args.dataset, "subjects": sizes, "repeats": args.repeats, "master": args.master,
              "chunk_size": args.chunk_size, "machine": host,
              "model": {"dir": args.model, "trained_minutes": None if args.model else args.train_minutes,
                        "max_sequence_length": seq.max_length, "meta": generator.meta},
              "real_events_per_subject": real_mean, "sizes": per_size, "memory_growth": growth,
              "peak_mib_sampled": sampler.peaks, "driver_vmhwm_mib": driver_hwm,
              "breakdown": stages, "breakdown_public_methods": public}

    print(f"\nevent-log generation ({args.dataset} log), subjects {' and '.join(f'{n:,}' for n in sizes)} x {args.repeats}, "
          f"{args.master}, chunks of {args.chunk_size:,} subjects, {host['nproc']} x {host['cpu']}, "
          f"load {host['loadavg_1m_at_start']}")
    header = ["subjects", "events", "events/subject", "chunks", "seconds (each round)", "rows/s (best)",
              "events/s (best)", "driver MiB", "JVM MiB", "py workers MiB", "total MiB (PSS)",
              "baseline rows/s", "ratio ours/baseline"]
    rows = []
    for entry in per_size:
        best, peak = entry["ours"]["best"], entry["ours"]["peak_mib_sampled"]
        rounds = " / ".join(f"{run['seconds']:.1f}" for run in entry["ours"]["rounds"])
        rows.append([entry["subjects"], best["events"], entry["events_per_subject"], entry["chunks"], rounds,
                     best["rows_per_s"], best["events_per_s"],
                     *(round(peak[k]) if k in peak else None for k in ROLES),
                     entry["baseline"]["best"]["rows_per_s"], entry["ratio_ours_over_baseline"]])
    print(table(header, rows))
    print("rows = subjects + events. MiB: peak RSS per role, and peak total PSS (shared pages counted once), sampled"
          f" every 0.2 s during ours; driver VmHWM over the run: {driver_hwm:.0f} MiB. The baseline writes the"
          " same subjects and as many events, same columns and types, from spark.range and random expressions.")
    if len(sizes) > 1:
        g = growth["ours"]
        print(f"peak memory from {sizes[0]:,} to {sizes[-1]:,} subjects ({sizes[-1] / sizes[0]:.0f}x), ours: "
              + ", ".join(f"{role} {g[role]['small_mib']:.0f} -> {g[role]['large_mib']:.0f} MiB "
                          f"({g[role]['change_mib']:+.0f})" for role in ROLES if role in g))
        g = growth["baseline"]
        print("  the same for the baseline: "
              + ", ".join(f"{role} {g[role]['small_mib']:.0f} -> {g[role]['large_mib']:.0f} MiB "
                          f"({g[role]['change_mib']:+.0f})" for role in ROLES if role in g))
    largest = per_size[-1]
    generated = largest["events_per_subject"]
    print(f"events per subject: {generated:.2f} generated at {largest['subjects']:,} subjects "
          f"({generated / real_mean - 1:+.0%} vs {real_mean:.2f} in the training log; at most {seq.max_length}), "
          f"i.e. {generated / 10:.0%} of the issue's ~10: the generator's own draw, nothing padded or cut")

    print(f"\nin-process breakdown of one {args.breakdown_subjects:,}-subject chunk ({public['events']:,} events), "
          "1 torch thread; rows/s counts subjects + events:")
    print(table(["stage", "seconds", "rows/s", "share"], [list(s.values()) for s in stages]))
    print(f"public methods on the same chunk: generate_subjects_chunk {public['generate_subjects_chunk_s']:.2f} s, "
          f"generate_events_chunk {public['generate_events_chunk_s']:.2f} s, same output as the stages: "
          f"{public['same_output']}. Sampling works in whole sub-batches of {SUB_BATCH:,} subjects: "
          f"{public['subjects_sampled']:,} subjects and {public['events_sampled']:,} events were sampled to keep "
          f"{public['subjects']:,} and {public['events']:,} (chunk sizes that are multiples of {SUB_BATCH:,} waste none)")
    per_core = stages[-1]["rows_per_s"]
    print(f"Spark generation at {largest['subjects']:,} subjects reaches "
          f"{largest['ours']['best']['rows_per_s'] / per_core:.2f} x the in-process single-thread chunk rate "
          f"({host['nproc']} cores available)")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
