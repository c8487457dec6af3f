"""Paths on any Hadoop filesystem, and the staged renames that make every path write atomic.

Hadoop's FileSystem API through the JVM reaches local disk, HDFS, S3, ADLS and DBFS alike; without a JVM
(Spark Connect) the local disk stands in. Outputs are built in a hidden sibling and renamed into place, so a
reader sees the old table or the new one, and a failure leaves only the sibling, which is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

from pyspark.sql import SparkSession

from spark_synth.errors import SynthError

DELTA_LOG = "_delta_log"


def hidden(name: str) -> bool:
    """Spark's own rule for files a table read skips (_SUCCESS, .crc, _delta_log, temp dirs)."""
    return (name.startswith("_") and "=" not in name) or name.startswith(".") or name.endswith("._COPYING_")


def local_path(path: str) -> str:
    """A ``file:`` URI as a plain local path (delta-rs, pyarrow and os want those)."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path


class FileSystem:
    """Hadoop FileSystem through the JVM (any Hadoop URI), or the local disk when there is no JVM (Spark Connect).

    Every method takes and returns path strings; JVM paths are fully qualified (``file:/tmp/x``, ``s3a://b/x``).
    """

    def __init__(self, spark: SparkSession, path: str) -> None:
        self._jvm: Any = None
        self._fs: Any = None
        try:
            jvm = spark._jvm  # type: ignore[attr-defined]
            conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
            self._fs = jvm.org.apache.hadoop.fs.Path(path).getFileSystem(conf)
            self._jvm = jvm
        except Exception:  # noqa: BLE001 - Spark Connect has no JVM: fall back to the local disk
            self._jvm = None

    def _p(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def qualify(self, path: str) -> str:
        if self._jvm is not None:
            return str(self._fs.makeQualified(self._p(path)).toString())
        return os.path.abspath(local_path(path))

    def parent_and_name(self, path: str) -> tuple[str, str]:
        if self._jvm is not None:
            jpath = self._p(path)
            parent = jpath.getParent()
            name = str(jpath.getName())
            if parent is None or not name:
                raise SynthError(f"Cannot write to {path}: it is a root directory.", "Give a path below it.")
            return str(parent.toString()), name
        parent, name = os.path.split(path.rstrip("/"))
        if not name:
            raise SynthError(f"Cannot write to {path}: it is a root directory.", "Give a path below it.")
        return parent, name

    def join(self, parent: str, child: str) -> str:
        if self._jvm is not None:
            return str(self._jvm.org.apache.hadoop.fs.Path(self._p(parent), child).toString())
        return os.path.join(parent, child)

    def exists(self, path: str) -> bool:
        if self._jvm is not None:
            return bool(self._fs.exists(self._p(path)))
        return os.path.lexists(local_path(path))

    def is_dir(self, path: str) -> bool:
        if self._jvm is not None:
            return bool(self._fs.isDirectory(self._p(path))) if self.exists(path) else False
        return os.path.isdir(local_path(path))

    def delete(self, path: str) -> bool:
        if self._jvm is not None:
            return bool(self._fs.delete(self._p(path), True))
        local = local_path(path)
        if os.path.isdir(local) and not os.path.islink(local):
            shutil.rmtree(local)
            return True
        if os.path.lexists(local):
            os.remove(local)
            return True
        return False

    def mkdirs(self, path: str) -> None:
        if self._jvm is not None:
            self._fs.mkdirs(self._p(path))
        else:
            os.makedirs(local_path(path), exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``, which must not exist (Hadoop would move a directory *into* an existing one)."""
        if self.exists(dst):
            raise SynthError(
                f"Output {dst} appeared while this job was writing it.",
                "Make sure no other job writes the same path, then run again.",
            )
        if self._jvm is not None:
            if not self._fs.rename(self._p(src), self._p(dst)):
                raise OSError(f"Could not rename {src} to {dst}.")
        else:
            os.rename(local_path(src), local_path(dst))

    def data_files(self, root: str) -> Iterator[str]:
        """Files under ``root`` a table read would use: hidden files and directories are skipped, not entered."""
        if self._jvm is not None:
            if not self._fs.isDirectory(self._p(root)):
                yield self.qualify(root)
                return
            stack = [self._p(root)]
            while stack:
                for status in self._fs.listStatus(stack.pop()):
                    jpath = status.getPath()
                    if hidden(str(jpath.getName())):
                        continue
                    if status.isDirectory():
                        stack.append(jpath)
                    else:
                        yield str(jpath.toString())
            return
        local = local_path(root)
        if not os.path.isdir(local):
            yield local
            return
        for dirpath, dirnames, filenames in os.walk(local):
            dirnames[:] = sorted(d for d in dirnames if not hidden(d))
            for filename in sorted(filenames):
                if not hidden(filename):
                    yield os.path.join(dirpath, filename)


def path_exists(spark: SparkSession, path: str | os.PathLike[str]) -> bool:
    """True when ``path`` exists, on any Hadoop filesystem the session can reach."""
    path = os.fspath(path)
    return FileSystem(spark, path).exists(path)


def delete_path(spark: SparkSession, path: str | os.PathLike[str]) -> bool:
    """Delete ``path`` recursively (used to clean partial output); True when something was deleted."""
    path = os.fspath(path)
    fs = FileSystem(spark, path)
    return fs.delete(path) if fs.exists(path) else False


def temp_sibling(fs: FileSystem, target: str, kind: str) -> str:
    """A hidden sibling of ``target``: same filesystem (so rename is cheap), skipped by readers of the parent."""
    parent, name = fs.parent_and_name(target)
    return fs.join(parent, f".{name}._{kind}-{uuid.uuid4().hex}")


@contextlib.contextmanager
def staging(fs: FileSystem, target: str) -> Iterator[str]:
    """A hidden sibling of ``target`` to build an output in; removed afterwards unless renamed into place."""
    staged = temp_sibling(fs, target, "tmp")
    try:
        yield staged
    finally:
        if fs.exists(staged):
            fs.delete(staged)


def swap(fs: FileSystem, new: str, target: str) -> None:
    """Replace ``target`` by ``new``: old aside, new in (old back if that fails), then old deleted."""
    old = temp_sibling(fs, target, "old")
    fs.rename(target, old)
    try:
        fs.rename(new, target)
    except BaseException:
        fs.rename(old, target)
        raise
    fs.delete(old)


def place(fs: FileSystem, new: str, target: str) -> None:
    if fs.exists(target):
        swap(fs, new, target)
    else:
        fs.rename(new, target)


def move_files(fs: FileSystem, src_root: str, target: str) -> None:
    """Append: move each new data file (keeping partition subdirectories) into ``target``; undo on failure."""
    src_root = fs.qualify(src_root)
    moved: list[str] = []
    try:
        for src in list(fs.data_files(src_root)):
            relative = src[len(src_root) :].lstrip("/")
            dst = fs.join(target, relative)
            fs.mkdirs(fs.parent_and_name(dst)[0])
            fs.rename(src, dst)
            moved.append(dst)
    except BaseException:
        for dst in moved:
            fs.delete(dst)
        raise
