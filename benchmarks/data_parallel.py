"""Data-parallel training benchmark: samples/s on 1 and 2 processes per backend, and census quality on
``local-cluster[2,1,1024]`` with TorchDistributor against the local backend under the same time budget.

Why: the data-parallel issue's acceptance. Every training is a fresh ``spark-synth train`` process (no
warm caches shared between configurations), on the full census training table, with the after-training
evaluation off; samples/s is what the trainer reports (samples through the model / training seconds,
over all ranks). Quality: each generator writes as many rows as the holdout and the referee
(``../shared/tools/score.py``, mostlyai-qa) scores them against census_train / census_holdout.

    .venv/bin/python benchmarks/data_parallel.py [--epochs 3] [--minutes 3] [--skip-quality]

On a 2-core machine, 2 processes have one core each while 1 process has both: the table shows the
cost of the exchange and the process overhead here, not the speed-up on a cluster of larger machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import census_parser, machine, referee, table, write_result

THROUGHPUT = [  # (backend, processes, DP)
    ("local", 1, False), ("torch-distributor", 1, False), ("torch-distributor", 2, False),
    ("horovod", 1, False), ("horovod", 2, False),
    ("local", 1, True), ("torch-distributor", 2, True), ("horovod", 2, True),
]


def parse_args() -> argparse.Namespace:
    ap = census_parser(__doc__, "data_parallel.json")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per throughput run (DP: the epoch cap of the plan)")
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget of each quality run")
    ap.add_argument("--skip-quality", action="store_true")
    return ap.parse_args()


def spark_synth(work: str, *argv: str) -> float:
    """Run the CLI in a fresh process; returns its wall seconds (exits on failure)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "spark_synth.face.cli", *argv], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"spark-synth {' '.join(argv)} failed with exit {done.returncode}")
    return time.monotonic() - started


def train(work: str, name: str, data: str, master: str, backend: str, processes: int, *extra: str) -> dict:
    model_dir = os.path.join(work, name)
    seconds = spark_synth(work, "train", "--config", os.path.join(work, "bench.yaml"), "--data", data,
                          "--model-dir", model_dir, "--master", master, "--backend", backend,
                          "--num-processes", str(processes), "--tracking-uri", f"sqlite:///{work}/mlflow.db", *extra)
    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as handle:
        return {**json.load(handle), "process_seconds": seconds, "model_dir": model_dir}


def throughput(args: argparse.Namespace, work: str, data: str) -> list[dict]:
    rows = []
    for backend, processes, private in THROUGHPUT:
        extra = ["--max-epochs", str(args.epochs), "--max-minutes", "30"] + (["--max-epsilon", "4"] if private else [])
        meta = train(work, f"{backend}-{processes}-{private}", data, "local[2]", backend, processes, *extra)
        row = {"backend": backend, "processes": processes, "dp": private, "samples_per_s": meta["samples_per_second"],
               "train_s": meta["train_seconds"], "process_s": round(meta["process_seconds"], 1),
               "threads": meta["ranks"][0]["threads"], "epsilon": meta.get("privacy", {}).get("epsilon")}
        rows.append(row)
        print(row, flush=True)
    for row in rows:  # the ratio to one local process with the same privacy setting
        base = next(r for r in rows if r["backend"] == "local" and r["dp"] == row["dp"])
        row["vs_local"] = round(row["samples_per_s"] / base["samples_per_s"], 3)
    return rows


def quality(args: argparse.Namespace, work: str, data: str, holdout: str) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    n = pq.ParquetFile(holdout).metadata.num_rows
    for label, master, backend, processes in [("local, local[2]", "local[2]", "local", 1),
                                              ("torch-distributor, local-cluster[2,1,1024]",
                                               "local-cluster[2,1,1024]", "torch-distributor", 2)]:
        name = backend
        meta = train(work, name, data, master, backend, processes, "--max-minutes", str(args.minutes))
        output = os.path.join(work, f"synthetic-{name}")
        spark_synth(work, "generate", "--model", meta["model_dir"], "--rows", str(n), "--output", output,
                    "--master", "local[2]", "--tracking-uri", f"sqlite:///{work}/mlflow.db")
        scores = referee(args.qa_python, ["flat", output, data, holdout])
        rows.append({"run": label, "epochs": meta["epochs"], "samples_per_s": meta["samples_per_second"],
                     "overall": scores["overall"], "univariate": scores["univariate"],
                     "bivariate": scores["bivariate"], "trivariate": scores["trivariate"],
                     "dcr_share": scores["dcr_share"]})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    args = parse_args()
    data = os.path.join(args.data_dir, "census_train.parquet")
    holdout = os.path.join(args.data_dir, "census_holdout.parquet")
    work = tempfile.mkdtemp(prefix="bench-dp-")
    with open(os.path.join(work, "bench.yaml"), "w", encoding="utf-8") as handle:
        handle.write("quality_rows: 0\nprogress: false\nseed: 0\n")  # training only: no after-training evaluation
    result = {"machine": machine(), "epochs": args.epochs, "minutes": args.minutes,
              "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    try:
        result["throughput"] = throughput(args, work, data)
        print(table(["backend", "processes", "DP", "samples/s", "vs local", "train s", "threads/process", "epsilon"],
                    [[r["backend"], r["processes"], "yes" if r["dp"] else "no", r["samples_per_s"], r["vs_local"],
                      r["train_s"], r["threads"], r["epsilon"]] for r in result["throughput"]]))
        if not args.skip_quality:
            result["quality"] = quality(args, work, data, holdout)
            gap = result["quality"][1]["overall"] - result["quality"][0]["overall"]
            result["overall_gap"] = round(gap, 4)
            print(table(["run", "epochs", "samples/s", "overall", "univariate", "bivariate", "trivariate", "DCR share"],
                        [[r["run"], r["epochs"], r["samples_per_s"], r["overall"], r["univariate"], r["bivariate"],
                          r["trivariate"], r["dcr_share"]] for r in result["quality"]]))
            print(f"overall accuracy, torch-distributor on local-cluster minus local: {gap:+.4f} (bar: within 0.01)")
        write_result(result, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
