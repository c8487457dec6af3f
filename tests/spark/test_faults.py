"""Faults during generation: a task killed mid-write is retried to the very same table; a job whose task
keeps dying leaves no partial output, and an existing output stays as it was.

Each run is ``spark-submit jobs/generate.py`` in its own JVM, with ``local[2,3]`` so that Spark retries a
failed task as a cluster would (plain ``local[2]`` never retries). The fault is the product's own hook
(``spark_synth.faults``): the Python worker exits abruptly, as a lost executor would, just before it
produces the named chunk, after the task's earlier chunks went to its output file.
spark-submit passes the Python driver's stderr on to its own stdout: errors are looked for in both.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from support.commands import CHUNK, ROWS, SEED, submit_generate

from spark_synth.generators.flat import FlatGenerator


def test_a_task_killed_mid_write_is_retried_to_identical_output(trained_generator, tmp_path: Path) -> None:
    output = tmp_path / "synthetic"
    done = submit_generate(trained_generator.model_dir, output, fault="1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Python worker exited unexpectedly" in done.stderr or "crashed" in done.stderr, \
        "the fault did not fire: no lost task in the log"
    written = pd.read_parquet(output)
    expected = FlatGenerator.load(str(trained_generator.model_dir)).sample(ROWS, seed=SEED, chunk_size=CHUNK)
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

