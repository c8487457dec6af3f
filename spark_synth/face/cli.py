"""The `spark-synth` command: train, generate, impute, evaluate, demo. Bad input exits 2 with the problem and the fix."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spark_synth.errors import SynthError
from spark_synth.face.console import show_logs
from spark_synth.secrets import redact


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spark-synth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a generator on a table and track it in MLflow")
    train.add_argument("--config", help="YAML file with the same settings (flags win)")
    train.add_argument("--data", help="Parquet/CSV/Delta path or a Spark table name")
    train.add_argument("--subjects", help="event log: the subject table (path or table name); leave out to train "
                       "on the events alone (the subjects are then their distinct --foreign-key values)")
    train.add_argument("--subject-key", dest="subject_key",
                       help="event log: the subject table's key column (default without --subjects: the foreign key)")
    train.add_argument("--events", help="event log: the event table (path or table name)")
    train.add_argument("--foreign-key", dest="foreign_key", help="event log: the events' column holding the subject key")
    train.add_argument("--order-by", dest="order_by", help="event log: the column that orders a subject's events")
    train.add_argument("--max-sequence-length", dest="max_sequence_length", type=int,
                       help="event log: cap the events per subject (below the protected maximum)")
    train.add_argument("--format", choices=["parquet", "csv", "delta", "table"])
    train.add_argument("--model-dir", dest="model_dir", help="where the generator is saved")
    train.add_argument("--max-minutes", dest="max_minutes", type=float, help="training time budget")
    train.add_argument("--max-epochs", dest="max_epochs", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--max-epsilon", dest="max_epsilon", type=float,
                       help="train with differential privacy under this total epsilon (statistics + weights)")
    train.add_argument("--delta", type=float, help="DP delta (default 1e-6, a constant: one derived from the data would publish it)")
    train.add_argument("--target", help="column to predict in the after-training utility test (TSTR vs TRTR)")
    train.add_argument("--report", help="also write the after-training evaluation report to this HTML file")
    train.add_argument("--register", help="register the generator in the MLflow registry under this name")
    train.add_argument("--alias", help="registry alias for the registered version (e.g. candidate)")
    train.add_argument("--experiment", help="MLflow experiment name")
    _session_arguments(train)
    train.add_argument("--backend", choices=["local", "torch-distributor", "horovod"],
                       help="where training runs: in the driver (default), or data-parallel on Spark executors")
    train.add_argument("--num-processes", dest="num_processes", type=int,
                       help="data-parallel training processes (one per GPU with --use-gpu)")
    train.add_argument("--use-gpu", dest="use_gpu", action="store_const", const=True, help="train on CUDA devices")
    train.add_argument("--checkpoint-dir", dest="checkpoint_dir",
                       help="checkpoint here (storage every worker sees); rerunning after a failure resumes")
    train.add_argument("--no-progress", dest="progress", action="store_const", const=False)

    generate = commands.add_parser("generate", help="write synthetic rows with a trained generator")
    generate.add_argument("--config", help="YAML file with the same settings (flags win)")
    generate.add_argument("--model", help="generator directory or models:/NAME/VERSION")
    generate.add_argument("--rows", type=int, help="number of rows to generate (flat-table generator)")
    generate.add_argument("--subjects", type=int,
                          help="number of subjects to generate, each with its events (event-log generator)")
    _output_arguments(generate)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--partitions", type=int, help="Spark partitions (does not change the output)")
    generate.add_argument("--chunk-size", dest="chunk_size", type=int,
                          help="rows (flat) or subjects (event log) per chunk; default 100000 / 10240 on the CPU, "
                               "1048576 / 65536 with --device cuda")
    generate.add_argument("--device", choices=["cpu", "cuda"],
                          help="sample on the CPU (default) or on each task's GPU (Spark GPU scheduling assigns it)")
    generate.add_argument("--max-task-memory-mb", dest="max_task_memory_mb", type=int,
                          help="memory one generation task may use; a chunk that needs more is refused (default 4096)")
    generate.add_argument("--seed-data", dest="seed_data",
                          help="seed table (path or table name): one synthetic row per seed row, its columns kept")
    generate.add_argument("--seed-events", dest="seed_events",
                          help="event-log seed: each seed subject's first events (path or table name), linked by the "
                               "subject key, which --seed-data then holds")
    _sampling_arguments(generate)
    _session_arguments(generate)

    impute = commands.add_parser("impute", help="fill the nulls of chosen columns of a real table with model samples")
    impute.add_argument("--config", help="YAML file with the same settings (flags win)")
    impute.add_argument("--model", help="generator directory or models:/NAME/VERSION")
    impute.add_argument("--data", help="the table to complete (path or table name); it is only read")
    impute.add_argument("--columns", type=_names, help="comma-separated columns whose nulls are filled")
    impute.add_argument("--data-format", dest="data_format", choices=["parquet", "csv", "delta", "table"])
    _output_arguments(impute)
    impute.add_argument("--seed", type=int)
    _sampling_arguments(impute, controlled=False)
    _session_arguments(impute)

    evaluate = commands.add_parser("evaluate", help="score synthetic data against training and holdout data: "
                                     "accuracy, privacy, utility; HTML report and MLflow metrics")
    evaluate.add_argument("--config", help="YAML file with the same settings (flags win)")
    evaluate.add_argument("--synthetic", help="flat table: the synthetic data (path or table name)")
    evaluate.add_argument("--training", help="flat table: the data the generator was trained on")
    evaluate.add_argument("--holdout", help="flat table: real rows the generator never saw")
    for side in ("synthetic", "training", "holdout"):
        for part in ("subjects", "events"):
            evaluate.add_argument(f"--{side}-{part}", dest=f"{side}_{part}",
                                  help=f"event log: the {side} {part}" + (" (leave out all three for events alone)"
                                                                          if part == "subjects" else ""))
    evaluate.add_argument("--subject-key", dest="subject_key", help="event log: the subject table's key column")
    evaluate.add_argument("--foreign-key", dest="foreign_key", help="event log: the events' column with the subject key")
    evaluate.add_argument("--order-by", dest="order_by", help="event log: the column that orders a subject's events")
    evaluate.add_argument("--format", choices=["parquet", "csv", "delta", "table"])
    evaluate.add_argument("--target", help="column to predict in the train-synthetic-test-real utility test")
    evaluate.add_argument("--report", help="write the self-contained HTML report to this file")
    evaluate.add_argument("--model", help="the generator evaluated (directory or models:/...): adds its epsilon and "
                                          "logs into its MLflow run")
    evaluate.add_argument("--rows", type=int, help="generate this many rows (subjects) from --model as the "
                                                   "synthetic data, instead of --synthetic")
    evaluate.add_argument("--min-accuracy", dest="min_accuracy", type=float,
                          help="quality gate: exit non-zero when the overall accuracy is below this")
    evaluate.add_argument("--promote", help="registry alias set on --model (models:/...) when it passes the gate")
    evaluate.add_argument("--experiment", help="MLflow experiment (without --model)")
    evaluate.add_argument("--no-mlflow", dest="mlflow", action="store_const", const=False)
    evaluate.add_argument("--distance-rows", dest="distance_rows", type=int, help="rows per side for DCR (20000)")
    evaluate.add_argument("--audit-rows", dest="audit_rows", type=int,
                          help="members (and non-members) in the membership audit (5000)")
    evaluate.add_argument("--utility-rows", dest="utility_rows", type=int, help="rows per model in TSTR (50000)")
    evaluate.add_argument("--max-triples", dest="max_triples", type=int,
                          help="column triples scored for trivariate accuracy (100)")
    evaluate.add_argument("--seed", type=int)
    _session_arguments(evaluate)
    evaluate.add_argument("--no-progress", dest="progress", action="store_const", const=False)

    pipeline = commands.add_parser("pipeline", help="train, evaluate behind a quality gate, promote and generate, "
                                                    "from one config with evaluate: and generate: sections")
    pipeline.add_argument("--config", required=True, help="YAML training config (local path or any Spark URI)")
    pipeline.add_argument("--set", dest="settings", action="append", type=_setting, metavar="KEY=VALUE",
                          help="override a setting of the file (YAML value); generate.rows=1000 reaches a section")
    _session_arguments(pipeline)
    pipeline.add_argument("--no-progress", dest="progress", action="store_const", const=False)

    demo = commands.add_parser("demo", help="train on a bundled demo table, generate, print quality and MLflow")
    demo.add_argument("--output-dir", dest="output_dir", default="demo-output")
    demo.add_argument("--max-minutes", dest="max_minutes", type=float, default=1.5)
    demo.add_argument("--rows", type=int, default=100_000)
    demo.add_argument("--tracking-uri", dest="tracking_uri")
    return parser


def _session_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the command runs and tracks (each also read from the environment)."""
    parser.add_argument("--master", help="Spark master (default: the session's, SPARK_MASTER, else local[*])")
    parser.add_argument("--remote", help="Spark Connect server, sc://host:port (default: SPARK_REMOTE)")
    parser.add_argument("--spark-conf", dest="spark_conf", action="append", type=_key_value, metavar="KEY=VALUE",
                        help="a Spark setting for a session started here (repeatable)")
    parser.add_argument("--tracking-uri", dest="tracking_uri", help="MLflow tracking URI (default: "
                                                                    "MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--registry-uri", dest="registry_uri",
                        help="MLflow registry URI, e.g. databricks-uc (default: MLFLOW_REGISTRY_URI)")


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", help="output path, or with --format table a table name (catalog.schema.table)")
    parser.add_argument("--format", choices=["parquet", "csv", "delta", "table"])
    parser.add_argument("--mode", choices=["error", "overwrite", "append"])
    parser.add_argument("--partition-by", dest="partition_by", type=_names, help="comma-separated output columns")


