"""Census quality benchmark: train spark-synth on census, generate, and score with the referee.

Why: the issues' acceptance figures (overall accuracy, DCR share, TSTR) come from
``../shared/tools/score.py`` (mostlyai-qa + TSTR with gradient boosting), run from a separate venv.
This script runs exactly that on the same split the MOSTLY AI SDK reference was measured on, and
prints our figures next to the targets and the reference.

    .venv/bin/python benchmarks/census_quality.py [--max-minutes 10] [--qa-python PY] [--out FILE]
    .venv/bin/python benchmarks/census_quality.py --max-epsilon 2 --delta 1e-5    # with differential privacy

Model, MLflow store (sqlite) and synthetic rows live in a temporary directory removed at the end
(``--keep`` keeps it, with the referee's HTML report).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any

from common import (
    DEFAULT_DATA_DIR,
    RESULTS_DIR,
    add_privacy_args,
    default_qa_python,
    machine,
    privacy_figures,
    referee,
    table,
    write_result,
)

TRAIN_ROWS = 39_074  # size of census_train.parquet; we generate as many rows as the training split
TARGETS = {"overall": (">=", 0.97), "dcr_share": ("<=", 0.53), "tstr_gap": ("<=", 0.015)}
REFERENCE = {"overall": 0.973, "univariate": 0.988, "bivariate": 0.975, "trivariate": 0.956,
             "dcr_share": 0.51, "tstr_auc": 0.916}  # MOSTLY AI SDK, 3 min training; real holdout: 0.984
HOLDOUT_CEILING = 0.984
# with --max-epsilon: the DP issue's bar, and the MOSTLY AI SDK at max epsilon 2 (stopped after 170 s, budget spent)
DP_TARGETS = {"overall": (">=", 0.88)}
DP_REFERENCE = {"overall": 0.860, "univariate": 0.922, "bivariate": 0.859, "trivariate": 0.797, "tstr_auc": 0.857,
                "epsilon": 2.0}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="holds census_train.parquet and census_holdout.parquet")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="training budget")
    ap.add_argument("--seed", type=int, default=0, help="training seed (generation always uses seed 0)")
    ap.add_argument("--master", default="local[2]", help="Spark master")
    ap.add_argument("--qa-python", default=default_qa_python(), help="python of the venv with mostlyai-qa")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "census_quality.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    add_privacy_args(ap)
    args = ap.parse_args()
    if args.max_epsilon is not None:
        TARGETS.clear()
        TARGETS.update(DP_TARGETS, epsilon=("<=", args.max_epsilon))
        REFERENCE.clear()
        REFERENCE.update(DP_REFERENCE)
        if args.out == os.path.join(RESULTS_DIR, "census_quality.json"):
            args.out = os.path.join(RESULTS_DIR, "census_dp_quality.json")
    return args


def train_and_generate(args: argparse.Namespace, train_path: str, work: str) -> tuple[dict[str, Any], str]:
    """Train with a private sqlite MLflow store, generate the synthetic table; returns (figures, output path)."""
    import mlflow

    from spark_synth import generate, train
    from spark_synth.config import GenerateConfig, TrainConfig
    from spark_synth.spark.session import get_spark

    spark = get_spark(args.master)
    tracking_uri = f"sqlite:///{os.path.join(work, 'mlflow.db')}"
    mlflow.set_tracking_uri(tracking_uri)  # artifacts into the work dir too, not ./mlruns
    mlflow.create_experiment("census-quality", artifact_location=os.path.join(work, "mlartifacts"))
    model_dir, output = os.path.join(work, "model"), os.path.join(work, "synthetic")

    started = time.monotonic()
    config = TrainConfig(data=train_path, model_dir=model_dir, max_minutes=args.max_minutes, seed=args.seed,
                         tracking_uri=tracking_uri, experiment="census-quality", work_dir=work, progress=False,
                         max_epsilon=args.max_epsilon, delta=args.delta)
    train(config, spark)
    train_wall = time.monotonic() - started

    started = time.monotonic()
    generate(GenerateConfig(model=model_dir, rows=TRAIN_ROWS, output=output, format="parquet",
                            mode="overwrite", seed=0), spark)
    generate_wall = time.monotonic() - started
    spark.stop()

    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    figures = {"train_seconds": meta.get("train_seconds"), "train_wall_seconds": round(train_wall, 1),
               "epochs": meta.get("epochs"), "best_epoch": meta.get("best_epoch"),
               "stopped_by": meta.get("stopped_by"), "generate_wall_seconds": round(generate_wall, 1)}
    return figures | privacy_figures(meta), output


def score(qa_python: str, synthetic: str, train_path: str, holdout_path: str, report_dir: str) -> dict[str, Any]:
    """Run the referee in its own venv and return its JSON line."""
    return referee(qa_python, ["flat", synthetic, train_path, holdout_path, "--target", "income",
                               "--label", "census_quality", "--report-dir", report_dir])


def report(figures: dict[str, Any]) -> str:
    def check(key: str, value: float | None) -> str:
        if key not in TARGETS or value is None:
            return ""
        op, bound = TARGETS[key]
        ok = value >= bound if op == ">=" else value <= bound
        return f"{op} {bound} {'ok' if ok else 'MISSED'}"

    rows: list[list[object]] = [
        ["training seconds (fit / train() wall)", f"{figures['train_seconds']} / {figures['train_wall_seconds']}", "", ""],
        ["epochs (best)", f"{figures['epochs']} ({figures['best_epoch']})", "", ""],
        ["stopped_by", figures["stopped_by"], "", ""],
        ["generate wall seconds (39,074 rows)", figures["generate_wall_seconds"], "", ""],
    ]
    for key in ("overall", "univariate", "bivariate", "trivariate", "dcr_share", "tstr_auc", "trtr_auc"):
        rows.append([key, figures.get(key), check(key, figures.get(key)), REFERENCE.get(key)])
    if "epsilon" in figures:
        rows.append(["epsilon spent (statistics + training)", f"{figures['epsilon']:.3f}",
                     check("epsilon", figures["epsilon"]), REFERENCE.get("epsilon")])
        rows.append(["delta", figures["delta"], "", None])
        rows.append(["DP-SGD", figures["dp_sgd"], "", None])
        rows.append(["statistics noise std (counts)", figures["statistics_noise_std"], "", None])
    rows.append(["|tstr - trtr|", figures.get("tstr_gap"), check("tstr_gap", figures.get("tstr_gap")), None])
    rows.append(["discriminator AUC (train vs synthetic)", figures.get("discriminator_auc"), "", None])
    rows.append(["overall of a real holdout (ceiling)", figures.get("overall_max"), "", HOLDOUT_CEILING])
    rows.append(["referee seconds", figures.get("referee_s"), "", None])
    return table(["metric", "spark-synth", "target", "MOSTLY AI SDK"], rows)


def main() -> None:
    args = parse_args()
    host = machine()
    train_path = os.path.abspath(os.path.join(args.data_dir, "census_train.parquet"))
    holdout_path = os.path.abspath(os.path.join(args.data_dir, "census_holdout.parquet"))
    for path in (train_path, holdout_path, args.qa_python):
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}")
    work = tempfile.mkdtemp(prefix="bench-census-")
    try:
        figures, synthetic = train_and_generate(args, train_path, work)
        scores = score(args.qa_python, synthetic, train_path, holdout_path, work)
    finally:
        if args.keep:
            print(f"working directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures |= {k: v for k, v in scores.items() if k != "label"}
    if "tstr_auc" in figures:
        figures["tstr_gap"] = abs(figures["tstr_auc"] - figures["trtr_auc"])
    result = {"benchmark": "census_quality", "max_minutes": args.max_minutes, "seed": args.seed,
              "max_epsilon": args.max_epsilon, "delta": args.delta,
              "master": args.master, "machine": host, "figures": figures,
              "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()}, "mostly_ai_sdk": REFERENCE,
              "holdout_ceiling": HOLDOUT_CEILING}
    privacy = f", max_epsilon={args.max_epsilon}" if args.max_epsilon is not None else ""
    print(f"\ncensus quality, max_minutes={args.max_minutes}{privacy}, {host['nproc']} x {host['cpu']}, "
          f"load {host['loadavg_1m_at_start']}")
    print(report(figures))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
