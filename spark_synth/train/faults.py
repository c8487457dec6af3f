"""Fault injection for the recovery tests: a rank that dies at a given step, as a lost executor would.

Off unless ``SPARK_SYNTH_KILL_RANK_AT`` is set to ``RANK:STEP`` (any phase) or ``RANK:STEP:PHASE`` (``model``,
``subjects`` or ``events``) in the training processes' environment.
"""

from __future__ import annotations

import os

KILL_ENV = "SPARK_SYNTH_KILL_RANK_AT"


def maybe_kill(rank: int, step: int, phase: str) -> None:
    """End this process abruptly (no cleanup, like a killed executor) when the fault names this rank and step."""
    spec = os.environ.get(KILL_ENV)
    if spec and spec in (f"{rank}:{step}", f"{rank}:{step}:{phase}"):
        os._exit(137)
