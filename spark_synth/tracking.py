"""MLflow: one run per training, the generator logged as files plus a pyfunc, optional registry."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd

from spark_synth.errors import SynthError
from spark_synth.secrets import redact

if TYPE_CHECKING:
    from spark_synth.generators.kinds import Generator

GENERATOR_ARTIFACT = "generator"


def configure(tracking_uri: str | None, registry_uri: str | None = None) -> str:
    """Use the given URI, else MLFLOW_TRACKING_URI, else the embedded sqlite store in the working dir; the
    registry is ``registry_uri``, else MLFLOW_REGISTRY_URI, else the tracking store."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep job logs readable
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{os.path.abspath('mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    if registry_uri or os.environ.get("MLFLOW_REGISTRY_URI"):
        mlflow.set_registry_uri(registry_uri or os.environ["MLFLOW_REGISTRY_URI"])
    return uri


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Config as MLflow params: nested keys joined with dots, values as short strings."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif value is not None:
            out[name] = redact(str(value))[:500]
    return out


def check_experiment(experiment: str) -> None:
    """Fail before any work if the experiment cannot take runs; create it with artifacts beside a sqlite store.

    MLflow's default artifact root is ``./mlruns`` of whatever directory the job runs in; keeping
    artifacts next to ``mlflow.db`` keeps one store in one place.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            uri = mlflow.get_tracking_uri()
            location = None
            if uri.startswith("sqlite:///"):
                location = os.path.join(os.path.dirname(uri[len("sqlite:///"):]) or ".", "mlartifacts")
            mlflow.create_experiment(experiment, artifact_location=location)
        elif found.lifecycle_stage == "deleted":
            raise SynthError(f"MLflow experiment '{experiment}' is deleted.",
                             "Restore it (mlflow experiments restore) or pass another --experiment.")
    except MlflowException as exc:
        raise SynthError(f"MLflow cannot use experiment '{experiment}': {exc.message[:300]}",
                         "Check --tracking-uri / MLFLOW_TRACKING_URI and the experiment name.") from exc


def check_model_name(name: str | None) -> None:
    """Registry names may not contain '/' or ':'; say so before training, not after."""
    if name is not None and (not name.strip() or any(ch in name for ch in "/:")):
        raise SynthError(f"'{name}' is not a valid MLflow registered model name (no '/' or ':', not empty).",
                         "Pass another --register name, e.g. census-generator.")


@contextmanager
def training_run(experiment: str, params: dict[str, Any]) -> Iterator[Any]:
    """An MLflow run that ends FAILED if the body raises."""
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params(flatten(params))
        yield run


def log_epoch(epoch: int, record: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)


def log_metrics(metrics: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics(metrics)


def sampling_params():
    """The pyfunc's sampling controls, passed as MLflow params."""
    from mlflow.types import ParamSchema, ParamSpec

    return ParamSchema([ParamSpec("temperature", "double", 1.0), ParamSpec("top_p", "double", 1.0),
                        ParamSpec("rebalance", "string", ""), ParamSpec("shares", "string", ""),
                        ParamSpec("fair_target", "string", ""), ParamSpec("fair_sensitive", "string", ""),
                        ParamSpec("seed", "long", 0)])


def log_generator(model_dir: str, sample: pd.DataFrame, register: str | None, alias: str | None = None) -> str:
    """Log the generator files and a pyfunc over them; register under ``register`` if given (and point
    ``alias`` at the new version).

    Returns the model URI (``models:/NAME/VERSION`` when registered, else ``runs:/...``).
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, DataType, Schema

    import spark_synth

    mlflow.log_artifacts(model_dir, artifact_path=GENERATOR_ARTIFACT)
    code_file = os.path.join(os.path.dirname(spark_synth.__file__), "generators", "mlflow_model.py")
    with warnings.catch_warnings():  # MLflow's generic hints about int columns and input examples
        warnings.simplefilter("ignore", UserWarning)
        output = infer_signature(sample).inputs  # the generated columns and their types
        # a request: rows (and seed), or seed rows holding some of the generated columns (for an event log:
        # subject columns, and the key with event.* columns for first events); controls as params
        # (integers as doubles: a request's missing values make pandas integers floats)
        seeds = [ColSpec(DataType.double if c.type in (DataType.long, DataType.integer) else c.type, c.name,
                         required=False) for c in output.inputs]
        request = Schema([ColSpec("long", "rows", required=False), ColSpec("long", "seed", required=False), *seeds])
        signature = ModelSignature(inputs=request, outputs=output, params=sampling_params())
        info = mlflow.pyfunc.log_model(
            name="pyfunc",
            python_model=code_file,
            artifacts={GENERATOR_ARTIFACT: model_dir},
            code_paths=[os.path.dirname(spark_synth.__file__)],
            signature=signature,
            pip_requirements=serving_requirements(),
            registered_model_name=register,
        )
    if register and info.registered_model_version is not None:
        uri = f"models:/{register}/{info.registered_model_version}"
        if alias:
            promote(uri, alias)
        return uri
    return info.model_uri


SERVING_PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "safetensors", "tqdm", "mlflow")  # what the pyfunc imports


def serving_requirements() -> list[str]:
    """The pyfunc's packages pinned to the versions it was trained with (a serving endpoint rebuilds them;
    torch without its local build tag, e.g. 2.13.0 for 2.13.0+cpu)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in SERVING_PACKAGES]


