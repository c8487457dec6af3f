"""`spark-synth demo`: the whole flat pipeline on bundled data, with the embedded defaults."""

from __future__ import annotations

import os

from spark_synth.config import GenerateConfig, TrainConfig
from spark_synth.examples.datasets import credit_data
from spark_synth.secrets import redact
from spark_synth.spark.session import get_spark
from spark_synth.stages.generate import generate
from spark_synth.stages.train import train


def run_demo(output_dir: str = "demo-output", max_minutes: float = 1.5, rows: int = 100_000,
             tracking_uri: str | None = None) -> None:
    spark = get_spark()
    os.makedirs(output_dir, exist_ok=True)
    data_path = os.path.join(output_dir, "credit_data.parquet")
    credit_data().to_parquet(data_path, index=False)
    print(f"demo data: modeldata::credit_data (4,454 loan applicants) -> {data_path}")
    outcome = train(TrainConfig(data=data_path, model_dir=os.path.join(output_dir, "generator"),
                                max_minutes=max_minutes, tracking_uri=tracking_uri, target="Status",
                                report=os.path.join(output_dir, "report.html"),
                                experiment="spark-synth-demo"), spark)
    synthetic_path = os.path.join(output_dir, "synthetic")
    generate(GenerateConfig(model=outcome.model_dir, rows=rows, output=synthetic_path, mode="overwrite"), spark)
    print(spark.read.parquet(synthetic_path).limit(5).toPandas().to_string(index=False))
    print(f"\nwrote {rows} synthetic rows to {synthetic_path}")
    print(f"generator: {outcome.model_dir}  (MLflow: {outcome.model_uri})")
    print(f"quality and privacy report: {os.path.join(output_dir, 'report.html')} (also in the MLflow run)")
    print(f"MLflow UI: mlflow ui --backend-store-uri {redact(outcome.tracking_uri)}  -> http://127.0.0.1:5000, "
          f"experiment 'spark-synth-demo', run {outcome.run_id}")