def _names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _setting(text: str) -> tuple[str, object]:
    import yaml

    key, value = _key_value(text)
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        return key, value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _sampling_arguments(parser: argparse.ArgumentParser, controlled: bool = True) -> None:
    parser.add_argument("--temperature", type=float, help="1 = as learned; below 1 safer, above 1 more diverse")
    parser.add_argument("--top-p", dest="top_p", type=float, help="draw from the likeliest codes holding this mass")
    if not controlled:
        return
    parser.add_argument("--rebalance", help="categorical column generated with the shares given by --share")
    parser.add_argument("--share", dest="shares", action="append", type=_share, metavar="VALUE=SHARE",
                        help="target share of a value of the --rebalance column (repeat for every value)")
    parser.add_argument("--fair-target", dest="fair_target", help="column made independent of --fair-sensitive")
    parser.add_argument("--fair-sensitive", dest="fair_sensitive", help="sensitive column (statistical parity)")


def _share(text: str) -> tuple[str, float]:
    value, _, share = text.rpartition("=")
    try:
        return value, float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VALUE=SHARE such as '>50K=0.5', got {text!r}") from None


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    options = options_of(args)
    show_logs()  # the library logs; a command shows its notes and warnings
    try:
        if args.command == "train":
            return _train(args.config, options)
        if args.command == "generate":
            return _generate(args.config, options)
        if args.command == "evaluate":
            return _evaluate(args.config, options)
        if args.command == "impute":
            return _impute(args.config, options)
        if args.command == "pipeline":
            return _pipeline(args.config, options)
        from spark_synth.face.demo import run_demo

        run_demo(**options)
        return 0
    except SynthError as error:
        print(f"error: {redact(error.problem)}", file=sys.stderr)
        if error.fix:
            print(f"  fix: {redact(error.fix)}", file=sys.stderr)
        return error.exit_status


