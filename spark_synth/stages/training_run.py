"""What every training shares around its per-shape work: the contract a data shape fulfils, the checks that
need no data, the outcome, model sizing. Each shape's training imports it; it imports none of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from spark_synth import ownership, tracking
from spark_synth.config import TrainConfig
from spark_synth.errors import SynthError
from spark_synth.generators.kinds import Generator
from spark_synth.privacy.plan import StatsRelease
from spark_synth.spark.launch import Trained
from spark_synth.spark.workspace import Workspace
from spark_synth.stages.evaluate import check_report_path
from spark_synth.tables import Schema
from spark_synth.training.loop import TrainResult, TrainSettings
from spark_synth.training.rank import RankJob

SHARDS_PER_PROCESS = 4  # encoded files per training process: ranks get near-equal rows from whole files
PRIVATE_DROPOUT = 0.1  # DP noise already regularises; heavy dropout only slows learning under it


@dataclass
class TrainOutcome:
    model_dir: str
    run_id: str
    model_uri: str
    tracking_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)


class ShapeTraining(Protocol):
    """What one data shape adds to a training; :func:`spark_synth.stages.train.train` runs the rest (workspace,
    rank launch, DP accounting, save, evaluation, tracking) the same way for every shape. Read the sources and
    check what needs no training in the constructor; ``prepare`` sets the attributes below."""

    release: StatsRelease | None  # the DP statistics release, when training under a budget
    phase_names: tuple[str, ...]  # the models trained one after another, in order
    metric_prefixes: tuple[str, ...]  # each phase's prefix of its DP metrics

    def prepare(self, workspace: Workspace) -> None:
        """Read, analyze (protected or DP), split and encode to shards in the workspace; size the models."""

    def params(self) -> dict[str, Any]:
        """The MLflow params: settings and sizes (under DP no exact count)."""

    def rank_job(self, workspace: Workspace, started: float) -> RankJob: ...

    def on_epoch(self, phase: str) -> Callable[[int, dict[str, float]], None]:
        """The per-epoch callback of a phase (MLflow metrics)."""

    def build(self, trained: Trained, meta: dict[str, Any]) -> Generator:
        """The generator from the trained weights; codes the statistics did not publish are never generated."""

    def meta(self, trained: Trained) -> dict[str, Any]:
        """The shape's training results for the generator's meta.json."""

    def metrics(self, trained: Trained) -> dict[str, float]: ...

    def evaluate(self, generator: Generator, n_validation: int, privacy: dict | None) -> dict[str, float]:
        """The after-training evaluation on fresh synthetic data (or nothing, when switched off)."""

    def preview(self, generator: Generator) -> pd.DataFrame:
        """A few synthetic rows: the MLflow model's input example and signature."""


def train_settings(config: TrainConfig, minutes: float) -> TrainSettings:
    return TrainSettings(max_minutes=minutes, max_epochs=config.max_epochs, batch_size=config.batch_size,
                         learning_rate=config.learning_rate, patience=config.patience, seed=config.seed,
                         progress=config.progress)


def schema_params(schema: Schema) -> dict[str, str]:
    """The schema for MLflow params: tables, sources (their paths or names, never content), keys and settings."""
    tables = [{"name": t.name, "source": t.source_name, "primary_key": t.primary_key,
               "foreign_keys": [k.model_dump() for k in t.foreign_keys], "order_by": t.order_by,
               "columns": {c: s.model_dump() for c, s in t.columns.items()}} for t in schema.tables]
    return {"tables": json.dumps(tables, sort_keys=True),
            "columns": json.dumps({c: s.model_dump() for c, s in schema.shared_columns.items()}, sort_keys=True)}


def result_meta(result: TrainResult) -> dict[str, Any]:
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "stopped_by": result.stopped_by, "train_seconds": round(result.seconds, 1), "resumed_at": result.resumed_at}


def start_training(config: TrainConfig, schema: Schema) -> str:
    """Checks that need no data (model dir, report path, MLflow experiment and name), before any work; the
    tracking URI."""
    check_model_dir(config, schema)
    if config.report:
        check_report_path(config.report)
    tracking_uri = tracking.configure(config.tracking_uri, config.registry_uri)
    tracking.check_experiment(config.experiment)
    tracking.check_model_name(config.registered_model)
    return tracking_uri


def check_target(config: TrainConfig, columns: list[str], where: str) -> None:
    """The utility test's target must be a modelled column: refused before training, not after it."""
    if config.target is not None and config.target not in columns:
        raise SynthError(f"--target {config.target!r} is not among {where} {columns}.",
                         "Pass one of them (for an event log: a subject column), or leave --target out.")


def check_model_dir(config: TrainConfig, schema: Schema) -> None:
    """The model dir is replaced whole on success and the checkpoint dir removed: refuse either being the other,
    an input or inside one another, a work dir inside any of them, and a model dir holding anything but a
    previous generator (see spark_synth.ownership)."""
    inputs = [(f"the input table '{t.name}'", t.source) for t in schema.tables
              if config.format != "table" and not ownership.maybe_table_name(t.source)]
    written = [("--model-dir", config.model_dir), ("--checkpoint-dir", config.checkpoint_dir)]
    ownership.check_apart(written, inputs, "Choose a --model-dir and a --checkpoint-dir apart from each other and "
                                           "from the input data (neither the same place nor one inside another).")
    if config.checkpoint_dir is None:  # only then is a fresh directory made (and removed) inside the work dir
        ownership.check_not_within("work_dir", config.work_dir, [*written, *inputs],
                                   "Choose a work_dir outside the --model-dir and the input data.")
    ownership.check_replaceable(config.model_dir)


def auto_hidden(n_rows: int) -> int:
    """Model width sized to the data: small tables get small models (less to memorize)."""
    return 64 if n_rows < 2_000 else 128 if n_rows < 20_000 else 256
