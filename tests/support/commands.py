"""Commands the tests run (the CLI in-process, spark-submit in its own JVM) and what a refused one must show."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from spark_synth.face import cli
from spark_synth.faults import KILL_CHUNK_ENV


def problem_and_fix(stderr: str) -> tuple[str, str]:
    lines = stderr.splitlines()
    problem = [line for line in lines if line.startswith("error: ")]
    fix = [line for line in lines if line.strip().startswith("fix: ")]
    assert problem, f"no 'error:' line on stderr:\n{stderr}"
    assert fix, f"no 'fix:' line on stderr:\n{stderr}"
    return problem[0], fix[0]


def assert_rejected(argv: list[str], capsys, digest, watched: list[Path], names: list[str], fix: list[str]) -> None:
    """``argv`` exits 2, its error names every item of ``names``, its fix every item of ``fix``, and nothing
    under ``watched`` changes. All the ways it falls short are reported together."""
    before = {str(p): digest(p) for p in watched}
    capsys.readouterr()
    try:
        outcome: object = cli.run(argv)
    except Exception as exc:  # noqa: BLE001 - a crash is one of the problems reported below
        outcome = exc
    stderr = capsys.readouterr().err
    problems = []
    if isinstance(outcome, Exception):
        problems.append(f"raised {type(outcome).__name__}: {str(outcome)[:300]} (expected exit status 2)")
    elif outcome != 2:
        problems.append(f"exit status {outcome!r} (expected 2)")
    else:
        problem, fix_line = problem_and_fix(stderr)
        problems += [f"{name!r} not named in {problem!r}" for name in names if name.lower() not in problem.lower()]
        problems += [f"{word!r} not in {fix_line!r}" for word in fix if word.lower() not in fix_line.lower()]
        if len(fix_line.split("fix:", 1)[1].strip()) <= 10:
            problems.append(f"no real fix in {fix_line!r}")
        if "Traceback" in stderr:
            problems.append("a traceback on stderr")
    for path, old in before.items():
        new = digest(Path(path))
        removed = sorted(set(old) - set(new))
        added = sorted(set(new) - set(old))
        modified = sorted(k for k in set(old) & set(new) if old[k] != new[k])
        if removed or added or modified:
            problems.append(f"{path} changed: removed {removed}, added {added}, modified {modified}")
    assert not problems, "\n".join(problems)


def train_argv(data: Path | str, model_dir: Path, store, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--model-dir", str(model_dir), "--max-minutes", "0.1",
            "--tracking-uri", store.uri, "--no-progress", *extra]



@dataclass(frozen=True)
class LogData:
    subjects: Path
    events: Path


def log_argv(data: LogData, model_dir: Path, store, *extra: str) -> list[str]:
    return ["train", "--subjects", str(data.subjects), "--subject-key", "id", "--events", str(data.events),
            "--foreign-key", "players_id", "--order-by", "year", "--model-dir", str(model_dir),
            "--tracking-uri", store.uri, "--no-progress", *extra]


def write_log(directory: Path, players: pd.DataFrame, batting: pd.DataFrame) -> LogData:
    directory.mkdir(parents=True, exist_ok=True)
    data = LogData(directory / "players.parquet", directory / "batting.parquet")
    players.to_parquet(data.subjects, index=False)
    batting.to_parquet(data.events, index=False)
    return data



ROOT = Path(__file__).resolve().parents[2]


SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


ROWS, CHUNK, SEED = 12_000, 2_000, 7  # 6 chunks on 2 tasks: chunk 1 is a task's second


def submit_generate(model_dir: Path, output: Path, fault: str | None, *extra: str,
                    size: tuple[str, int] = ("--rows", ROWS), chunk: int = CHUNK) -> subprocess.CompletedProcess:
    """``spark-submit jobs/generate.py`` on ``local[2,3]`` (up to 3 attempts per task), with the fault armed."""
    argv = [str(SPARK_SUBMIT), "--master", "local[2,3]", "--driver-memory", "1g", "jobs/generate.py",
            "--model", str(model_dir), size[0], str(size[1]), "--chunk-size", str(chunk), "--partitions", "2",
            "--seed", str(SEED), "--output", str(output), *extra]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop(KILL_CHUNK_ENV, None)
    if fault:
        env[KILL_CHUNK_ENV] = fault
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

