"""Cross-check ``accuracy_summary`` against the independent referee, mostlyai-qa (via shared/tools/score.py).

Two cases on census: train vs holdout (same distribution) and train vs a degraded copy of train where
30% of each column's values are shuffled among themselves (marginals kept, joint partly broken).
score.py fits its bins on training + holdout (mostlyai-qa pools them), so ours is shown both ways:
real = train (how the product uses it) and real = train + holdout (the referee's exact setting).

usage: .venv/bin/python benchmarks/accuracy_vs_mostlyai_qa.py [--qa-python P] [--score S] [--data DIR] [--out F]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import DEFAULT_DATA_DIR, RESULTS_DIR, SCORE, default_qa_python, machine, write_result

from spark_synth.evaluation.accuracy import accuracy_summary
from spark_synth.spark.session import get_spark


def degrade(pdf: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Shuffle ``share`` of each column's values among the same rows, column by column."""
    rng = np.random.default_rng(seed)
    out = pdf.copy()
    for col in out.columns:
        rows = rng.choice(len(out), size=int(share * len(out)), replace=False)
        values = out[col].to_numpy().copy()
        values[rows] = values[rng.permutation(rows)]
        out[col] = values
    return out


def referee(qa_python: str, score: str, syn: Path, trn: Path, hol: Path, label: str) -> dict:
    """Run score.py in its own venv and return its JSON line."""
    cmd = [qa_python, score, "flat", str(syn), str(trn), str(hol), "--label", label]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qa-python", default=default_qa_python())
    ap.add_argument("--score", default=SCORE)
    ap.add_argument("--data", default=DEFAULT_DATA_DIR)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", default=str(Path(RESULTS_DIR) / "accuracy_vs_mostlyai_qa.json"))
    args = ap.parse_args()

    data = Path(args.data)
    trn_path, hol_path = data / "census_train.parquet", data / "census_holdout.parquet"
    tmp = Path(tempfile.mkdtemp(prefix="acc_bench_"))
    deg_path = tmp / "census_train_degraded30.parquet"
    degrade(pd.read_parquet(trn_path), 0.3, seed=0).to_parquet(deg_path, index=False)

    spark = get_spark(args.master)
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    trn, hol = spark.read.parquet(str(trn_path)), spark.read.parquet(str(hol_path))
    pooled = trn.unionByName(hol)
    cases = [("train vs holdout", hol_path, hol), ("train vs degraded 30%", deg_path, None)]

    rows = []
    for name, syn_path, syn in cases:
        syn = syn if syn is not None else spark.read.parquet(str(syn_path))
        t0 = time.time()
        ours_trn = accuracy_summary(trn, syn)
        ours_s = time.time() - t0
        ours_pool = accuracy_summary(pooled, syn)
        t0 = time.time()
        qa = referee(args.qa_python, args.score, syn_path, trn_path, hol_path, name.replace(" ", "_"))
        qa_s = time.time() - t0
        rows.append((name, ours_trn, ours_pool, qa, ours_s, qa_s))

    head = f"{'case':<22} {'metric':<11} {'ours real=trn':>14} {'ours real=trn+hol':>18} {'mostlyai-qa':>12} {'|diff|':>8}"
    print(head)
    print("-" * len(head))
    for name, ours_trn, ours_pool, qa, ours_s, qa_s in rows:
        for metric in ("univariate", "bivariate"):
            diff = abs(ours_pool[metric] - qa[metric])
            print(
                f"{name:<22} {metric:<11} {ours_trn[metric]:>14.5f} {ours_pool[metric]:>18.5f}"
                f" {qa[metric]:>12.5f} {diff:>8.5f}"
            )
        print(f"{'':<22} {'seconds':<11} {ours_s:>14.1f} {'':>18} {qa_s:>12.1f}  (qa: whole report)")
    print("|diff| = ours with real=train+hol (the referee's setting) vs mostlyai-qa")
    write_result({"benchmark": "accuracy_vs_mostlyai_qa", "machine": machine(), "cases": [
        {"case": name, "seconds_ours": round(ours_s, 1), "seconds_referee": round(qa_s, 1)}
        | {f"{metric}_{side}": round(figures[metric], 5) for metric in ("univariate", "bivariate")
           for side, figures in (("ours_real_train", ours_trn), ("ours_real_pooled", ours_pool), ("referee", qa))}
        for name, ours_trn, ours_pool, qa, ours_s, qa_s in rows]}, args.out)
    spark.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
