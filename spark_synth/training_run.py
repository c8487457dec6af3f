"""What every training shares before and around its per-shape work: the checks that need no data, the
outcome, model sizing. Both the flat-table and the event-log training import it; it imports neither."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spark_synth import ownership, tracking
from spark_synth.config import TrainConfig
from spark_synth.errors import SynthError
from spark_synth.evaluation.stage import check_report_path

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


def start_training(config: TrainConfig) -> str:
    """Checks that need no data (model dir, report path, MLflow experiment and name), before any work; the
    tracking URI."""
    check_model_dir(config)
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


def check_model_dir(config: TrainConfig) -> None:
    """The model dir is replaced whole on success and the checkpoint dir removed: refuse either being the other,
    an input or inside one another, a work dir inside any of them, and a model dir holding anything but a
    previous generator (see spark_synth.ownership)."""
    inputs = [(f"the input --{name}", value) for name in ("data", "subjects", "events")
              if config.format != "table" and not ownership.maybe_table_name(value := getattr(config, name))]
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
