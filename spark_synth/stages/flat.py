"""Training on a flat table: read, plan, analyze (protected), split and encode to shards; one model over the rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth import tracking
from spark_synth.config import UNLOGGED_SETTINGS, TrainConfig
from spark_synth.encoding import TableCodec
from spark_synth.encoding.packing import Field
from spark_synth.encoding.stats import TableStats
from spark_synth.errors import SynthError
from spark_synth.evaluation.after_training import evaluate_after_training, should_evaluate
from spark_synth.generators.flat import FlatGenerator
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.privacy import plan as dp
from spark_synth.spark.analyze import analyze, validated_overview
from spark_synth.spark.encode import encode_to_shards, shard_layout
from spark_synth.spark.io import read_table
from spark_synth.spark.launch import Trained, threads_per_process
from spark_synth.spark.normalize import (
    normalize,
    private_text_date_formats,
    saved_text_formats,
    text_date_candidates,
)
from spark_synth.spark.private_analyze import private_statistics
from spark_synth.spark.sample_job import generate_dataframe
from spark_synth.spark.schema import plan_columns, quoted
from spark_synth.spark.split import with_split
from spark_synth.spark.workspace import Workspace
from spark_synth.stages.training_run import (
    PRIVATE_DROPOUT,
    SHARDS_PER_PROCESS,
    auto_hidden,
    check_target,
    result_meta,
    schema_params,
    train_settings,
)
from spark_synth.tables import Schema
from spark_synth.training.data import SPLIT_COLUMN, assign_shards, shard_files, split_counts
from spark_synth.training.rank import Phase, RankJob


class FlatTraining:
    """A flat table's part of a training (see :class:`ShapeTraining`): one model over the table's rows."""

    phase_names = ("model",)
    metric_prefixes = ("",)  # the DP metrics of the one phase are unprefixed

    def __init__(self, config: TrainConfig, schema: Schema, spark: SparkSession) -> None:
        self.config, self.schema, self.spark = config, schema, spark

    def prepare(self, workspace: Workspace) -> None:
        config = self.config
        self.prepared = prepared = prepare_flat(config, self.schema, self.spark, workspace)
        codec, self.release = prepared.codec, prepared.release
        # under DP, sizes come from the noisy row count and every code the statistics released stays allowed
        self.n_rows = prepared.stats.n_rows if self.release else prepared.train_rows
        self.model_config = ModelConfig(cardinalities=codec.cardinalities, column_slices=codec.column_slices,
                                        hidden=config.hidden or auto_hidden(self.n_rows),
                                        dropout=config.dropout if not self.release else
                                        min(config.dropout, PRIVATE_DROPOUT))

    def params(self) -> dict[str, Any]:
        config, prepared, codec = self.config, self.prepared, self.prepared.codec
        params = config.model_dump(exclude={"data", "tables", "columns", "checkpoint_dir", "work_dir",
                                            *UNLOGGED_SETTINGS})
        params |= {**schema_params(self.schema), "data": self.schema.flat.source_name,
                   "n_columns": len(codec.modelled), "n_sub_columns": len(codec.sub_columns),
                   "hidden": self.model_config.hidden}
        if self.release:  # exact counts are data: under DP only the noisy row count is logged
            return params | {"rows_noisy": self.n_rows}
        return params | {"train_rows": prepared.train_rows, "validation_rows": prepared.validation_rows}

    def rank_job(self, workspace: Workspace, started: float) -> RankJob:
        config = self.config
        planned = dp.training_samples(self.n_rows, config.validation_fraction) if self.release else None
        phase = Phase("model", self.model_config.to_dict(), None, config.batch_size, config.max_epochs,
                      planned_samples=planned)
        return RankJob(config.backend, assign_shards(self.prepared.files, config.num_processes),
                       {"rows": self.prepared.fields}, [phase], train_settings(config, config.max_minutes),
                       workspace.rank_output(), workspace.fingerprint, workspace.checkpoints, config.use_gpu,
                       config.mixed_precision, threads_per_process(self.spark, config.backend), self.release)

    def on_epoch(self, phase: str):
        return tracking.log_epoch

    def build(self, trained: Trained, meta: dict[str, Any]) -> FlatGenerator:
        model = FlatARGN(self.model_config)
        model.load_state_dict(trained.states["model"])
        model.forbid_codes(self.prepared.codec.unreleased_codes())  # what the statistics did not publish
        return FlatGenerator(self.prepared.stats, self.model_config, model.state_dict(), meta)

    def meta(self, trained: Trained) -> dict[str, Any]:
        return {**result_meta(trained.results["model"]),
                "samples_per_second": round(trained.samples_per_second["model"], 1)}

    def metrics(self, trained: Trained) -> dict[str, float]:
        result = trained.results["model"]
        metrics = {"epochs": float(result.epochs), "train_seconds": result.seconds,
                   "samples_per_second": trained.samples_per_second["model"]}
        if not self.release:
            metrics |= {"best_epoch": float(result.best_epoch), "best_val_loss": result.best_val_loss}
        return metrics

    def evaluate(self, generator: FlatGenerator, n_validation: int, privacy: dict | None) -> dict[str, float]:
        """The evaluation stage on fresh synthetic rows, as many as the validation split (up to quality_rows)."""
        config = self.config
        if not should_evaluate(config, n_validation):
            return {}
        columns = [c.name for c in generator.codec.modelled]
        synthetic = generate_dataframe(self.spark, generator, min(config.evaluation_rows, n_validation),
                                       seed=config.seed + 1).select(*map(quoted, columns)).cache()  # generated once
        try:
            frames = {"synthetic": synthetic, "training": self.prepared.training.select(*map(quoted, columns)),
                      "holdout": self.prepared.validation.select(*map(quoted, columns))}
            return evaluate_after_training(self.spark, config, frames, privacy)
        finally:
            synthetic.unpersist()

    def preview(self, generator: FlatGenerator) -> pd.DataFrame:
        return generator.sample(5, seed=self.config.seed)


@dataclass
class PreparedFlat:
    stats: TableStats
    codec: TableCodec
    training: DataFrame
    validation: DataFrame
    files: list[str]  # the encoded shards, split among the ranks
    fields: list[Field]  # where the codes lie in the shards
    train_rows: int
    validation_rows: int
    release: dp.StatsRelease | None = None  # the DP statistics release, when training under a budget


def prepare_flat(config: TrainConfig, schema: Schema, spark: SparkSession, workspace: Workspace) -> PreparedFlat:
    """Read, plan, analyze (protected stats), split and encode to shards in the workspace.

    A resumed training reuses the statistics it saved: under DP they are released once.
    """
    budget = dp.budget_for(config) if config.private else None  # checked before any work
    spec = schema.flat
    source = read_table(spark, spec.source, config.format)
    schema.check_columns({spec.name: source.columns})
    plans = plan_columns(source.schema, schema.settings_for(spec, source.columns))
    date_tests = len(text_date_candidates(plans))
    saved = workspace.saved_stats()
    stats = TableStats.from_json(saved) if saved is not None else None
    if stats is not None:  # a resumed training: the text-date decisions (under DP released once) as saved
        formats = saved_text_formats(stats.columns)
    elif budget:
        formats = private_text_date_formats(source, plans, dp.text_date_noise_std(date_tests))
    else:
        formats = None
    df, plans = normalize(source, plans, formats=formats)
    check_target(config, [p.name for p in plans], "the table's modelled columns")
    source_name = spec.source if isinstance(spec.source, str) else "the input DataFrame"
    release = dp.plan_statistics(budget, [plans], text_date_columns=date_tests) if budget else None
    if stats is None:
        if release:  # the exact row count goes into its noisy release, and nowhere else
            n_rows, _ = validated_overview(df, plans, source_name)
            stats = private_statistics(df, plans, release.noise_std, release.threshold,
                                       release.noisy_count(n_rows, "rows"))
        else:
            stats = analyze(df, plans, source_name)
        stats = stats.excluding([c for c in source.columns if c not in {p.name for p in plans}])
        workspace.save_stats(stats.to_json())
    codec = TableCodec(stats)
    if not codec.sub_columns:
        raise SynthError(f"every column of {source_name} looks like an identifier (unique per row), so there is "
                         "nothing to learn.", "Give the columns an explicit encoding (e.g. `encoding: categorical`) "
                         "or add attribute columns.")
    split = with_split(df, config.seed, config.validation_fraction)
    if workspace.has_encoded:
        fields = shard_layout(codec)
    else:  # several ranks need several shards each: spread the rows evenly first
        rows = split.repartition(SHARDS_PER_PROCESS * config.num_processes) if config.num_processes > 1 else split
        fields = encode_to_shards(rows, stats, workspace.encoded)
    files = shard_files(workspace.encoded)
    train_rows, validation_rows = split_counts(files)
    if train_rows == 0:
        raise SynthError("every row fell into the validation split; the table is too small to train on.",
                         "Provide more rows or lower validation_fraction.")
    validation = split.where(F.col(SPLIT_COLUMN)).drop(SPLIT_COLUMN)
    training = split.where(~F.col(SPLIT_COLUMN)).drop(SPLIT_COLUMN)
    return PreparedFlat(stats, codec, training, validation, files, fields, train_rows, validation_rows, release)
