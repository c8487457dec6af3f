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

CHECKPOINT_FILE = "checkpoint.pt"


class Checkpointer:
    def __init__(self, directory: str, fingerprint: str, writer: bool) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.writer = writer
        self.path = os.path.join(directory, CHECKPOINT_FILE)

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint of this job, or None when there is none yet."""
        if not os.path.isfile(self.path):
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: never guess
            raise SynthError(f"the checkpoint {self.path} cannot be read ({exc}).",
                             "Remove the checkpoint directory to train from the start.") from exc
        if state.get("fingerprint") != self.fingerprint:
            raise SynthError(f"the checkpoint in {self.directory} belongs to a different training (other data, "
                             "model or settings).", "Remove it, or choose another --checkpoint-dir.")
        return state

    def save(self, state: dict[str, Any]) -> None:
        if not self.writer:
            return
        os.makedirs(self.directory, exist_ok=True)
        partial = self.path + ".partial"
        torch.save({**state, "fingerprint": self.fingerprint}, partial)
        os.replace(partial, self.path)
