"""Typed job configuration, from YAML and/or command-line flags. Errors name the offending field."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spark_synth.errors import SynthError
from spark_synth.resources import DEFAULT_TASK_MEMORY_MB
from spark_synth.tables import ColumnSettings, ForeignKey, Schema, TableSpec, schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


# settings that may hold credentials (a token in a URI, a storage key in spark_conf): never logged
UNLOGGED_SETTINGS = {"tracking_uri", "registry_uri", "remote", "spark_conf"}
DEFAULT_QUALITY_ROWS = 10_000  # synthetic rows (subjects) of the after-training evaluation, without DP


class SessionSettings(_Strict):
    """Where the job runs and tracks: each also comes from the environment (MLFLOW_TRACKING_URI,
    MLFLOW_REGISTRY_URI, SPARK_MASTER, SPARK_REMOTE) and, in YAML, from ``${VAR}`` references."""

    tracking_uri: str | None = None
    registry_uri: str | None = Field(None, description="MLflow registry URI, e.g. databricks-uc")
    master: str | None = None
    remote: str | None = Field(None, description="Spark Connect URL (sc://host:port) instead of a local session")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Spark settings for a session started here")

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()} \
            if isinstance(value, dict) else value


class TrainConfig(SessionSettings):
    data: Any = Field(None, description="path, Spark table name, or a Spark DataFrame (Python API)")
    tables: list[TableSpec] | None = Field(None, description="a schema of tables with keys (instead of --data or "
                                                              "--subjects/--events)")
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
    alias: str | None = Field(None, description="registry alias set on the registered version, e.g. candidate")
    columns: dict[str, ColumnSettings] = Field(default_factory=dict)
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    batch_size: int | None = Field(None, gt=0)
    learning_rate: float | None = Field(None, gt=0)
    hidden: int | None = Field(None, gt=0)
    dropout: float = Field(0.3, ge=0, lt=1)
    patience: int = Field(10, gt=0)
    experiment: str = "spark-synth"
    work_dir: str | None = None
    quality_rows: int | None = Field(None, ge=0, description="synthetic rows (subjects) evaluated after training; "
                                     "0 skips; default 10,000, and 0 under DP (the report reads real data)")
    target: str | None = Field(None, description="column predicted in the after-training utility test (TSTR)")
    report: str | None = Field(None, description="also write the after-training evaluation report to this HTML file")
    progress: bool = True
    # differential privacy: one (epsilon, delta) budget for statistics and weights; None trains without DP
    max_epsilon: float | None = Field(None, description="total privacy budget; enables DP")
    delta: float | None = Field(None, description="DP delta; default 1e-6 (a constant: a default from the number "
                                "of rows would publish it)")
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
        if self.alias is not None and self.registered_model is None:
            raise ValueError(f"alias '{self.alias}' is set on a registered version: give register NAME too")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ValueError(f"delta must lie strictly between 0 and 1 (got {self.delta}), e.g. 1e-5")
        return self

    @property
    def private(self) -> bool:
        return self.max_epsilon is not None

    @property
    def evaluation_rows(self) -> int:
        """Synthetic rows (subjects) of the after-training evaluation. Off by default under DP: it compares with
        real rows and logs what it finds, none of which the budget covers."""
        if self.quality_rows is not None:
            return self.quality_rows
        return 0 if self.private else DEFAULT_QUALITY_ROWS

    @model_validator(mode="after")
    def _one_input(self) -> TrainConfig:
        log_settings = {"subjects": self.subjects, "subject_key": self.subject_key, "events": self.events,
                        "foreign_key": self.foreign_key}
        if self.tables is not None:
            if self.data is not None or any(v is not None for v in (*log_settings.values(), self.order_by)):
                raise ValueError("give either `tables:` (a schema) or --data / --subjects/--events, not both")
            return self
        if self.data is not None and any(v is not None for v in (*log_settings.values(), self.order_by)):
            raise ValueError("give either --data (a flat table) or --subjects/--events (an event log), not both")
        if self.data is None and all(v is None for v in log_settings.values()):
            raise ValueError("no input: give --data PATH, or --events PATH --foreign-key COL (with --subjects PATH "
                             "--subject-key COL where subjects have attributes), or the same settings in the config "
                             "file")
        if self.data is None and self.subjects is None and self.subject_key is None:
            self.subject_key = self.foreign_key  # the events alone: their subjects are the distinct keys
        missing = [k for k in ("subject_key", "events", "foreign_key") if getattr(self, k) is None]
        if self.data is None and missing:
            raise ValueError(f"an event log also needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
        return self

    def schema(self) -> Schema:
        """The input as a checked schema of tables: ``tables:`` as given, or the flags' one table (--data) or
        event log (--subjects/--events; without --subjects, the subjects are derived from the events' keys)."""
        if self.tables is not None:
            return schema(self.tables, self.columns)
        if self.data is not None:
            return schema([TableSpec(name="data", source=self.data)], self.columns)
        subjects = TableSpec(name="subjects", source=self.subjects, primary_key=self.subject_key)
        events = TableSpec(name="events", source=self.events, order_by=self.order_by,
                           foreign_keys=(ForeignKey(column=self.foreign_key, references="subjects"),))
        return schema([subjects, events], self.columns)

    @property
    def is_log(self) -> bool:
        return self.schema().shape == "event_log"


class SamplingSettings(_Strict):
    """Controlled generation: sharper or flatter draws, rebalancing, statistical parity (flat tables)."""

    temperature: float = Field(1.0, gt=0, description="below 1: safer, likelier values; above 1: more diverse")
    top_p: float = Field(1.0, gt=0, le=1, description="draw each value from the likeliest codes holding this mass")
    rebalance: str | None = Field(None, description="categorical column generated with the target shares")
    shares: dict[str, float] = Field(default_factory=dict, description="value -> share of the rebalanced column")
    fair_target: str | None = Field(None, description="column made independent of fair_sensitive (statistical parity)")
    fair_sensitive: str | None = None

    def controls(self):
        from spark_synth.generators.controls import Controls

        controls = Controls(self.temperature, self.top_p, self.rebalance, dict(self.shares), self.fair_target,
                            self.fair_sensitive)
        controls.check()
        return controls


class GenerateConfig(SamplingSettings, SessionSettings):
    model: str
    rows: int | None = Field(None, gt=0, description="rows of a flat table")
    subjects: int | None = Field(None, gt=0, description="subjects of an event log (each with its events)")
    seed_data: Any = Field(None, description="seed table (path, table name or DataFrame): one row per seed row, "
                                             "its columns kept and the others generated given them")
    seed_events: Any = Field(None, description="an event-log seed's first events (path, table name or DataFrame), "
                                               "linked to the seed rows by the subject key")
    output: str
    format: Literal["parquet", "csv", "delta", "table"] = Field(
        "parquet", description="table: a catalog table named by output (catalog.schema.table), Delta where available")
    mode: Literal["error", "overwrite", "append"] = "error"
    partition_by: list[str] | None = Field(None, description="output columns to partition the files by")
    seed: int = 0
    partitions: int | None = Field(None, gt=0)
    chunk_size: int | None = Field(None, gt=0, le=10_000_000,
                                   description="rows (flat) or subjects (event log) per chunk; default 100,000 / 10,240 "
                                               "on the CPU, 1,048,576 / 65,536 on a GPU")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where each task samples: cuda takes the task's GPU "
                                                              "(other, equally distributed rows than the CPU's)")
    max_task_memory_mb: int = Field(DEFAULT_TASK_MEMORY_MB, gt=0,
                                    description="memory one generation task may use; a bigger chunk is refused")

    @model_validator(mode="after")
    def _one_size(self) -> GenerateConfig:
        if sum(v is not None for v in (self.rows, self.subjects, self.seed_data)) != 1:
            raise ValueError("give exactly one of --rows (flat generator), --subjects (event-log generator) and "
                             "--seed-data (one row per seed row)")
        if self.seed_events is not None and self.seed_data is None:
            raise ValueError("--seed-events needs --seed-data: the seed subjects (with their key) the events begin")
        return self


