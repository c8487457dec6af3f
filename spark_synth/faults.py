"""Fault injection for the recovery tests: a process that dies abruptly, as a lost executor would.

Off unless one of these is set in the processes' environment:

- ``SPARK_SYNTH_KILL_RANK_AT=RANK:STEP`` (any phase) or ``RANK:STEP:PHASE`` (``model``, ``subjects`` or
  ``events``): a training rank dies at that step;
- ``SPARK_SYNTH_KILL_CHUNK=[JOB:]CHUNK[:always]``: the generation task dies just before producing that chunk,
  after the task's earlier chunks went to its writer; on the task's first attempt only unless ``always``, and in
  every generation job unless JOB names one (``rows``, ``subjects`` or ``events``).
"""

from __future__ import annotations

import os

KILL_ENV = "SPARK_SYNTH_KILL_RANK_AT"
KILL_CHUNK_ENV = "SPARK_SYNTH_KILL_CHUNK"
KILLED = 137  # the exit status of a process killed by SIGKILL


def maybe_kill(rank: int, step: int, phase: str) -> None:
    """End this process abruptly (no cleanup, like a killed executor) when the fault names this rank and step."""
    spec = os.environ.get(KILL_ENV)
    if spec and spec in (f"{rank}:{step}", f"{rank}:{step}:{phase}"):
        os._exit(KILLED)


def maybe_kill_task(job: str, chunk_id: int, attempt: int) -> None:
    """End this Python worker abruptly when the fault names this job's chunk (and, unless ``always``, a first
    attempt)."""
    spec = os.environ.get(KILL_CHUNK_ENV)
    if not spec:
        return
    parts = spec.split(":")
    named_job = parts.pop(0) if not parts[0].isdigit() else job
    always = parts[-1] == "always"
    if named_job == job and parts[0] == str(chunk_id) and (always or attempt == 0):
        os._exit(KILLED)
