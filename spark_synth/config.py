"""Typed job configuration, from YAML and/or command-line flags. Errors name the offending field."""

from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    quality_rows: int = Field(10_000, ge=0, description="synthetic rows scored after training; 0 skips")
    master: str | None = None
    progress: bool = True

    @field_validator("data")
    @classmethod
    def _data_given(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("no input: give --data PATH (or `data:` in the config file)")
        return value


class GenerateConfig(_Strict):
    model: str
    rows: int = Field(gt=0)
    output: str
    format: Literal["parquet", "csv", "delta"] = "parquet"
    mode: Literal["error", "overwrite", "append"] = "error"
    seed: int = 0
    partitions: int | None = Field(None, gt=0)
    chunk_size: int = Field(100_000, gt=0, le=10_000_000)
    tracking_uri: str | None = None
    master: str | None = None


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
        else:
            problems.append(f"setting '{field}': {error['msg']}")
    return f"invalid configuration{where}: " + "; ".join(problems) + "."
