"""Events without subject attributes: a users->purchases log given as events alone, and with a key-only subject
table, trained and generated end to end.

Data: the project's simulator (customers and their events) with every customer attribute dropped. For each shape
the script trains a generator, generates as many subjects as the real table has (times --scale), and checks what
the redesign issue asks: no orphan events, events in order per subject, and the sequence-length distribution
within 0.02 TVD of the real one. The TVD is the evaluation's own figure (1 - ``sequence_length``: ten
quantile bins of the lengths, fitted on the real ones) and, as a cross-check, the TVD of the exact lengths in
this script. The noise floor is the same figure between two halves of the real subjects.

    .venv/bin/python benchmarks/events_alone.py            # ~15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS_DIR, machine, table, write_result  # noqa: E402

from spark_synth import generate, train  # noqa: E402
from spark_synth.config import EvaluateConfig, GenerateConfig, TrainConfig  # noqa: E402
from spark_synth.evaluation.evaluation import evaluate  # noqa: E402
from spark_synth.examples.simulator import simulate_log  # noqa: E402
from spark_synth.spark.session import get_spark  # noqa: E402

SHAPES = ("events-alone", "key-only-subjects")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--mean-events", type=float, default=10.0)
    ap.add_argument("--train-minutes", type=float, default=4.0)
    ap.add_argument("--scale", type=int, default=4, help="synthetic subjects per real subject")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "events_alone.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data, models, output)")
    return ap.parse_args()


def exact_tvd(real: pd.Series, synthetic: pd.Series) -> float:
    """TVD of two distributions of sequence lengths, one bin per length."""
    p, q = real.value_counts(normalize=True), synthetic.value_counts(normalize=True)
    return float(0.5 * p.subtract(q, fill_value=0.0).abs().sum())


def lengths(events: pd.DataFrame, subjects: pd.Series) -> pd.Series:
    """Events per subject, subjects without events counting 0."""
    counts = events.groupby("customer_id").size()
    return counts.reindex(subjects, fill_value=0)


def main() -> None:
    args = parse_args()
    spark = get_spark("local[2]")
    work = tempfile.mkdtemp(prefix="events-alone-")
    try:
        run(args, spark, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, spark, work: str) -> None:
    customers, events = simulate_log(spark, args.customers, seed=7, mean_events=args.mean_events)
    events.write.parquet(f"{work}/events")
    customers.select("customer_id").write.parquet(f"{work}/customers")
    real_events = pd.read_parquet(f"{work}/events")
    store = f"sqlite:///{work}/mlflow.db"
    rows = []
    for shape in SHAPES:
        real_subjects = (pd.read_parquet(f"{work}/customers").customer_id if shape == "key-only-subjects"
                         else pd.Series(real_events.customer_id.unique()))
        settings = dict(events=f"{work}/events", foreign_key="customer_id", order_by="event_time",
                        model_dir=f"{work}/{shape}/generator", max_minutes=args.train_minutes, tracking_uri=store,
                        quality_rows=0, progress=False, seed=0)
        if shape == "key-only-subjects":
            settings |= dict(subjects=f"{work}/customers", subject_key="customer_id")
        started = time.monotonic()
        outcome = train(TrainConfig(**settings), spark)
        train_seconds = time.monotonic() - started
        n_synthetic = args.scale * len(real_subjects)
        output = f"{work}/{shape}/synthetic"
        started = time.monotonic()
        generate(GenerateConfig(model=settings["model_dir"], subjects=n_synthetic, output=output, tracking_uri=store),
                 spark)
        generate_seconds = time.monotonic() - started
        subjects, synthetic = pd.read_parquet(f"{output}/subjects"), pd.read_parquet(f"{output}/events")
        ordered = bool((synthetic.groupby("customer_id", sort=False).event_time.diff().dropna()
                        >= pd.Timedelta(0)).all())
        half = real_subjects.sample(frac=0.5, random_state=0)
        sides = {"training": real_events[real_events.customer_id.isin(half)],
                 "holdout": real_events[~real_events.customer_id.isin(half)], "synthetic": synthetic}
        paths = {}
        for side, frame in sides.items():
            paths[side] = f"{work}/{shape}/{side}.parquet"
            frame.to_parquet(paths[side], index=False)
        figures = evaluate(EvaluateConfig(**{f"{side}_events": path for side, path in paths.items()},
                                          foreign_key="customer_id", order_by="event_time", mlflow=False,
                                          progress=False), spark).headline
        real_lengths, synthetic_lengths = lengths(real_events, real_subjects), lengths(synthetic, subjects.customer_id)
        floor = exact_tvd(real_lengths[real_lengths.index.isin(half)], real_lengths[~real_lengths.index.isin(half)])
        rows.append({
            "shape": shape, "real_subjects": len(real_subjects), "synthetic_subjects": len(subjects),
            "subject_columns": list(subjects.columns),
            "orphan_events": int((~synthetic.customer_id.isin(subjects.customer_id)).sum()), "ordered": ordered,
            "length_tvd_binned": round(1 - figures["sequence_length"], 4),
            "length_tvd_exact": round(exact_tvd(real_lengths, synthetic_lengths), 4),
            "length_tvd_exact_real_halves": round(floor, 4),
            "mean_length_real": round(float(real_lengths.mean()), 2),
            "mean_length_synthetic": round(float(synthetic_lengths.mean()), 2),
            "accuracy_overall": round(figures["accuracy_overall"], 4), "coherence": round(figures["coherence"], 4),
            "events_epochs": outcome.metrics["events_epochs"], "train_seconds": round(train_seconds, 1),
            "generate_seconds": round(generate_seconds, 1),
        })
        print(json.dumps(rows[-1]), flush=True)
    write_result({"benchmark": "events_alone", "machine": machine(), "settings": vars(args), "results": rows}, args.out)
    header = ["shape", "real_subjects", "synthetic_subjects", "orphan_events", "ordered", "length_tvd_binned",
              "length_tvd_exact", "length_tvd_exact_real_halves", "mean_length_real", "mean_length_synthetic",
              "accuracy_overall", "coherence", "train_seconds"]
    print(table(header, [[r[h] for h in header] for r in rows]))
    np.testing.assert_equal([r["orphan_events"] for r in rows], [0] * len(rows))


if __name__ == "__main__":
    main()
