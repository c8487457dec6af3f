"""The evaluation stage at the end of training: fresh synthetic data against the training split and the
validation split (the holdout the weights never saw), logged into the training's MLflow run."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from spark_synth import tracking
from spark_synth.config import EvaluateConfig, TrainConfig
from spark_synth.evaluation.evaluation import evaluate, summary_json
from spark_synth.stages.evaluate import write_atomically

logger = logging.getLogger(__name__)

MIN_HOLDOUT = 100  # rows (subjects) below which the validation split is too small to audit against


def should_evaluate(config: TrainConfig, n_holdout: int) -> bool:
    """Whether the stage runs: asked for (``evaluation_rows`` > 0) and a validation split large enough to audit
    against; decided before any synthetic data is generated for it. Under DP it runs only when asked for by
    name, with a warning: its report is made of real data the budget does not cover."""
    if not config.evaluation_rows:
        return False
    if config.private:
        logger.warning("quality_rows is set under differential privacy: the after-training evaluation compares "
              "with the real training and validation rows, and its report and figures (logged to this MLflow run) "
              f"are not covered by max_epsilon {config.max_epsilon:g}. Leave quality_rows out (or 0) for a run that "
              "holds only DP outputs.")
    if n_holdout < MIN_HOLDOUT:
        logger.info(f"evaluation skipped: the validation split is too small (under {MIN_HOLDOUT} rows or subjects) to "
              "compare against; evaluate with `spark-synth evaluate` and a larger holdout")
        return False
    return True


def evaluate_after_training(spark: SparkSession, config: TrainConfig, frames: dict[str, DataFrame],
                            privacy: dict | None, **keys: Any) -> dict[str, float]:
    """Score ``frames`` (flat: synthetic, training, holdout; log: ``{side}_subjects``/``{side}_events``),
    print the headline, log every figure and the HTML report to the active MLflow run; the headline back."""
    settings = EvaluateConfig(**frames, **keys, target=config.target, mlflow=False, progress=config.progress,
                              seed=config.seed)
    evaluation = evaluate(settings, spark, privacy)
    tracking.log_evaluation(evaluation.headline, evaluation.html, summary_json(evaluation.result))
    if config.report:
        write_atomically(config.report, evaluation.html)
        logger.info(f"evaluation report written to {config.report}")
    logger.info(format_headline(evaluation.headline))
    return evaluation.headline


def format_headline(headline: dict[str, float]) -> str:
    """The headline figures as aligned lines, the most read ones first."""
    def number(value: float) -> str:
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"  # delta is ~1e-5

    return "\n".join(f"  {name:<36} {number(value)}" for name, value in headline.items())
