"""The Databricks asset bundle, checked without a workspace.

Each job is parsed by Databricks' own bundle models (``databricks-bundles``, generated from the
bundle schema), which refuse unknown fields and wrong types; then the references a deploy would
resolve are checked here: variables, task dependencies, clusters, files, and the settings files
each task reads, validated by spark-synth itself with the task's flags on top.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest
import yaml
from databricks.bundles.jobs import Job

from spark_synth.config import EvaluateConfig, GenerateConfig, TrainConfig, load_config
from spark_synth.face.cli import build_parser, options_of

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
TOP_LEVEL = {"bundle", "include", "variables", "artifacts", "targets", "resources", "workspace", "permissions",
             "sync", "run_as", "experimental", "presets"}
COMMANDS = {"train.py": ("train", TrainConfig), "evaluate.py": ("evaluate", EvaluateConfig),
            "generate.py": ("generate", GenerateConfig), "pipeline.py": ("pipeline", None)}


def _resource_files() -> list[Path]:
    return sorted(Path(p) for pattern in BUNDLE["include"] for p in glob.glob(str(ROOT / pattern)))


def _jobs() -> list[tuple[Path, str, dict]]:
    return [(path, name, job) for path in _resource_files()
            for name, job in (yaml.safe_load(path.read_text()).get("resources", {}).get("jobs") or {}).items()]


def test_the_bundle_has_known_sections_and_a_default_target() -> None:
    assert set(BUNDLE) <= TOP_LEVEL, set(BUNDLE) - TOP_LEVEL
    assert BUNDLE["bundle"]["name"] == "spark-synth"
    assert [name for name, target in BUNDLE["targets"].items() if target.get("default")] == ["dev"]
    assert _resource_files(), "the include patterns match no job definition"
    for artifact in BUNDLE["artifacts"].values():
        assert artifact["type"] == "whl" and (ROOT / artifact["path"] / "pyproject.toml").is_file()


@pytest.mark.parametrize("path,name,job", _jobs(), ids=lambda v: v if isinstance(v, str) else None)
def test_each_job_matches_the_databricks_schema(path: Path, name: str, job: dict) -> None:
    parsed = Job.from_dict(job)  # raises on an unknown field or a wrong type anywhere in the job
    assert parsed.as_dict()["tasks"], name
    tasks = {t["task_key"]: t for t in job["tasks"]}
    clusters = {c["job_cluster_key"] for c in job.get("job_clusters", [])}
    for key, task in tasks.items():
        assert task.get("job_cluster_key") in clusters, f"{key}: unknown cluster"
        for dependency in task.get("depends_on", []):
            assert dependency["task_key"] in tasks and dependency["task_key"] != key
        python_file = (path.parent / task["spark_python_task"]["python_file"]).resolve()
        assert python_file.is_file() and python_file.parent == ROOT / "jobs", python_file


def test_train_evaluate_generate_run_in_order_on_a_gpu_and_a_cpu_cluster() -> None:
    (_, _, job), = [j for j in _jobs() if j[1] == "census_synthesis"]
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert [d["task_key"] for d in tasks["evaluate"]["depends_on"]] == ["train"]
    assert [d["task_key"] for d in tasks["generate"]["depends_on"]] == ["evaluate"]
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    assert "gpu" in clusters[tasks["train"]["job_cluster_key"]]["spark_version"]
    assert "gpu" not in clusters[tasks["generate"]["job_cluster_key"]]["spark_version"]


def test_every_variable_used_is_declared() -> None:
    declared = set(BUNDLE["variables"])
    text = "\n".join(p.read_text() for p in [ROOT / "databricks.yml", *_resource_files()])
    used = set(re.findall(r"\$\{var\.([A-Za-z_][\w]*)\}", text))
    assert used and used <= declared, used - declared


@pytest.mark.parametrize("path,name,job", _jobs(), ids=lambda v: v if isinstance(v, str) else None)
def test_each_task_s_flags_and_settings_file_are_valid(path: Path, name: str, job: dict) -> None:
    """The CLI parses every task's parameters, and its settings file plus those flags make a valid config."""
    variables = {k: str(v["default"]) for k, v in BUNDLE["variables"].items()}
    for task in job["tasks"]:
        entry = task["spark_python_task"]
        command, kind = COMMANDS[Path(entry["python_file"]).name]
        params = [re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m.group(1)], p) for p in entry["parameters"]]
        params = [p.replace("${workspace.file_path}", str(ROOT)) for p in params]
        args = build_parser().parse_args([command, *params])
        assert args.config and Path(args.config).is_file(), args.config
        if kind is not None:
            load_config(kind, args.config, **options_of(args))