class ImputeConfig(SamplingSettings, SessionSettings):
    """Fill the nulls of chosen columns of a real table with a generator's samples."""

    model: str
    data: Any = Field(..., description="the table to complete: path, table name or DataFrame")
    columns: list[str] = Field(..., min_length=1, description="columns whose nulls are filled")
    output: str
    data_format: Literal["parquet", "csv", "delta", "table"] | None = None
    format: Literal["parquet", "csv", "delta", "table"] = Field(
        "parquet", description="table: a catalog table named by output (catalog.schema.table), Delta where available")
    mode: Literal["error", "overwrite", "append"] = "error"
    partition_by: list[str] | None = Field(None, description="output columns to partition the files by")
    seed: int = 0


class EvaluateConfig(SessionSettings):
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
    rows: int | None = Field(None, gt=0, description="generate this many rows (subjects) from model as the synthetic data")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="quality gate: fail below this overall accuracy")
    promote: str | None = Field(None, description="registry alias set on the model when it passes the gate")
    experiment: str = "spark-synth"
    mlflow: bool = Field(True, description="log the figures and the report to MLflow")
    distance_rows: int = Field(20_000, ge=100, description="rows per side for DCR / NNDR")
    audit_rows: int = Field(5_000, ge=50, description="members (and as many non-members) in the membership audit")
    utility_rows: int = Field(50_000, ge=100, description="rows per model in the TSTR test")
    max_triples: int = Field(100, ge=0, description="column triples scored for trivariate accuracy")
    seed: int = 0
    progress: bool = True

    @model_validator(mode="after")
    def _one_form(self) -> EvaluateConfig:
        flat = {"synthetic": self.synthetic, "training": self.training, "holdout": self.holdout}
        log = {"synthetic_subjects": self.synthetic_subjects, "synthetic_events": self.synthetic_events,
               "training_subjects": self.training_subjects, "training_events": self.training_events,
               "holdout_subjects": self.holdout_subjects, "holdout_events": self.holdout_events,
               "subject_key": self.subject_key, "foreign_key": self.foreign_key}
        if self.rows is not None and self.model is None:
            raise ValueError("--rows generates the synthetic data from a generator: give --model too")
        if self.promote is not None and not str(self.model or "").startswith("models:/"):
            raise ValueError("--promote sets an alias on a registered model: give --model models:/NAME@ALIAS "
                             "(or models:/NAME/VERSION)")
        log_form = any(v is not None for v in log.values())
        if log_form and any(v is not None for v in flat.values()):
            raise ValueError("give either --synthetic/--training/--holdout (a flat table) or the "
                             "--*-subjects/--*-events form (an event log), not both")
        generated = self.rows is not None  # the synthetic side comes from --model
        if not log_form:
            missing = [k for k, v in flat.items() if v is None and not (generated and k == "synthetic")]
            if missing:
                raise ValueError(f"missing {', '.join('--' + m for m in missing)} (or use the event-log form)")
        else:
            subject_tables = [k for k in log if k.endswith("_subjects") and not (generated and k.startswith("synthetic_"))]
            if all(log[k] is None for k in subject_tables):  # the events alone: subjects are their distinct keys
                self.subject_key = self.subject_key or self.foreign_key
                log = {k: v for k, v in log.items() if k not in subject_tables} | {"subject_key": self.subject_key}
            missing = [k for k, v in log.items() if v is None and not (generated and k.startswith("synthetic_"))]
            if missing:
                raise ValueError(f"an event log also needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
        return self

    @property
    def is_log(self) -> bool:
        return self.training is None


PIPELINE_SECTIONS = ("evaluate", "generate")  # a training config's sections read by `spark-synth pipeline`
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(cls: type[_Strict], path: str | None = None, sections: tuple[str, ...] = (), **overrides: Any) -> Any:
    """Merge a YAML file with explicit overrides (flags win) and validate.

    A ``None`` override means "not given" and leaves the file's value alone; ``sections`` are
    sub-mappings of the file that belong to other steps and are left out here.
    """
    values = {k: v for k, v in read_config(path, overrides).items() if k not in sections} if path else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validated(cls, values, path)


def validated(cls: type[_Strict], values: dict[str, Any], where: str | None) -> Any:
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SynthError(_describe(exc, where), "Correct the setting (see conf/ for examples).") from exc


def read_config(path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A YAML config from a local path (Databricks' /Volumes, /Workspace and /dbfs included) or from any
    URI Spark can read (dbfs:/, s3a://, abfss://, gs://, hdfs://), with ``${VAR}`` / ``${VAR:-default}``
    in its values taken from the environment."""
    text = _config_text(path, overrides or {})
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SynthError(f"config file {path} is not valid YAML: {exc}.", "Fix the YAML syntax.") from exc
    if not isinstance(loaded, dict):
        raise SynthError(f"config file {path} must hold a mapping of settings.", "See conf/ for examples.")
    return {k.replace("-", "_"): _expand(v, path) for k, v in loaded.items()}


def _config_text(path: str, overrides: dict[str, Any]) -> str:
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        raise SynthError(f"config file {path} does not exist.", "Check the --config path.")
    from spark_synth.spark.session import get_spark

    spark = get_spark(overrides.get("master"), overrides.get("remote"))
    try:
        rows = spark.read.text(path, wholetext=True).collect()
    except Exception as exc:  # noqa: BLE001 - Hadoop filesystems raise many types; the user needs the path
        raise SynthError(f"config file {path} could not be read: {str(exc).strip().splitlines()[0][:200]}",
                         "Check the --config URI and that this cluster can read it.") from exc
    if not rows:
        raise SynthError(f"config file {path} does not exist.", "Check the --config path.")
    return rows[0][0]


def _expand(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise SynthError(f"config file {path} refers to ${{{name}}}, which is not set in the environment.",
                         f"Set {name}, or give a default: ${{{name}:-value}}.")

    return _ENV_REFERENCE.sub(substitute, value)


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