def promote(model_uri: str, alias: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> str:
    """Point registry alias ``alias`` at the version ``model_uri`` names (models:/NAME/VERSION or
    models:/NAME@ALIAS); returns that version."""
    import mlflow

    match = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@([\w-]+))", model_uri)
    if match is None:
        raise SynthError(f"cannot set alias '{alias}' on {model_uri}: it is not a registered model version.",
                         "Name the model as models:/NAME/VERSION or models:/NAME@ALIAS (register it with --register).")
    if tracking_uri or registry_uri:  # else the store the caller configured (configure() would reset it)
        configure(tracking_uri, registry_uri)
    client = mlflow.MlflowClient()
    name, version, current = match.groups()
    try:
        if version is None:
            version = client.get_model_version_by_alias(name, current).version
        client.set_registered_model_alias(name, alias, version)
    except mlflow.exceptions.MlflowException as exc:
        raise SynthError(f"could not set alias '{alias}' on {model_uri}: {str(exc)[:200]}",
                         "Check the model name, version or alias, and MLFLOW_REGISTRY_URI.") from exc
    return str(version)


def load_generator(model: str, tracking_uri: str | None = None) -> Generator:
    """A flat or event-log generator from a directory, or from a ``models:/...`` / ``runs:/...`` URI
    (downloaded, then removed)."""
    from spark_synth.generators.kinds import load_directory

    if not model.startswith(("models:/", "runs:/")):
        return load_directory(model)
    import mlflow

    configure(tracking_uri)
    target = tempfile.mkdtemp(prefix="spark-synth-model-")
    try:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=target)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing model
            raise SynthError(f"could not load {model} from MLflow ({type(exc).__name__}: {str(exc)[:200]}).",
                             "Check the model name/version and MLFLOW_TRACKING_URI (or --tracking-uri).") from exc
        for root, _dirs, files in os.walk(local):  # top-down: a log generator's root before its parts
            if "log.json" in files or ("stats.json" in files and "weights.safetensors" in files):
                return load_directory(root)
        raise SynthError(f"{model} holds no spark-synth generator files.", "Pass a model logged by `spark-synth train`.")
    finally:
        shutil.rmtree(target, ignore_errors=True)


def log_evaluation(headline: dict[str, float], html: str, summary: dict[str, Any], folder: str = "evaluation") -> None:
    """Into the active run: every headline figure as an ``eval_`` metric (a later evaluation adds a point
    to each metric's history), the report and the full figures under ``folder``."""
    import mlflow

    mlflow.log_metrics({f"eval_{k}": v for k, v in headline.items()})
    mlflow.log_text(html, f"{folder}/report.html")
    mlflow.log_dict(summary, f"{folder}/evaluation.json")
