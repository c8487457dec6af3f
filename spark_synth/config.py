"""Typed job configuration, from YAML and/or command-line flags. Errors name the offending field."""

from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spark_synth.errors import SynthError

Encoding = Literal["auto", "categorical", "numeric", "digits", "binned", "datetime", "key"]


class ColumnSettings(BaseModel):
    """Per-column overrides: force an encoding, or leave the column out of the model and output."""

    model_config = ConfigDict(extra="forbid")
    encoding: Encoding = "auto"
    exclude: bool = False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


class TrainConfig(_Strict):
    data: Any = Field(None, description="path, Spark table name, or a Spark DataFrame (Python API)")
    # an event log instead of a flat table: a subject table and its events, linked by key
    subjects: Any = Field(None, description="subject table: path, table name or DataFrame")
    subject_key: str | None = None
    events: Any = Field(None, description="event table: path, table name or DataFrame")
    foreign_key: str | None = None
    order_by: str | None = None
    max_sequence_length: int | None = Field(None, gt=0, description="cap below the protected maximum length")
    window: int = Field(64, gt=1, description="events per training window of long sequences")
    format: Literal["parquet", "csv", "delta", "table"] | None = None
    model_dir: str
    max_minutes: float = Field(10.0, gt=0)
    max_epochs: int = Field(500, gt=0)
    seed: int = 0
    registered_model: str | None = Field(None, alias="register", description="MLflow registry name")
    columns: dict[str, ColumnSettings] = Field(default_factory=dict)
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    batch_size: int | None = Field(None, gt=0)
    learning_rate: float | None = Field(None, gt=0)
    hidden: int | None = Field(None, gt=0)
    dropout: float = Field(0.3, ge=0, lt=1)
    patience: int = Field(10, gt=0)
    experiment: str = "spark-synth"
    tracking_uri: str | None = None
    work_dir: str | None = None
    quality_rows: int = Field(10_000, ge=0, description="synthetic rows (subjects) evaluated after training; 0 skips")
    target: str | None = Field(None, description="column predicted in the after-training utility test (TSTR)")
    report: str | None = Field(None, description="also write the after-training evaluation report to this HTML file")
    master: str | None = None
    progress: bool = True
    # differential privacy: one (epsilon, delta) budget for statistics and weights; None trains without DP
    max_epsilon: float | None = Field(None, description="total privacy budget; enables DP")
    delta: float | None = Field(None, description="DP delta; default min(1e-5, 0.1 / number of rows or subjects)")
    # data-parallel training: the same model and DP guarantee on several processes (Spark executors, GPUs)
    backend: Literal["local", "torch-distributor", "horovod"] = "local"
    num_processes: int = Field(1, gt=0, description="training processes (with use_gpu: one per GPU)")
    use_gpu: bool = False
    mixed_precision: bool = Field(True, description="bf16 autocast on CUDA (training without DP)")
    checkpoint_dir: str | None = Field(None, description="keep checkpoints here; a rerun after a failure resumes")

    @model_validator(mode="after")
    def _privacy_budget(self) -> TrainConfig:
        if self.max_epsilon is not None and not self.max_epsilon > 0:
            raise ValueError(f"max_epsilon must be a positive number (got {self.max_epsilon}); smaller is more "
                             "private, 1 to 10 is usual")
        if self.delta is not None and self.max_epsilon is None:
            raise ValueError("delta is a differential-privacy setting: give max_epsilon too")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ValueError(f"delta must lie strictly between 0 and 1 (got {self.delta}), e.g. 1e-5")
        return self

    @property
    def private(self) -> bool:
        return self.max_epsilon is not None

    @model_validator(mode="after")
    def _one_input(self) -> TrainConfig:
        log_settings = {"subjects": self.subjects, "subject_key": self.subject_key, "events": self.events,
                        "foreign_key": self.foreign_key}
        if self.data is not None and any(v is not None for v in (*log_settings.values(), self.order_by)):
            raise ValueError("give either --data (a flat table) or --subjects/--events (an event log), not both")
        if self.data is None and all(v is None for v in log_settings.values()):
            raise ValueError("no input: give --data PATH, or --subjects PATH --subject-key COL --events PATH "
                             "--foreign-key COL (or the same settings in the config file)")
        missing = [k for k, v in log_settings.items() if v is None]
        if self.data is None and missing:
            raise ValueError(f"an event log also needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
        return self

    @property
    def is_log(self) -> bool:
        return self.data is None


class SamplingSettings(_Strict):
    """Controlled generation: sharper or flatter draws, rebalancing, statistical parity (flat tables)."""

    temperature: float = Field(1.0, gt=0, description="below 1: safer, likelier values; above 1: more diverse")
    top_p: float = Field(1.0, gt=0, le=1, description="draw each value from the likeliest codes holding this mass")
    rebalance: str | None = Field(None, description="categorical column generated with the target shares")
    shares: dict[str, float] = Field(default_factory=dict, description="value -> share of the rebalanced column")
    fair_target: str | None = Field(None, description="column made independent of fair_sensitive (statistical parity)")
    fair_sensitive: str | None = None

    def controls(self):
        from spark_synth.controls import Controls

        controls = Controls(self.temperature, self.top_p, self.rebalance, dict(self.shares), self.fair_target,
                            self.fair_sensitive)
        controls.check()
        return controls


class GenerateConfig(SamplingSettings):
    model: str
    rows: int | None = Field(None, gt=0, description="rows of a flat table")
    subjects: int | None = Field(None, gt=0, description="subjects of an event log (each with its events)")
    seed_data: Any = Field(None, description="seed table (path, table name or DataFrame): one row per seed row, "
                                             "its columns kept and the others generated given them")
    seed_events: Any = Field(None, description="an event-log seed's first events (path, table name or DataFrame), "
                                               "linked to the seed rows by the subject key")
    output: str
    format: Literal["parquet", "csv", "delta"] = "parquet"
    mode: Literal["error", "overwrite", "append"] = "error"
    seed: int = 0
    partitions: int | None = Field(None, gt=0)
    chunk_size: int | None = Field(None, gt=0, le=10_000_000,
                                   description="rows (flat) or subjects (event log) per chunk; default 100,000 / 10,240")
    tracking_uri: str | None = None
    master: str | None = None

    @model_validator(mode="after")
    def _one_size(self) -> GenerateConfig:
        if sum(v is not None for v in (self.rows, self.subjects, self.seed_data)) != 1:
            raise ValueError("give exactly one of --rows (flat generator), --subjects (event-log generator) and "
                             "--seed-data (one row per seed row)")
        if self.seed_events is not None and self.seed_data is None:
            raise ValueError("--seed-events needs --seed-data: the seed subjects (with their key) the events begin")
        return self


class ImputeConfig(SamplingSettings):
    """Fill the nulls of chosen columns of a real table with a generator's samples."""

    model: str
    data: Any = Field(..., description="the table to complete: path, table name or DataFrame")
    columns: list[str] = Field(..., min_length=1, description="columns whose nulls are filled")
    output: str
    data_format: Literal["parquet", "csv", "delta", "table"] | None = None
    format: Literal["parquet", "csv", "delta"] = "parquet"
    mode: Literal["error", "overwrite", "append"] = "error"
    seed: int = 0
    tracking_uri: str | None = None
    master: str | None = None


class EvaluateConfig(_Strict):
    """What to compare: a flat table (synthetic, training, holdout) or the two-table form of an event log."""

    synthetic: Any = None
    training: Any = None
    holdout: Any = None
    synthetic_subjects: Any = None
    synthetic_events: Any = None
    training_subjects: Any = None
    training_events: Any = None
    holdout_subjects: Any = None
    holdout_events: Any = None
    subject_key: str | None = None
    foreign_key: str | None = None
    order_by: str | None = None
    format: Literal["parquet", "csv", "delta", "table"] | None = None
    target: str | None = Field(None, description="column predicted in the TSTR utility test (subject table for logs)")
    report: str | None = Field(None, description="write the HTML report here")
    model: str | None = Field(None, description="the generator evaluated: adds its epsilon, logs into its MLflow run")
    experiment: str = "spark-synth"
    tracking_uri: str | None = None
    mlflow: bool = Field(True, description="log the figures and the report to MLflow")
    distance_rows: int = Field(20_000, ge=100, description="rows per side for DCR / NNDR")
    audit_rows: int = Field(5_000, ge=50, description="members (and as many non-members) in the membership audit")
    utility_rows: int = Field(50_000, ge=100, description="rows per model in the TSTR test")
    max_triples: int = Field(100, ge=0, description="column triples scored for trivariate accuracy")
    seed: int = 0
    master: str | None = None
    progress: bool = True

    @model_validator(mode="after")
    def _one_form(self) -> EvaluateConfig:
        flat = {"synthetic": self.synthetic, "training": self.training, "holdout": self.holdout}
        log = {"synthetic_subjects": self.synthetic_subjects, "synthetic_events": self.synthetic_events,
               "training_subjects": self.training_subjects, "training_events": self.training_events,
               "holdout_subjects": self.holdout_subjects, "holdout_events": self.holdout_events,
               "subject_key": self.subject_key, "foreign_key": self.foreign_key}
        given_flat = [k for k, v in flat.items() if v is not None]
        given_log = [k for k, v in log.items() if v is not None]
        if given_flat and given_log:
            raise ValueError("give either --synthetic/--training/--holdout (a flat table) or the "
                             "--*-subjects/--*-events form (an event log), not both")
        if not given_log and len(given_flat) < 3:
            missing = [k for k in flat if flat[k] is None]
            raise ValueError(f"missing {', '.join('--' + m for m in missing)} (or use the event-log form)")
        if given_log and len(given_log) < len(log):
            missing = [k for k in log if log[k] is None]
            raise ValueError(f"an event log also needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
        return self

    @property
    def is_log(self) -> bool:
        return self.synthetic is None


def load_config(cls: type[_Strict], path: str | None = None, **overrides: Any) -> Any:
    """Merge a YAML file with explicit overrides (flags win) and validate.

    A ``None`` override means "not given" and leaves the file's value alone.
    """
    values: dict[str, Any] = {}
    if path:
        if not os.path.isfile(path):
            raise SynthError(f"config file {path} does not exist.", "Check the --config path.")
        with open(path, encoding="utf-8") as handle:
            try:
                loaded = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                raise SynthError(f"config file {path} is not valid YAML: {exc}.", "Fix the YAML syntax.") from exc
        if not isinstance(loaded, dict):
            raise SynthError(f"config file {path} must hold a mapping of settings.", "See conf/ for examples.")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SynthError(_describe(exc, path), "Correct the setting (see conf/ for examples).") from exc


def _describe(exc: ValidationError, path: str | None) -> str:
    where = f" in {path}" if path else ""
    problems = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting '{field}'")
        elif error["type"] == "missing":
            problems.append(f"missing setting '{field}'")
        elif not error["loc"]:  # a rule across settings
            problems.append(str(error["msg"]).removeprefix("Value error, "))
        else:
            problems.append(f"setting '{field}': {error['msg']}")
    return f"invalid configuration{where}: " + "; ".join(problems) + "."
