"""The training stage, for every data shape: one sequence (checks, workspace, rank launch, DP accounting, save,
evaluation, tracking) around the small part each shape adds (:class:`ShapeTraining`)."""

from __future__ import annotations

import logging
import time

from pyspark.sql import SparkSession

from spark_synth import ownership, tracking
from spark_synth.config import TrainConfig
from spark_synth.privacy import plan as dp
from spark_synth.spark.launch import check_backend, launch
from spark_synth.spark.session import session_for
from spark_synth.spark.workspace import Workspace
from spark_synth.stages.event_log import EventLogTraining
from spark_synth.stages.flat import FlatTraining
from spark_synth.stages.training_run import ShapeTraining, TrainOutcome, start_training

logger = logging.getLogger(__name__)


def train(config: TrainConfig, spark: SparkSession | None = None) -> TrainOutcome:
    """Train a generator on the config's schema (a flat table or an event log) and track it in MLflow; the sources are only read.

    The model dir is replaced only once the new generator is saved and tracked; the workspace (and on success
    the checkpoints) is removed however the training ends.
    """
    schema = config.schema()  # the tables and their keys, checked before any work
    spark = spark or session_for(config)
    check_backend(spark, config.backend, config.num_processes, config.use_gpu)
    started = time.monotonic()
    tracking_uri = start_training(config, schema)
    shape: ShapeTraining = (EventLogTraining(config, schema, spark) if schema.shape == "event_log"
                            else FlatTraining(config, schema, spark))
    workspace = Workspace(config)
    succeeded = False
    try:
        shape.prepare(workspace)
        with tracking.training_run(config.experiment, shape.params()) as run:
            trained = launch(spark, shape.rank_job(workspace, started), config.num_processes, on_epoch=shape.on_epoch)
            privacy = None
            meta = {"seed": config.seed, "mlflow_run_id": run.info.run_id, "backend": config.backend,
                    "num_processes": config.num_processes, "ranks": trained.ranks, **shape.meta(trained)}
            if shape.release:
                privacy = dp.privacy_report(shape.release, [trained.private_steps[p] for p in shape.phase_names])
                meta["privacy"] = privacy
                logger.info(dp.format_privacy(privacy))
            generator = shape.build(trained, meta)
            staged = ownership.staging_for(config.model_dir)  # beside the model dir, swapped in once tracked
            try:
                generator.save(staged)
                metrics = shape.metrics(trained)
                if privacy:
                    metrics |= dp.privacy_metrics(privacy, list(shape.metric_prefixes))
                quality = shape.evaluate(generator, trained.validation_rows, privacy)
                metrics["total_seconds"] = time.monotonic() - started
                tracking.log_metrics(metrics)
                model_uri = tracking.log_generator(staged, shape.preview(generator), config.registered_model,
                                                   config.alias)
                ownership.replace_dir(staged, config.model_dir)  # only now is a previous generator replaced
            finally:  # a generator not tracked is not delivered: the model dir keeps what it held
                ownership.discard(staged)
        succeeded = True
    finally:
        workspace.close(succeeded)
    return TrainOutcome(config.model_dir, run.info.run_id, model_uri, tracking_uri, metrics, quality)
