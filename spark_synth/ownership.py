"""What a command may delete or replace: only what it wrote itself. No Spark, no torch: paths only.

A model dir is replaced whole when a training ends, so it may hold nothing but a generator's own files
(``FLAT_FILES`` or ``LOG_FILES``, exactly what ``FlatGenerator.save`` / ``LogGenerator.save`` write); anything
else there is the user's and the command is refused before any work. A new generator is written to a
staging sibling and swapped in by renames, so a failure leaves the old generator or the new one, never
neither. Inputs, outputs, model, checkpoint and work dirs must not be the same place or nested in one
another: each of them is written or removed as a whole by some step.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Iterable
from typing import Any

from spark_synth.errors import SynthError

# the exact files each generator kind's save writes (generator.FILES and log_generator.FILES are these)
FLAT_FILES = ("stats.json", "model.json", "weights.safetensors", "meta.json")
LOG_FILES = ("log.json", "meta.json", "subjects/stats.json", "subjects/model.json", "subjects/weights.safetensors",
             "events/stats.json", "events/model.json", "events/weights.safetensors")
GENERATOR_FILE_SETS = (frozenset(FLAT_FILES), frozenset(LOG_FILES))

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters at least: never a Windows drive
_SAME_SCHEME = {"s3a": "s3", "s3n": "s3", "abfss": "abfs", "wasbs": "wasb"}


# ------------------------------------------------------------------------------------------ locations


def location(value: Any) -> str | None:
    """A comparable form of a path or URI: local paths absolute with symlinks resolved (``file:`` URIs too);
    other URIs with a lowercase scheme (s3a/s3n as s3) and a normalised path. None for what is not a place
    (a DataFrame, None)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        return None
    match = _SCHEME.match(value)
    if match is None:
        return os.path.realpath(value)
    scheme = match.group(1).lower()
    rest = value[match.end():]
    if scheme == "file":
        return os.path.realpath("/" + rest.lstrip("/"))
    scheme = _SAME_SCHEME.get(scheme, scheme)
    if rest.startswith("//"):  # scheme://authority/path: the authority is part of the place
        authority, _, path = rest[2:].partition("/")
        return f"{scheme}://{authority}{posixpath.normpath('/' + path).rstrip('/')}"
    return f"{scheme}:{posixpath.normpath('/' + rest)}"


def is_local(value: Any) -> bool:
    """A path on this machine (no scheme, or ``file:``): what os functions can read, write and delete."""
    if isinstance(value, os.PathLike):
        return True
    if not isinstance(value, str):
        return False
    match = _SCHEME.match(value)
    return match is None or match.group(1).lower() == "file"


def maybe_table_name(value: Any) -> bool:
    """A name that may be a catalog table rather than a path (no ``/``, nothing on disk by that name): such a
    name is not compared with paths."""
    return isinstance(value, str) and "/" not in value and os.sep not in value and not os.path.exists(value)


def inside(inner: str, outer: str) -> bool:
    """``inner`` is ``outer`` or below it (both from :func:`location`)."""
    if inner == outer:
        return True
    base = outer if outer.endswith(("/", os.sep)) else outer + ("/" if "/" in outer else os.sep)
    return inner.startswith(base)


def overlap(a: Any, b: Any) -> bool:
    """The same place, or one inside the other: writing or removing one changes the other."""
    first, second = location(a), location(b)
    return first is not None and second is not None and (inside(first, second) or inside(second, first))


def check_apart(written: Iterable[tuple[str, Any]], read: Iterable[tuple[str, Any]], fix: str) -> None:
    """Refuse the first ``(name, path)`` that a command writes or removes overlapping another such place or
    one it reads; inputs may overlap one another. None (not given) and DataFrames are skipped."""
    targets = [(name, value) for name, value in written if location(value) is not None]
    sources = [(name, value) for name, value in read if location(value) is not None]
    for i, (name, value) in enumerate(targets):
        for other_name, other in targets[i + 1:] + sources:
            if overlap(value, other):
                how = "is the same place as" if location(value) == location(other) else "overlaps"
                raise SynthError(f"{name} {value} {how} {other_name} {other} (one would be written or removed "
                                 "with the other).", fix)


def check_not_within(name: str, value: Any, places: Iterable[tuple[str, Any]], fix: str) -> None:
    """Refuse ``value`` being any of ``places`` or inside one (places inside ``value`` are fine): for a
    directory of which a command only creates and removes a fresh sub-directory."""
    here = location(value)
    if here is None:
        return
    for other_name, other in places:
        there = location(other)
        if there is not None and inside(here, there):
            raise SynthError(f"{name} {value} is {other_name} {other} or inside it.", fix)


