"""Faults during generation: a task killed mid-write is retried to the very same table; a job whose task
keeps dying leaves no partial output, and an existing output stays as it was.

Each run is ``spark-submit jobs/generate.py`` in its own JVM, with ``local[2,3]`` so that Spark retries a
failed task as a cluster would (plain ``local[2]`` never retries). The fault is the product's own hook
(``spark_synth.faults``): the Python worker exits abruptly, as a lost executor would, just before it
produces the named chunk, after the task's earlier chunks went to its output file.
spark-submit passes the Python driver's stderr on to its own stdout: errors are looked for in both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from spark_synth.faults import KILL_CHUNK_ENV
from spark_synth.generator import Generator

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


def test_a_task_killed_mid_write_is_retried_to_identical_output(trained_generator, tmp_path: Path) -> None:
    output = tmp_path / "synthetic"
    done = submit_generate(trained_generator.model_dir, output, fault="1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Python worker exited unexpectedly" in done.stderr or "crashed" in done.stderr, \
        "the fault did not fire: no lost task in the log"
    written = pd.read_parquet(output)
    expected = Generator.load(str(trained_generator.model_dir)).sample(ROWS, seed=SEED, chunk_size=CHUNK)
    assert len(written) == ROWS
    key = list(expected.columns)
    pd.testing.assert_frame_equal(written.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_a_job_whose_task_keeps_dying_leaves_the_old_output_untouched(trained_generator, tmp_path: Path,
                                                                      digest) -> None:
    output = tmp_path / "synthetic"
    pd.DataFrame({"old": [1, 2, 3]}).to_parquet(tmp_path / "old.parquet")
    output.mkdir()
    (tmp_path / "old.parquet").rename(output / "part-old.parquet")
    before = digest(tmp_path)
    done = submit_generate(trained_generator.model_dir, output, "1:always", "--mode", "overwrite")
    assert done.returncode == 1
    said = done.stdout + done.stderr  # spark-submit passes the Python driver's stderr on to its stdout
    assert "error: generation failed" in said and "unchanged" in said, said[-3000:]
    assert digest(tmp_path) == before  # the old table, no staging directory left beside it

