"""Analyze + encode at scale: spark-synth's preparation of a table vs Spark reading, grouping and writing it.

Why: before any training, every row is read, profiled (protected statistics) and encoded to
Parquet shards; at billions of rows that pass must cost about what Spark itself costs. The table is
the simulator's event log joined to its customers (``spark_synth.examples.datasets.simulate_log``: 8 columns,
timestamps, dates, categories, a heavy-tailed amount), written once to Parquet per size. For each
size, alternating: ours = ``spark_synth.stages.flat.prepare_flat`` (read, plan, analyze, split, encode to shards, count
the split), the baseline = read + a group-by over the categorical columns + a Parquet write of all
rows. The session runs the baseline once before anything is timed, so neither side pays for the
JVM's warm-up. Peak memory of driver, JVM and Python workers is sampled per job: it should not grow
with size. At the largest size the same steps are then timed one by one (text-date detection,
analysis pass by pass, encode), beside a floor: the table read and written with no work done.

    .venv/bin/python benchmarks/encode_scale.py [--rows 1000000 10000000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from common import RESULTS_DIR, MemorySampler, machine, table, write_result
from pyspark.sql import functions as F

MEAN_EVENTS = 20.0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="approximate rows per size")
    ap.add_argument("--repeats", type=int, default=2, help="alternating rounds of (ours, baseline) per size")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "encode_scale.json"))
    return ap.parse_args()


def stage_profile(spark, source: str, work: str) -> dict[str, float]:
    """The preparation's steps timed one by one (each a Spark job of its own over the whole table), then the
    analysis pass by pass, and a floor: the table read and written as it is, with no work done."""
    from spark_synth.encoding.protect import draw_k
    from spark_synth.spark.analyze import (
        _bounds,
        _keys,
        _overview,
        _probe,
        _quantiles,
        _value_counts,
        analyze,
    )
    from spark_synth.spark.encode import encode_to_shards
    from spark_synth.spark.io import read_table
    from spark_synth.spark.normalize import normalize
    from spark_synth.spark.schema import plan_columns
    from spark_synth.spark.split import with_split

    seconds, started = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[name], started = now - started, now

    source_df = read_table(spark, source)
    df, plans = normalize(source_df, plan_columns(source_df.schema, {}))
    lap("plan + text-date detection")
    stats = analyze(df, plans, source)
    lap("analysis (protected statistics)")
    encode_to_shards(with_split(df, 0, 0.1), stats, os.path.join(work, "profile-shards"))
    lap("encode + write shards")
    shutil.rmtree(os.path.join(work, "profile-shards"), ignore_errors=True)
    encodings = {c["name"]: c["encoding"] for c in stats["columns"]}
    k = {p.name: draw_k() for p in plans}
    n_rows, overview = _overview(df, plans)
    lap("  analysis: overview")
    _keys(df, plans, n_rows, overview, _probe(df, plans))
    lap("  analysis: probe of the first rows + identifier estimates")
    _value_counts(df, [p for p in plans if encodings[p.name] == "categorical"])
    lap("  analysis: value counts")
    bounds = _bounds(df, [p for p in plans if encodings[p.name] in ("digits", "binned", "datetime")], k)
    lap("  analysis: bounds")
    _quantiles(df, [p for p in plans if encodings[p.name] == "binned"], bounds, n_rows, k)
    lap("  analysis: quantiles")
    df.write.mode("overwrite").parquet(os.path.join(work, "floor"))
    lap("floor: the table read and written as it is")
    shutil.rmtree(os.path.join(work, "floor"), ignore_errors=True)
    return seconds


def baseline(spark, source: str, output: str) -> None:
    """Spark's own pass over the table: read, a group-by over the categorical columns, a write of every row."""
    df = spark.read.parquet(source)
    df.groupBy("event_type", "channel", "segment", "country").agg(
        F.count(F.lit(1)), F.avg("amount"), F.min("event_time"), F.max("event_time")).collect()
    df.write.mode("overwrite").parquet(output)


