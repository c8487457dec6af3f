"""Training checkpoints: what a killed job needs to go on where it stopped, on shared storage.

Rank 0 writes (to a temporary file, then an atomic rename: a kill mid-write leaves the previous
checkpoint); every rank reads. Loading uses ``weights_only``: a checkpoint holds tensors and plain
values, and nothing in it is executed. A fingerprint of the job guards against resuming a
different training from a stale directory.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from spark_synth.errors import SynthError


class Checkpointer:
    """The checkpoints of one training phase (one model): ``NAME.pt`` while it trains, ``NAME.done.pt``
    once it finished, and the DP plan of the whole job in ``plan.pt``."""

    def __init__(self, directory: str, fingerprint: str, writer: bool, name: str = "model") -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.writer = writer
        self.path = os.path.join(directory, f"{name}.pt")
        self.done_path = os.path.join(directory, f"{name}.done.pt")
        self.plan_path = os.path.join(directory, "plan.pt")

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint of this phase, or None when there is none yet."""
        return self._read(self.path)

    def save(self, state: dict[str, Any]) -> None:
        self._write(self.path, state)

    def load_done(self) -> dict[str, Any] | None:
        return self._read(self.done_path)

    def save_done(self, state: dict[str, Any]) -> None:
        self._write(self.done_path, state)

    def load_plan(self) -> dict[str, list[float]] | None:
        saved = self._read(self.plan_path)
        return saved["plans"] if saved else None

    def save_plan(self, plans: dict[str, list[float]]) -> None:
        self._write(self.plan_path, {"plans": plans})

    def _read(self, path: str) -> dict[str, Any] | None:
        if not os.path.isfile(path):
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: never guess
            raise SynthError(f"the checkpoint {path} cannot be read ({exc}).",
                             "Remove the checkpoint directory to train from the start.") from exc
        if state.get("fingerprint") != self.fingerprint:
            raise SynthError(f"the checkpoint in {self.directory} belongs to a different training (other data, "
                             "model or settings).", "Remove it, or choose another --checkpoint-dir.")
        return state

    def _write(self, path: str, state: dict[str, Any]) -> None:
        if not self.writer:
            return
        os.makedirs(self.directory, exist_ok=True)
        partial = path + ".partial"
        torch.save({**state, "fingerprint": self.fingerprint}, partial)
        os.replace(partial, path)
