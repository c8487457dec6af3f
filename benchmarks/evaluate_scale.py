"""Evaluation at scale: `spark-synth evaluate` of 1M and 10M synthetic census rows against the census
training and holdout splits, with time per step and peak memory (driver, JVM, Python workers).

Why: accuracy, coherence and exact matches are Spark aggregations over every synthetic row; distances,
the membership audit and TSTR use fixed-size samples. So time should grow with the rows while the
driver's memory stays flat: two sizes show it. The synthetic rows come from a census generator trained
for a minute (quality is not the point here) and are written once per size before the timed evaluation.

    .venv/bin/python benchmarks/evaluate_scale.py [--sizes 1000000 10000000] [--master local[2]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from common import DEFAULT_DATA_DIR, RESULTS_DIR, MemorySampler, machine, table, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--train-minutes", type=float, default=1.0)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "evaluate_scale.json"))
    args = ap.parse_args()

    from spark_synth import generate, train
    from spark_synth.config import EvaluateConfig, GenerateConfig, TrainConfig
    from spark_synth.spark.session import get_spark
    from spark_synth.stages.evaluate import run_evaluation

    host = machine()
    training = os.path.abspath(os.path.join(args.data_dir, "census_train.parquet"))
    holdout = os.path.abspath(os.path.join(args.data_dir, "census_holdout.parquet"))
    spark = get_spark(args.master)
    work = tempfile.mkdtemp(prefix="bench-evaluate-scale-")
    sampler = MemorySampler()
    sampler.start()
    results = []
    try:
        model = os.path.join(work, "model")
        train(TrainConfig(data=training, model_dir=model, max_minutes=args.train_minutes, quality_rows=0,
                          progress=False, tracking_uri=f"sqlite:///{work}/mlflow.db", work_dir=work), spark)
        for rows in args.sizes:
            synthetic = os.path.join(work, f"synthetic-{rows}")
            started = time.monotonic()
            generate(GenerateConfig(model=model, rows=rows, output=synthetic), spark)
            generate_seconds = time.monotonic() - started
            sampler.phase = f"evaluate {rows}"
            started = time.monotonic()
            outcome = run_evaluation(EvaluateConfig(synthetic=synthetic, training=training, holdout=holdout,
                                                    target="income", report=os.path.join(work, f"report-{rows}.html"),
                                                    mlflow=False), spark)
            seconds = time.monotonic() - started
            sampler.phase = "between"
            peak = sampler.peaks[f"evaluate {rows}"]
            evaluation = outcome.evaluation
            results.append({"rows": rows, "seconds": round(seconds, 1), "rows_per_second": rows / seconds,
                            "generate_seconds": round(generate_seconds, 1), "steps": evaluation.result["seconds"],
                            "peak_mib": {k: round(v) for k, v in peak.items()},
                            "accuracy_overall": evaluation.headline["accuracy_overall"],
                            "dcr_share": evaluation.headline["dcr_share"]})
            shutil.rmtree(synthetic, ignore_errors=True)
    finally:
        sampler.stop()
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nevaluate at scale, census schema, {args.master}, {host['nproc']} x {host['cpu']}, "
          f"load {host['loadavg_1m_at_start']}")
    print(table(["synthetic rows", "seconds", "rows/s", "peak driver MiB", "peak JVM MiB", "peak workers MiB",
                 "accuracy", "DCR share"],
                [[r["rows"], r["seconds"], r["rows_per_second"], r["peak_mib"]["driver"], r["peak_mib"]["jvm"],
                  r["peak_mib"]["workers"], r["accuracy_overall"], r["dcr_share"]] for r in results]))
    print("\nseconds per step")
    steps = list(results[0]["steps"])
    print(table(["step", *[f"{r['rows']:,} rows" for r in results]],
                [[s, *[r["steps"].get(s) for r in results]] for s in steps]))
    write_result({"benchmark": "evaluate_scale", "master": args.master, "machine": host, "results": results},
                 args.out)


if __name__ == "__main__":
    main()
