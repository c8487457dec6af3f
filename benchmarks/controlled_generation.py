"""Controlled generation on census: seeded, rebalanced and fair generation against plain generation, all
scored by the referee (``../shared/tools/score.py``, mostlyai-qa) in one run.

Why: the controlled-generation issue's acceptance figures.
- Seeded: the holdout's (sex, race, age) as the seed; the seed columns must come out exactly, and
  the accuracy of the seeded rows against the holdout is reported.
- Rebalanced: income at 50/50; the share of >50K, and within each class the bivariate accuracy of
  the other columns against the real rows of that class, next to the same figure for plain generation
  (bar: within 0.02).
- Fair: statistical parity of income across sex (bar: gap below 0.02) and the overall accuracy drop
  against plain generation (bar: below 0.02).

    .venv/bin/python benchmarks/controlled_generation.py [--minutes 5] [--rows 39074] [--qa-python PY]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import pandas as pd
from common import census_parser, machine, referee, table, write_result

SEED_COLUMNS = ["sex", "race", "age"]
HIGH = ">50K"


def parse_args() -> argparse.Namespace:
    ap = census_parser(__doc__, "controlled_generation.json")
    ap.add_argument("--minutes", type=float, default=5.0, help="training budget")
    ap.add_argument("--rows", type=int, default=39_074, help="rows per generated table")
    return ap.parse_args()


def main() -> None:
    import mlflow

    from spark_synth import train
    from spark_synth.config import TrainConfig
    from spark_synth.generators.controls import Controls
    from spark_synth.generators.flat import FlatGenerator
    from spark_synth.spark.sample_job import generate_dataframe, generate_seeded_dataframe
    from spark_synth.spark.session import get_spark

    args = parse_args()
    train_path = os.path.join(args.data_dir, "census_train.parquet")
    holdout_path = os.path.join(args.data_dir, "census_holdout.parquet")
    work = tempfile.mkdtemp(prefix="bench-controlled-")
    spark = get_spark("local[2]")
    try:
        mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
        mlflow.create_experiment("controlled", artifact_location=os.path.join(work, "artifacts"))
        outcome = train(TrainConfig(data=train_path, model_dir=f"{work}/model", max_minutes=args.minutes,
                                    experiment="controlled", quality_rows=0, progress=False), spark)
        generator = FlatGenerator.load(outcome.model_dir)
        holdout = spark.read.parquet(holdout_path)

        def write(df, name: str) -> str:
            path = f"{work}/{name}"
            df.write.parquet(path)
            return path

        paths = {
            "plain": write(generate_dataframe(spark, generator, args.rows, seed=1), "plain"),
            "rebalanced": write(generate_dataframe(spark, generator, args.rows, seed=1, controls=Controls(
                rebalance_column="income", rebalance_shares={HIGH: 0.5, "<=50K": 0.5})), "rebalanced"),
            "fair": write(generate_dataframe(spark, generator, args.rows, seed=1, controls=Controls(
                fairness_target="income", fairness_sensitive="sex")), "fair"),
            "seeded": write(generate_seeded_dataframe(spark, generator, holdout.select(*SEED_COLUMNS), seed=1),
                            "seeded"),
        }
        frames = {name: pd.read_parquet(path) for name, path in paths.items()}
        real_train, real_holdout = pd.read_parquet(train_path), pd.read_parquet(holdout_path)
        scores = {name: referee(args.qa_python, ["flat", path, train_path, holdout_path])
                  for name, path in paths.items()}

        seed_kept = (frames["seeded"][SEED_COLUMNS].sort_values(SEED_COLUMNS).reset_index(drop=True)
                     .equals(real_holdout[SEED_COLUMNS].sort_values(SEED_COLUMNS).reset_index(drop=True)))
        per_class = {}
        for label in (HIGH, "<=50K"):  # bivariate accuracy of the other columns within each class
            files = {}
            for name, frame in [("plain", frames["plain"]), ("rebalanced", frames["rebalanced"]),
                                ("train", real_train), ("holdout", real_holdout)]:
                files[name] = f"{work}/class-{label.strip('<>=')}-{name}.parquet"
                frame[frame["income"] == label].drop(columns=["income"]).to_parquet(files[name], index=False)
            per_class[label] = {name: referee(args.qa_python, ["flat", files[name], files["train"],
                                                               files["holdout"]])["bivariate"]
                                for name in ("plain", "rebalanced")}

        def parity_gap(frame: pd.DataFrame) -> float:
            rates = frame.groupby("sex")["income"].apply(lambda s: (s == HIGH).mean())
            return float(rates.max() - rates.min())

        result = {
            "machine": machine(), "minutes": args.minutes, "rows": args.rows,
            "overall": {name: s["overall"] for name, s in scores.items()},
            "seeded": {"seed_columns_kept": bool(seed_kept), "overall_vs_holdout": scores["seeded"]["overall"]},
            "rebalanced": {"share_high": float((frames["rebalanced"]["income"] == HIGH).mean()),
                           "share_high_plain": float((frames["plain"]["income"] == HIGH).mean()),
                           "bivariate_within_class": per_class},
            "fair": {"parity_gap": parity_gap(frames["fair"]), "parity_gap_plain": parity_gap(frames["plain"]),
                     "parity_gap_real": parity_gap(real_train),
                     "overall_drop": scores["plain"]["overall"] - scores["fair"]["overall"]},
        }
        rows = [["seed columns kept exactly", result["seeded"]["seed_columns_kept"], "yes"],
                ["seeded rows: overall accuracy", scores["seeded"]["overall"], "reported"],
                ["rebalanced: share >50K", result["rebalanced"]["share_high"], "0.50 ± 0.01"],
                ["plain: share >50K", result["rebalanced"]["share_high_plain"], ""]]
        for label, pair in per_class.items():
            rows.append([f"bivariate within {label}: rebalanced / plain",
                         f"{pair['rebalanced']:.4f} / {pair['plain']:.4f}", "within 0.02"])
        rows += [["fair: parity gap of >50K across sex", result["fair"]["parity_gap"], "< 0.02"],
                 ["plain / real: parity gap", f"{result['fair']['parity_gap_plain']:.4f} / "
                                             f"{result['fair']['parity_gap_real']:.4f}", ""],
                 ["fair: overall accuracy drop vs plain", result["fair"]["overall_drop"], "< 0.02"],
                 ["overall: plain / rebalanced / fair", " / ".join(f"{scores[n]['overall']:.4f}"
                                                                   for n in ("plain", "rebalanced", "fair")), ""]]
        print(table(["figure", "value", "bar"], rows))
        write_result(result, args.out)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