# ------------------------------------------------------------------------------------------ generators


def _entries(directory: str) -> tuple[set[str], set[str], list[str]]:
    """Files and sub-directories under ``directory`` (relative, ``/``-separated) and any symlinks."""
    files: set[str] = set()
    dirs: set[str] = set()
    links: list[str] = []
    for root, dirnames, filenames in os.walk(directory):
        rel = os.path.relpath(root, directory)
        for name in dirnames + filenames:
            path = name if rel == "." else posixpath.join(rel.replace(os.sep, "/"), name)
            full = os.path.join(root, name)
            if os.path.islink(full):
                links.append(path)
            elif name in dirnames:
                dirs.add(path)
            else:
                files.add(path)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(root, d))]
    return files, dirs, links


def foreign_entries(directory: str) -> list[str]:
    """Why ``directory`` is not a generator's: empty for a missing or empty directory and for exactly one
    generator's file set; else, against the closest file set, the entries it does not explain (or, when there
    are none, the files it lacks)."""
    if not os.path.isdir(directory):
        return []
    files, dirs, links = _entries(directory)
    if not files and not dirs and not links:
        return []
    reports = []
    for file_set in GENERATOR_FILE_SETS:
        wanted_dirs = {posixpath.dirname(f) for f in file_set} - {""}
        extra = sorted((files - file_set) | (dirs - wanted_dirs)) + sorted(links)
        missing = sorted(file_set - files)
        if not extra and not missing:
            return []
        reports.append((len(extra), extra or [f"no {name}" for name in missing]))
    return min(reports)[1]


def check_replaceable(directory: str, name: str = "--model-dir") -> None:
    """Refuse a directory that a generator's save would replace but that holds something else: a file, or a
    directory with anything but exactly one generator's files. Its contents are the user's."""
    if os.path.islink(directory):
        raise SynthError(f"{name} {directory} is a symbolic link.", f"Pass the real directory, not a link, as the {name}.")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise SynthError(f"{name} {directory} is a file.", f"Choose a {name} that is a directory path.")
    foreign = foreign_entries(directory)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise SynthError(f"{name} {directory} already exists and holds something other than one "
                         f"spark-synth generator's files ({shown}); a generator's directory is replaced whole.",
                         f"Choose a new or empty {name}, or move those files out of it (a directory holding "
                         "only a previous generator is replaced).")


# ------------------------------------------------------------------------------------------ staged replace


def _sibling(directory: str, tag: str) -> str:
    parent, base = os.path.split(os.path.abspath(directory))
    return os.path.join(parent, f".{base}.{tag}-{uuid.uuid4().hex[:8]}")


def staging_for(directory: str) -> str:
    """A fresh path ``.NAME.staged-XXXX/NAME`` beside ``directory`` (same file system, so renames are atomic;
    same base name, so what is logged from it is named as the model dir). Remove with :func:`discard`."""
    holder = _sibling(directory, "staged")
    os.makedirs(holder)
    return os.path.join(holder, os.path.basename(os.path.abspath(directory)))


def discard(staged: str) -> None:
    """Remove a staging path from :func:`staging_for` and its holder; anything else is left alone (a path
    this module did not create is never removed)."""
    holder = os.path.dirname(staged)
    name = os.path.basename(holder)
    if name.startswith(".") and ".staged-" in name:
        shutil.rmtree(holder, ignore_errors=True)


def replace_dir(new: str, directory: str, name: str = "--model-dir") -> None:
    """Swap the finished directory ``new`` in at ``directory``: the previous contents (checked again: nothing
    but a generator) move to a sibling, ``new`` is renamed in, then the previous contents are removed. Should
    the rename fail, the previous contents are moved back; a crash between the two renames leaves them in the
    ``.NAME.previous-XXXX`` sibling, never lost."""
    check_replaceable(directory, name)
    previous = None
    if os.path.isdir(directory):
        previous = _sibling(directory, "previous")
        os.replace(directory, previous)
    try:
        os.replace(new, directory)
    except BaseException:
        if previous is not None:
            os.replace(previous, directory)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def write_files(files: dict[str, bytes], directory: str, name: str = "generator directory") -> None:
    """Write named files (names may hold one sub-directory) to a staging sibling and swap it in at
    ``directory``, which must be missing, empty or hold exactly a generator's files (refused otherwise,
    before anything is written)."""
    check_replaceable(directory, name)
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staged = staging_for(directory)
    try:
        for file_name, content in files.items():
            path = os.path.join(staged, *file_name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
        replace_dir(staged, directory, name)
    finally:
        discard(staged)
