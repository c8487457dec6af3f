"""Helpers shared by the benchmark scripts: paths, machine description, a plain-text table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(REPO, "..", "shared", "data", "census")
SCORE = os.path.join(REPO, "..", "shared", "tools", "score.py")  # the referee (mostlyai-qa + TSTR)


def default_qa_python() -> str:
    """The referee's venv: `make qa-venv` builds .venv-qa; an older shared one is the fallback."""
    local = os.path.join(REPO, ".venv-qa", "bin", "python")
    return local if os.path.exists(local) else "/work/qa-venv/bin/python"
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")


def census_parser(doc: str, result_file: str):
    """The arguments every census benchmark scored by the referee shares: data, referee venv, output."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="holds census_train.parquet and census_holdout.parquet")
    ap.add_argument("--qa-python", default=default_qa_python(), help="python of the venv with mostlyai-qa")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, result_file))
    return ap


def referee(qa_python: str, argv: list[str]) -> dict:
    """Run ``score.py ARGV`` in the referee's venv and return its JSON line (exit on failure)."""
    cmd = [qa_python, SCORE, *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"referee failed (exit {done.returncode}): {' '.join(cmd)}")
    return json.loads(lines[-1])


def machine() -> dict[str, object]:
    """Cores and CPU model: timings mean little without them (and the machine may be shared)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            mem_gib = round(int(handle.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        mem_gib = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": mem_gib, "python": platform.python_version(),
            "loadavg_1m_at_start": round(load[0], 2) if load else None}


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned text table; floats get 4 significant digits (thousands as integers), None prints as '-'."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_result(result: dict, path: str) -> None:
    """Save a benchmark's figures as JSON (what README quotes comes from these files)."""
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    print(f"written to {path}")


def add_privacy_args(ap) -> None:
    """``--max-epsilon`` / ``--delta``: run the benchmark's training under differential privacy."""
    ap.add_argument("--max-epsilon", type=float, help="train with differential privacy under this budget")
    ap.add_argument("--delta", type=float, help="DP delta (default: spark-synth's)")


def privacy_figures(meta: dict) -> dict:
    """The privacy figures of a generator's ``meta.json`` (empty without DP)."""
    if "privacy" not in meta:
        return {}
    privacy = meta["privacy"]
    return {"epsilon": privacy["epsilon"], "delta": privacy["delta"], "training_epsilon": privacy["training_epsilon"],
            "dp_sgd": " | ".join(f"noise {r['noise_multiplier']:.2f}, rate {r['sample_rate']:.4f}, {r['steps']} steps"
                                 for r in privacy["dp_sgd"]),
            "statistics_noise_std": round(privacy["statistics"]["noise_std"], 1)}


def process_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM/Pss in KiB and the parent pid of one process, from /proc (no psutil needed)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "PPid"):
                out[key] = int(value.split()[0])
    return out


def _pss(pid: int) -> int:
    """Proportional set size in KiB: forked workers share pages with their daemon, so RSS sums overcount."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root: int) -> dict[int, tuple[str, dict[str, int]]]:
    """root and all its descendants: pid -> (role, status); role is driver, jvm or workers."""
    procs: dict[int, tuple[str, dict[str, int]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm", encoding="utf-8") as handle:
                    comm = handle.read().strip()
                procs[int(name)] = (comm, process_status(int(name)))
            except (OSError, ValueError):
                continue
    children: dict[int, list[int]] = {}
    for pid, (_, status) in procs.items():
        children.setdefault(status.get("PPid", 0), []).append(pid)
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in procs:
            comm, status = procs[pid]
            tree[pid] = ("driver" if pid == root else "jvm" if comm == "java" else "workers", status)
            frontier += children.get(pid, [])
    return tree


class MemorySampler(threading.Thread):
    """Samples the RSS of driver, JVM and Python workers (summed) and the total PSS every 0.2 s.

    Keeps the peak of each per phase. Workers may exit between samples, so peaks are a lower bound.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.phase = "setup"
        self.peaks: dict[str, dict[str, float]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            mib: dict[str, float] = {"driver": 0.0, "jvm": 0.0, "workers": 0.0, "total_pss": 0.0, "n_workers": 0}
            for pid, (role, status) in process_tree(os.getpid()).items():
                mib[role] += status.get("VmRSS", 0) / 1024
                mib["total_pss"] += _pss(pid) / 1024
                mib["n_workers"] += role == "workers"
            peak = self.peaks.setdefault(self.phase, dict.fromkeys(mib, 0.0))
            for key, value in mib.items():
                peak[key] = max(peak[key], value)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
