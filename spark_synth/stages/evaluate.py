"""`spark-synth evaluate`: run the evaluation, write the HTML report, log it to MLflow.

With ``--model`` the figures join the generator's own MLflow run (and its DP epsilon joins the report);
without it they get a run of their own in the experiment.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass

from pyspark.sql import SparkSession

from spark_synth import tracking
from spark_synth.config import EvaluateConfig
from spark_synth.errors import SynthError
from spark_synth.evaluation.evaluation import Evaluation, evaluate, summary_json
from spark_synth.spark.session import session_for

logger = logging.getLogger(__name__)


@dataclass
class EvaluateOutcome:
    evaluation: Evaluation
    report: str | None
    run_id: str | None
    promoted: str | None = None  # the registry version the alias now points at


def run_evaluation(config: EvaluateConfig, spark: SparkSession | None = None) -> EvaluateOutcome:
    """Evaluate, then deliver: the report file (written whole or not at all) and the MLflow run; then the
    quality gate (a failure is an error, after the figures are recorded) and the promotion to an alias."""
    if config.report:
        check_report_path(config.report)
    privacy, run_id = None, None
    if config.mlflow or config.promote:
        tracking.configure(config.tracking_uri, config.registry_uri)
        if config.mlflow and not config.model:
            tracking.check_experiment(config.experiment)
    if config.model:
        generator = tracking.load_generator(config.model, config.tracking_uri)
        meta = getattr(generator, "meta", {}) or {}
        privacy, run_id = meta.get("privacy"), meta.get("mlflow_run_id")
        if privacy:
            logger.warning(f"{config.model} was trained under differential privacy (epsilon {privacy['epsilon']:.3g}); "
                  "this evaluation reads the real tables, and its report and figures are not covered by that epsilon.")
        if config.rows is not None:
            spark = spark or session_for(config)
            config = config.model_copy(update=_generated(spark, generator, config))
    evaluation = evaluate(config, spark, privacy)
    if config.report:
        write_atomically(config.report, evaluation.html)
    if config.mlflow:
        run_id = _log(config, evaluation, run_id)
    accuracy = evaluation.headline.get("accuracy_overall")
    if config.min_accuracy is not None and (accuracy is None or accuracy < config.min_accuracy):
        raise SynthError(f"quality gate failed: overall accuracy {accuracy} is below --min-accuracy "
                         f"{config.min_accuracy}" + (f"; {config.model} was not promoted to '{config.promote}'"
                                                     if config.promote else "") + ".",
                         "Train longer (--max-minutes) or on more data, or lower --min-accuracy.")
    promoted = tracking.promote(config.model, config.promote, config.tracking_uri, config.registry_uri) \
        if config.promote else None
    return EvaluateOutcome(evaluation, config.report, run_id, promoted)


def _generated(spark: SparkSession, generator, config: EvaluateConfig) -> dict:
    """The synthetic side generated from the evaluated generator (lazy; the evaluation persists it once)."""
    from spark_synth.spark.sample_job import generate_tables

    is_log = generator.unit == "subjects"
    if is_log != config.is_log:
        raise SynthError(f"{config.model} is {'an event-log' if is_log else 'a flat'} "
                         "generator, but the evaluation compares the other form.",
                         "Compare a flat generator with --training/--holdout, an event log with --*-subjects/--*-events.")
    tables = generate_tables(spark, generator, config.rows, config.seed)
    if config.is_log:
        return {"synthetic_subjects": tables["subjects"], "synthetic_events": tables["events"]}
    return {"synthetic": tables["rows"]}


def check_report_path(path: str) -> None:
    if not path.lower().endswith((".html", ".htm")):
        raise SynthError(f"--report {path} is not an .html file name.", "Pass a path ending in .html.")
    if os.path.isdir(path):
        raise SynthError(f"--report {path} is a directory.", "Pass a file path ending in .html.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SynthError(f"the folder of --report {path} does not exist.", f"Create {folder} first.")


def write_atomically(path: str, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a report."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would hide the report from other readers
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _log(config: EvaluateConfig, evaluation: Evaluation, run_id: str | None) -> str:
    import mlflow

    summary = summary_json(evaluation.result)
    if run_id is not None:
        try:
            with mlflow.start_run(run_id=run_id):  # beside the after-training evaluation, not over it
                stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
                tracking.log_evaluation(evaluation.headline, evaluation.html, summary, f"evaluation-{stamp}")
            return run_id
        except mlflow.exceptions.MlflowException as exc:
            logger.info(f"note: the generator's MLflow run {run_id} is not in this tracking store ({str(exc)[:120]}); "
                  "logging the evaluation to a new run")
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name="evaluate") as run:
        mlflow.log_params({"evaluated": "event log" if config.is_log else "flat table",
                           "target": config.target or "", "model": config.model or ""})
        tracking.log_evaluation(evaluation.headline, evaluation.html, summary)
    return run.info.run_id
