"""How the library's log records reach a person: library modules log through ``logging.getLogger(__name__)``
and never print; the CLI calls :func:`show_logs` once. A notebook sees warnings through Python's default
handler, and everything with ``logging.basicConfig(level="INFO")``."""

from __future__ import annotations

import logging
import sys

ROOT = "spark_synth"


class _ConsoleHandler(logging.Handler):
    """Writes to the ``sys.stdout`` of the moment (not the one at set-up), so a redirected or captured
    stdout gets the messages; warnings are prefixed as such."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            sys.stdout.write(f"{prefix}{record.getMessage()}\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def show_logs(level: int = logging.INFO) -> None:
    """Print the library's records at ``level`` and above on stdout, once per process."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.propagate = False  # not twice through a root handler a host application set up