def options_of(args: argparse.Namespace) -> dict:
    """A command's settings from its flags (None: not given, so the config file's value stands)."""
    options = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    for name in ("shares", "spark_conf"):
        if options.get(name):
            options[name] = dict(options[name])
    return options


def _pipeline(config_path: str, options: dict) -> int:
    from spark_synth.evaluation.after_training import format_headline
    from spark_synth.face.workflow import load_workflow, run_workflow

    done = run_workflow(load_workflow(config_path, options.pop("settings") or (), **options))
    print(f"generator saved to {done['model_dir']} ({done['model_uri']})")
    if "headline" in done:
        print(format_headline(done["headline"]))
    if done.get("promoted"):
        print(f"promoted: {done['promoted']}")
    if "output" in done:
        print(f"wrote {done['generated']} synthetic rows (or subjects) to {done['output']}")
    return 0


def _train(config_path: str | None, options: dict) -> int:
    from spark_synth.config import PIPELINE_SECTIONS, TrainConfig, load_config
    from spark_synth.stages.train import train

    config = load_config(TrainConfig, config_path, sections=PIPELINE_SECTIONS, **options)
    outcome = train(config)
    print(f"generator saved to {outcome.model_dir}")
    print(f"MLflow run {outcome.run_id}: {outcome.model_uri}")
    print(f"see it with: mlflow ui --backend-store-uri {redact(outcome.tracking_uri)}")
    return 0


def _generate(config_path: str | None, options: dict) -> int:
    from spark_synth.config import GenerateConfig, load_config
    from spark_synth.stages.generate import generate

    config = load_config(GenerateConfig, config_path, **options)
    count = generate(config)
    if config.seed_data is not None:
        print(f"wrote {count} synthetic rows (event log: subjects with their events under subjects/ and events/), "
              f"one per seed row, to {config.output} ({config.format})")
    elif config.subjects is not None:
        print(f"wrote {count} synthetic subjects with their events to {config.output}/subjects and "
              f"{config.output}/events ({config.format})")
    else:
        print(f"wrote {count} synthetic rows to {config.output} ({config.format})")
    return 0


def _impute(config_path: str | None, options: dict) -> int:
    from spark_synth.config import ImputeConfig, load_config
    from spark_synth.stages.generate import impute

    config = load_config(ImputeConfig, config_path, **options)
    impute(config)
    print(f"wrote {config.data} with the nulls of {', '.join(config.columns)} filled to {config.output} ({config.format})")
    return 0


def _evaluate(config_path: str | None, options: dict) -> int:
    from spark_synth.config import EvaluateConfig, load_config
    from spark_synth.evaluation.after_training import format_headline
    from spark_synth.stages.evaluate import run_evaluation

    config = load_config(EvaluateConfig, config_path, **options)
    outcome = run_evaluation(config)
    print(format_headline(outcome.evaluation.headline))
    if outcome.report:
        print(f"report written to {outcome.report}")
    if outcome.run_id:
        print(f"figures logged to MLflow run {outcome.run_id}")
    if outcome.promoted:
        print(f"{config.model} passed the gate: alias '{config.promote}' now points at version {outcome.promoted}")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """The `spark-synth` command. An unexpected error's traceback is printed too, redacted: exception messages
    (Spark's, the cloud clients') quote the URIs they failed on, credentials included."""
    try:
        status = run(argv)
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - reported here, redacted, instead of by the interpreter
        import traceback

        print(redact(traceback.format_exc()).rstrip(), file=sys.stderr)
        status = 130 if isinstance(error, KeyboardInterrupt) else 1
    sys.exit(status)


if __name__ == "__main__":
    main()
