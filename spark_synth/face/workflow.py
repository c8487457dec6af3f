"""`spark-synth pipeline`: train, evaluate behind a quality gate, promote, generate, as one job.

The config is a training config with two optional sections, ``evaluate:`` and ``generate:``, each
holding that command's settings (the model comes from the training). Both sections are validated
before training starts, so a typo fails in seconds, not after hours. A failed gate stops the job
with a non-zero exit: the generator is neither promoted nor used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spark_synth.config import (
    PIPELINE_SECTIONS,
    EvaluateConfig,
    GenerateConfig,
    TrainConfig,
    read_config,
    validated,
)
from spark_synth.errors import SynthError

SHARED = ("tracking_uri", "registry_uri", "master", "remote", "spark_conf")  # session settings the steps inherit


@dataclass
class Workflow:
    train: TrainConfig
    evaluate: EvaluateConfig | None  # its min_accuracy gates, its promote sets an alias
    generate: GenerateConfig | None


def load_workflow(path: str, settings: list[tuple[str, Any]] = (), **overrides: Any) -> Workflow:
    """The three steps' configs from one file; ``settings`` (``--set KEY=VALUE``, dotted keys reach into the
    sections, e.g. generate.rows) and flags override it."""
    values = read_config(path, overrides)
    for key, value in settings:
        *parents, leaf = key.replace("-", "_").split(".")
        if len(parents) > 1 or (parents and parents[0] not in PIPELINE_SECTIONS):
            raise SynthError(f"--set {key}: only training settings and {', '.join(PIPELINE_SECTIONS)}.SETTING "
                             "can be set.", "Write --set max_minutes=5 or --set generate.rows=1000.")
        target = values.setdefault(parents[0], {}) if parents else values
        if not isinstance(target, dict):
            raise SynthError(f"--set {key}: the `{parents[0]}:` section of {path} is not a mapping.",
                             "Fix the section in the config file.")
        target[leaf] = value
    train = validated(TrainConfig, {**{k: v for k, v in values.items() if k not in PIPELINE_SECTIONS},
                                    **{k: v for k, v in overrides.items() if v is not None}}, path)
    sections = {name: values.get(name) for name in PIPELINE_SECTIONS}
    for name, section in sections.items():
        if section is not None and not isinstance(section, dict):
            raise SynthError(f"the `{name}:` section of {path} must hold settings.", "See conf/census.yaml.")
    shared = {k: getattr(train, k) for k in SHARED}
    evaluate = None
    if sections["evaluate"] is not None:
        section = dict(sections["evaluate"])
        promote = section.get("promote")
        if promote and not train.registered_model:
            raise SynthError(f"the evaluate section promotes to alias '{promote}', but the generator is not "
                             "registered.", "Add `register: NAME` to the training settings.")
        section.setdefault("rows", 10_000)
        section.setdefault("target", train.target)
        tables = train.schema()
        inputs = {"training": tables.flat.source} if tables.shape == "flat" else {
            "training_subjects": tables.subjects.source, "training_events": tables.events.source,
            "subject_key": tables.link.subject_key, "foreign_key": tables.link.foreign_key,
            "order_by": tables.link.order_by}
        # the model is the version training registers (or its directory): known only after training
        model = f"models:/{train.registered_model}" if train.registered_model else train.model_dir
        evaluate = validated(EvaluateConfig, {**shared, "experiment": train.experiment, "format": train.format,
                                              "progress": train.progress, **inputs, **section, "model": model},
                             f"{path} (evaluate:)")
    generate = None
    if sections["generate"] is not None:
        generate = validated(GenerateConfig, {**shared, **sections["generate"], "model": train.model_dir},
                             f"{path} (generate:)")
    return Workflow(train, evaluate, generate)


def run_workflow(workflow: Workflow) -> dict[str, Any]:
    """Run the steps in order; returns what each produced (model URI, headline figures, rows written)."""
    from spark_synth.spark.session import session_for
    from spark_synth.stages.evaluate import run_evaluation
    from spark_synth.stages.generate import generate
    from spark_synth.stages.train import train

    spark = session_for(workflow.train)
    config = workflow.train
    if workflow.evaluate is not None:  # the evaluate step scores it: no second evaluation inside training
        config = config.model_copy(update={"quality_rows": 0})
    outcome = train(config, spark)
    done: dict[str, Any] = {"model_dir": outcome.model_dir, "model_uri": outcome.model_uri}
    if workflow.evaluate is not None:  # the version just trained: its figures join its run, gate and alias apply
        result = run_evaluation(workflow.evaluate.model_copy(update={"model": outcome.model_uri}), spark)
        done["headline"] = result.evaluation.headline
        if result.promoted:
            done["promoted"] = f"models:/{config.registered_model}@{workflow.evaluate.promote} -> version " \
                               f"{result.promoted}"
    if workflow.generate is not None:
        done["generated"] = generate(workflow.generate, spark)
        done["output"] = workflow.generate.output
    return done
