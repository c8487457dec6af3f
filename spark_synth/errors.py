"""User-facing errors: each names the problem and the fix, so the CLI can print it and exit non-zero."""

from __future__ import annotations

import re

from spark_synth.secrets import redact


class SynthError(Exception):
    """An error caused by the user's input or configuration, not by a bug.

    ``problem`` says what is wrong; ``fix`` says what to do about it. The CLI prints both and
    exits with ``exit_status`` (2: bad input) without a traceback.
    """

    exit_status = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


class JobFailed(SynthError):
    """A Spark job that failed for good (a task lost more times than Spark retries): not bad input, so exit 1."""

    exit_status = 1


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (Spark's and delta-rs' run on for pages), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_STAGE_FAILURE = re.compile(r"Task \S+ in stage \S+ failed \d+ times")
_TASK_SYNTH_ERROR = re.compile(r"spark_synth\.errors\.SynthError: (.+?)(?: Fix: (.+))?$", re.MULTILINE)
_CAUSES = ("Python worker exited unexpectedly", "ExecutorLostFailure", "OutOfMemoryError", "Container killed")


def synth_error_in_task(exc: BaseException) -> SynthError | None:
    """The SynthError a Python worker raised inside a Spark task (it reaches the driver as text), or None."""
    found = _TASK_SYNTH_ERROR.search(str(exc))
    return SynthError(found.group(1), found.group(2) or "") if found else None


def spark_job_failure(exc: BaseException) -> str | None:
    """A one-line account of a failed Spark job (which task, how often, why), or None if ``exc`` is not one."""
    text = str(exc)
    stage = _STAGE_FAILURE.search(text)
    if stage is None:
        return None
    cause = next((c for c in _CAUSES if c in text), None)
    return redact(stage.group(0) + (f" ({cause})" if cause else ""))