def main() -> None:
    args = parse_args()
    host = machine()
    from spark_synth.config import TrainConfig
    from spark_synth.examples.datasets import simulate_log
    from spark_synth.spark.session import get_spark
    from spark_synth.spark.workspace import Workspace
    from spark_synth.stages.flat import prepare_flat

    work = tempfile.mkdtemp(prefix="bench-encode-")
    sampler = MemorySampler()
    sampler.start()
    results = []
    try:
        spark = get_spark(args.master)
        for target in args.rows:
            sampler.phase = f"source {target}"
            source = os.path.join(work, f"events-{target}.parquet")
            customers, events = simulate_log(spark, max(1, int(target / MEAN_EVENTS)), seed=1, mean_events=MEAN_EVENTS)
            events.join(customers, "customer_id").drop("customer_id").write.parquet(source)
            n = spark.read.parquet(source).count()
            if target == args.rows[0]:
                sampler.phase = "warm-up"
                baseline(spark, source, os.path.join(work, "baseline"))
            times: dict[str, list[float]] = {"ours": [], "baseline": []}
            for r in range(args.repeats):
                sampler.phase = f"ours {target}"
                config = TrainConfig(data=source, model_dir=os.path.join(work, "unused"), work_dir=work, seed=r)
                workspace = Workspace(config)
                started = time.perf_counter()
                prepared = prepare_flat(config, config.schema(), spark, workspace)
                times["ours"].append(time.perf_counter() - started)
                encoded = prepared.train_rows + prepared.validation_rows
                workspace.remove()
                if encoded != n:
                    raise SystemExit(f"encoded {encoded} rows of {n}")
                sampler.phase = f"baseline {target}"
                started = time.perf_counter()
                baseline(spark, source, os.path.join(work, "baseline"))
                times["baseline"].append(time.perf_counter() - started)
                print(f"{n:,} rows, round {r + 1}: ours {times['ours'][-1]:.1f} s, "
                      f"baseline {times['baseline'][-1]:.1f} s", flush=True)
            if target == args.rows[-1]:
                sampler.phase = "profile"
                profile = stage_profile(spark, source, work)
            shutil.rmtree(source, ignore_errors=True)
            best = {k: min(v) for k, v in times.items()}
            peaks = {k: sampler.peaks.get(f"{k} {target}", {}) for k in ("ours", "baseline")}
            results.append({"rows": n, "seconds": times, "rows_per_s": {k: n / v for k, v in best.items()},
                            "rows_per_s_per_core": {k: n / v / host["nproc"] for k, v in best.items()},
                            "time_ratio_ours_over_baseline": best["ours"] / best["baseline"], "peak_mib": peaks})
        spark.stop()
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nanalyze + encode vs read + group + write, {args.master}, {host['nproc']} x {host['cpu']}, "
          f"load {host['loadavg_1m_at_start']}")
    rows = []
    for r in results:
        for name in ("ours", "baseline"):
            peak = r["peak_mib"][name]
            rows.append([f"{r['rows']:,}", name, " / ".join(f"{t:.1f}" for t in r["seconds"][name]),
                         r["rows_per_s_per_core"][name], *(round(peak.get(k, 0)) for k in ("driver", "jvm", "workers"))])
    print(table(["rows", "job", "seconds", "rows/s per core", "driver MiB", "JVM MiB", "py workers MiB"], rows))
    for r in results:
        print(f"{r['rows']:,} rows: ours takes {r['time_ratio_ours_over_baseline']:.2f} x the baseline's time "
              "(bar: within 3 x at 10M)")
    print(f"\nthe steps one by one at {results[-1]['rows']:,} rows:")
    print(table(["step", "seconds"], [[k, round(v, 1)] for k, v in profile.items()]))
    write_result({"benchmark": "encode_scale", "master": args.master, "machine": host, "sizes": results,
                  "stage_seconds_at_largest": profile}, args.out)


if __name__ == "__main__":
    main()
