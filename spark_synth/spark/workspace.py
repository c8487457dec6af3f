"""A training's working directory: encoded shards, rank outputs and checkpoints, on storage every rank sees.

Without ``--checkpoint-dir`` it is a fresh temporary directory, removed when training ends either
way (encoded rows are training data). With it, the directory keeps what a rerun needs to resume
after a failure: the (possibly DP-noised) statistics, so a resumed DP training never releases
them twice; the encoded shards; and the model checkpoint. It is removed after success.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from typing import Any

from spark_synth.config import UNLOGGED_SETTINGS, TrainConfig
from spark_synth.errors import SynthError

logger = logging.getLogger(__name__)

STATS_FILE = "prepared.json"
RANKS_PREFIX = "ranks-"  # one directory per attempt's rank reports
# what a training writes in its checkpoint dir: only these are removed from it, and nothing else may be there
OWNED_ENTRIES = {STATS_FILE, STATS_FILE + ".partial", "encoded", "checkpoint"}
SHARD_FORMAT = 2  # 2: codes packed into words (spark_synth.encoding.packing); a checkpoint of another format is refused
PREPARED_FORMAT = 2  # 2: text-date decisions saved with the statistics (drawn with noise under DP)
# settings that change neither the data prepared nor the model trained: a resumed run may change them
RUNTIME_SETTINGS = {"experiment", "registered_model", "alias", "report", "quality_rows", "target", "master",
                    "progress", "backend", "num_processes", "use_gpu", "checkpoint_dir", "work_dir", "max_minutes",
                    *UNLOGGED_SETTINGS}


class Workspace:
    def __init__(self, config: TrainConfig) -> None:
        self.resumable = config.checkpoint_dir is not None
        self.fingerprint = fingerprint(config)
        if self.resumable:
            self.root = config.checkpoint_dir
            _check_checkpoint_dir(self.root)
            os.makedirs(self.root, exist_ok=True)
        else:
            if config.work_dir:  # a work dir not there yet is made (only its spark-synth-* entry is removed after)
                os.makedirs(config.work_dir, exist_ok=True)
            self.root = tempfile.mkdtemp(prefix="spark-synth-", dir=config.work_dir)
        self.encoded = os.path.join(self.root, "encoded")
        self.checkpoints = os.path.join(self.root, "checkpoint") if self.resumable else None

    def rank_output(self) -> str:
        """A fresh directory for one attempt's rank reports."""
        return os.path.join(self.root, f"{RANKS_PREFIX}{uuid.uuid4().hex[:8]}")

    def saved_stats(self) -> dict[str, Any] | None:
        path = os.path.join(self.root, STATS_FILE)
        if not self.resumable or not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        if saved.get("fingerprint") != self.fingerprint:
            raise SynthError(f"--checkpoint-dir {self.root} holds a training with other data or settings.",
                             "Remove it, or choose another --checkpoint-dir.")
        return saved["stats"]

    def save_stats(self, stats: dict[str, Any]) -> None:
        if not self.resumable:
            return
        path = os.path.join(self.root, STATS_FILE)
        with open(path + ".partial", "w", encoding="utf-8") as handle:
            json.dump({"fingerprint": self.fingerprint, "stats": stats}, handle)
        os.replace(path + ".partial", path)

    @property
    def encoded_subjects(self) -> str:
        return os.path.join(self.encoded, "subjects")

    @property
    def encoded_events(self) -> str:
        return os.path.join(self.encoded, "events")

    @property
    def has_encoded(self) -> bool:
        """Spark writes ``_SUCCESS`` last: shards without it are from an interrupted encoding (an event log's
        events are encoded after its subjects)."""
        return any(os.path.isfile(os.path.join(d, "_SUCCESS")) for d in (self.encoded, self.encoded_events))

    def remove(self) -> None:
        """Remove what this training wrote: the whole temporary directory, or a checkpoint dir's own entries
        (and the directory once empty); anything else put there is left alone."""
        if not self.resumable:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for name in _owned_entries(self.root):
            path = os.path.join(self.root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.root)  # only when empty

    def close(self, succeeded: bool) -> None:
        """Remove everything after success, or after a failure that cannot be resumed."""
        if succeeded or not self.resumable or not os.path.isfile(os.path.join(self.root, STATS_FILE)):
            self.remove()  # nothing to resume before the statistics exist
        else:
            logger.warning(f"training stopped; rerun the same command to resume from the checkpoint in {self.root}")


def fingerprint(config: TrainConfig) -> str:
    """What identifies a training: its inputs and every setting that shapes the data or the model."""
    settings = config.model_dump(exclude=RUNTIME_SETTINGS) | {"shard_format": SHARD_FORMAT, "prepared_format": PREPARED_FORMAT}
    for key in ("data", "subjects", "events"):
        if not isinstance(settings.get(key), str | None):
            settings[key] = "DataFrame"
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _is_owned(name: str) -> bool:
    """An entry of a checkpoint dir that a training writes there (and so may remove)."""
    return name in OWNED_ENTRIES or name.startswith(RANKS_PREFIX)


def _owned_entries(root: str) -> list[str]:
    return [name for name in os.listdir(root) if _is_owned(name)] if os.path.isdir(root) else []


def _check_checkpoint_dir(path: str) -> None:
    """A checkpoint dir is removed after success: refuse one holding anything a training did not write there
    (a checkpoint is recognised by its statistics file; then only the entries a training writes are allowed)."""
    if os.path.islink(path):
        raise SynthError(f"--checkpoint-dir {path} is a symbolic link.", "Pass the real directory.")
    if os.path.exists(path) and not os.path.isdir(path):
        raise SynthError(f"--checkpoint-dir {path} is a file.", "Choose a directory path.")
    entries = os.listdir(path) if os.path.isdir(path) else []
    if entries and not os.path.isfile(os.path.join(path, STATS_FILE)):
        raise SynthError(f"--checkpoint-dir {path} holds files that are not a spark-synth checkpoint.",
                         "Choose a new or empty directory (it is removed after a successful training).")
    foreign = sorted(name for name in entries if not _is_owned(name))
    if foreign:
        raise SynthError(f"--checkpoint-dir {path} holds files a training did not write there ({', '.join(foreign[:5])}).",
                         "Move them out, or choose another --checkpoint-dir (it is removed after a successful "
                         "training).")
