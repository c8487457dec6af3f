"""Start and stop a local server process for a test module (Spark Connect, MLflow model serving)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(argv: list[str], ready: Callable[[], bool], log: Path, env: dict[str, str] | None = None,
            timeout: float = 240) -> Iterator[subprocess.Popen]:
    """``argv`` in its own process group until the block ends; waits until ``ready()`` (its log on failure)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start (exit {process.poll()}):\n"
                                   + log.read_text(errors="replace")[-3000:])
            time.sleep(1)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def accepts(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", port)) == 0
    return check
