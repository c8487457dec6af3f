"""User-facing errors: each names the problem and the fix, so the CLI can print it and exit non-zero."""

from __future__ import annotations


class SynthError(Exception):
    """An error caused by the user's input or configuration, not by a bug.

    ``problem`` says what is wrong; ``fix`` says what to do about it. The CLI prints both and
    exits with status 2 without a traceback.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)
