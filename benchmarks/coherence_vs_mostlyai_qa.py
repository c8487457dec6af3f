"""Cross-check ``coherence_summary`` against the independent referee, mostlyai-qa's ``accuracy.coherence``.

Baseball logs: players (subject table, key ``id``) and their batting seasons (events, foreign key
``players_id``, ordered by ``year``). As in ``../shared/tools/score.py logs``, the referee gets the train
and holdout splits as training and holdout data, and pools them as its "original" data; ours therefore
runs with real = train + holdout. The synthetic side is, per case:

- ``holdout``: the real holdout players and seasons (a same-distribution sample),
- ``dealt``: the holdout seasons dealt to random holdout players (lengths kept, careers broken),
- ``scrambled``: per holdout player, the years stay in order but the other columns' rows are permuted
  (same events per player, only the order within careers is broken),
- ``first-season``: each holdout player's first season only (every sequence has length 1).

The referee runs in its own venv (a subprocess) on the same Parquet files; it is called the way
score.py calls it, and its per-part accuracies are read back from its statistics directory.

Ours is set up as the referee works, so that the two should agree: events in the order their rows lie
in the files (the referee's order; ``order_by`` a row-position column, as seasons of one year keep their
stint order there) and ``independent_draws=True`` (the synthetic players are also in the real pool;
the default would draw the same pair for them on both sides). Both sides draw one consecutive pair per
subject at random, so that figure carries sampling noise: ``--seeds`` repeats both with several seeds
(ours: ``seed=``, the referee: ``qa.set_random_state``) and compares the means. For the holdout case,
two more rows show the product's setting: ``order_by="year"`` (ties within a year then ordered by the
other columns), with independent and with the default shared draws.

usage: .venv/bin/python benchmarks/coherence_vs_mostlyai_qa.py [--qa-python P] [--data DIR] [--seeds 0 1 2]
                                                               [--cases holdout dealt ...] [--out FILE]
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
from common import REPO, default_qa_python, machine, table, write_result

from spark_synth.evaluation.coherence import coherence_summary
from spark_synth.spark.session import get_spark

DEFAULT_DATA = str(Path(REPO).parent / "shared" / "data" / "baseball")
KEY, FK, ORDER = "id", "players_id", "year"
ROW = "_row"  # a row's position in its file: the referee's order within a subject
CASES = ("holdout", "dealt", "scrambled", "first-season")
METRICS = (
    "coherence",
    "consecutive_pairs",
    "distinct_per_subject",
    "subjects_per_category",
    "sequence_length_nonempty",
)

# Runs in the referee's venv: the same preparation as score.py's "logs" mode, then qa.report, then the
# per-part accuracies from the statistics it stores. Prints one JSON line.
REFEREE = r"""
import json, os, sys, tempfile, time
import pandas as pd
from mostlyai import qa
from mostlyai.qa._filesystem import Statistics

a = json.loads(sys.argv[1])
ss, se, ts, te, hs, he = (pd.read_parquet(a[k]) for k in ("syn_subj", "syn_ev", "trn_subj", "trn_ev", "hol_subj", "hol_ev"))
ss = ss[ts.columns]; se = se[te.columns]
for df in (ss, ts, hs):
    df[a["key"]] = df[a["key"]].astype(str)
for df in (se, te, he):
    df[a["fk"]] = df[a["fk"]].astype(str)
qa.set_random_state(a["seed"])
work = tempfile.mkdtemp(prefix="qa_coherence_")
t0 = time.time()
_, m = qa.report(syn_tgt_data=se, trn_tgt_data=te, hol_tgt_data=he, syn_ctx_data=ss, trn_ctx_data=ts,
                 hol_ctx_data=hs, ctx_primary_key=a["key"], tgt_context_key=a["fk"],
                 report_path=os.path.join(work, "report.html"), statistics_path=os.path.join(work, "stats"),
                 max_sample_size_embeddings=a["embeddings"])
st = Statistics(os.path.join(work, "stats"))
uni, biv = st.load_univariate_accuracies(), st.load_bivariate_accuracies()
nxt = biv[(biv["type"] == "nxt") & biv["col1"].str.startswith("tgt::")]
cats = st.load_distinct_categories_per_sequence_accuracy()
seqs = st.load_sequences_per_distinct_category_accuracy()
per_column = {c[5:]: {"consecutive_pairs": float(v)} for c, v in zip(nxt["col1"], nxt["accuracy"])}
for df, name in ((cats, "distinct_per_subject"), (seqs, "subjects_per_category")):
    for c, v in zip(df["column"], df["accuracy"]):
        per_column.setdefault(c, {})[name] = float(v)
print(json.dumps({
    "coherence": float(m.accuracy.coherence), "coherence_max": float(m.accuracy.coherence_max),
    "consecutive_pairs": float(nxt["accuracy"].mean()), "distinct_per_subject": float(cats["accuracy"].mean()),
    "subjects_per_category": float(seqs["accuracy"].mean()),
    "sequence_length_nonempty": float(uni.loc[uni["column"] == "tgt::Sequence Length", "accuracy"].iloc[0]),
    "per_column": per_column, "seconds": round(time.time() - t0, 1),
}))
"""


def perturb(events: pd.DataFrame, case: str, seed: int = 0) -> pd.DataFrame:
    """The synthetic events of a case, sorted by player and year (ties in their original order)."""
    if case == "holdout":
        return events
    rng = np.random.default_rng(seed)
    out = events.sort_values([FK, ORDER], kind="stable").reset_index(drop=True)
    others = [c for c in out.columns if c not in (FK, ORDER)]
    if case == "dealt":
        out[FK] = rng.permutation(out[FK].to_numpy())
    elif case == "scrambled":
        shuffled = np.arange(len(out))
        for positions in out.groupby(FK, sort=False).indices.values():
            shuffled[positions] = rng.permutation(positions)
        for c in others:
            out[c] = out[c].to_numpy()[shuffled]
    elif case == "first-season":
        out = out.groupby(FK, sort=False).head(1)
    else:
        raise ValueError(f"unknown case {case!r}")
    return out.sort_values([FK, ORDER], kind="stable").reset_index(drop=True)


def referee(qa_python: str, paths: dict[str, str], seed: int, embeddings: int) -> dict:
    """mostlyai-qa in its own venv; returns its JSON line."""
    args = dict(paths, key=KEY, fk=FK, seed=seed, embeddings=embeddings)
    proc = subprocess.run([qa_python, "-c", REFEREE, json.dumps(args)], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the referee failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qa-python", default=default_qa_python())
    ap.add_argument("--data", default=DEFAULT_DATA, help="holds players_/batting_{train,holdout}.parquet")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="pair draws to average (both sides)")
    ap.add_argument("--embeddings", type=int, default=1000, help="referee's embedding sample (not coherence)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    data = Path(args.data)
    files = {
        "trn_subj": data / "players_train.parquet",
        "trn_ev": data / "batting_train.parquet",
        "hol_subj": data / "players_holdout.parquet",
        "hol_ev": data / "batting_holdout.parquet",
    }
    tmp = Path(tempfile.mkdtemp(prefix="coherence_bench_"))
    spark = get_spark(args.master)
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    train, holdout = pd.read_parquet(files["trn_ev"]), pd.read_parquet(files["hol_ev"])
    columns = [c for c in holdout.columns if c != FK]

    def with_rows(events: pd.DataFrame):
        return spark.createDataFrame(events.assign(**{ROW: np.arange(len(events))}))

    real = with_rows(pd.concat([train, holdout], ignore_index=True))
    real_keys = spark.read.parquet(str(files["trn_subj"])).select(KEY)
    real_keys = real_keys.unionByName(spark.read.parquet(str(files["hol_subj"])).select(KEY))
    syn_keys = spark.read.parquet(str(files["hol_subj"])).select(KEY)

    results: dict[str, dict] = {}
    try:
        for case in args.cases:
            syn_path = files["hol_ev"] if case == "holdout" else tmp / f"batting_{case}.parquet"
            synthetic = perturb(holdout, case)
            if case != "holdout":
                synthetic.to_parquet(syn_path, index=False)
            syn = with_rows(synthetic)
            paths = {k: str(v) for k, v in files.items()} | {
                "syn_subj": str(files["hol_subj"]),
                "syn_ev": str(syn_path),
            }
            ours, qa = [], []
            for seed in args.seeds:
                t0 = time.time()
                summary = coherence_summary(
                    real, syn, FK, columns, ROW, real_keys, syn_keys, seed=seed, independent_draws=True
                )
                summary["seconds"] = round(time.time() - t0, 1)
                if case == "holdout":  # the product's setting: order by year, then the other columns
                    for label, independent in (("", True), (", shared draws", False)):
                        product = coherence_summary(
                            real,
                            syn,
                            FK,
                            columns,
                            ORDER,
                            real_keys,
                            syn_keys,
                            seed=seed,
                            independent_draws=independent,
                        )
                        for metric in ("coherence", "consecutive_pairs"):
                            summary[f"{metric} [order_by=year{label}]"] = product[metric]
                ours.append(summary)
                qa.append(referee(args.qa_python, paths, seed, args.embeddings))
                print(
                    f"{case} seed {seed}: ours {summary['coherence']:.4f} ({summary['seconds']} s), "
                    f"mostlyai-qa {qa[-1]['coherence']:.4f} ({qa[-1]['seconds']} s)",
                    flush=True,
                )
            results[case] = {"ours": ours, "mostlyai_qa": qa}
    finally:
        spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for case, both in results.items():
        for metric in METRICS:
            ours = np.array([s[metric] for s in both["ours"]])
            qa = np.array([s[metric] for s in both["mostlyai_qa"]])
            spread = f"{ours.std():.4f} / {qa.std():.4f}" if len(ours) > 1 else "-"
            rows.append(
                [case, metric, float(ours.mean()), float(qa.mean()), abs(ours.mean() - qa.mean()), spread]
            )
        for metric in [k for k in both["ours"][0] if "[order_by" in k]:
            ours = np.array([s[metric] for s in both["ours"]])
            qa = np.array([s[metric.split()[0]] for s in both["mostlyai_qa"]])
            spread = f"{ours.std():.4f} / {qa.std():.4f}" if len(ours) > 1 else "-"
            rows.append(
                [case, metric, float(ours.mean()), float(qa.mean()), abs(ours.mean() - qa.mean()), spread]
            )
        ours_len = np.mean([s["sequence_length"] for s in both["ours"]])
        rows.append([case, "sequence_length (with empty)", float(ours_len), None, None, "-"])
        qa_max = np.mean([s["coherence_max"] for s in both["mostlyai_qa"]])
        rows.append([case, "coherence_max (qa: holdout-sized ceiling)", None, float(qa_max), None, "-"])
    print(
        f"\ncoherence vs mostlyai-qa, baseball, real = train + holdout, seeds {args.seeds}, "
        f"{machine()['nproc']} cores"
    )
    print(table(["case", "metric", "ours", "mostlyai-qa", "|diff|", "sd ours / qa"], rows))
    worst = max((r[4] for r in rows if r[4] is not None and r[1] == "coherence"), default=None)
    if worst is not None:
        print(
            f"largest |diff| of coherence: {worst:.4f} (target <= 0.01); means over {len(args.seeds)} seed(s)"
        )
    for case, both in results.items():
        worst = []
        for column in both["ours"][0]["per_column"]:
            for part in METRICS[1:4]:
                ours = np.mean([s["per_column"][column][part] for s in both["ours"]])
                qa = np.mean([s["per_column"][column][part] for s in both["mostlyai_qa"]])
                worst.append((abs(ours - qa), f"{column} {part}"))
        diff, where = max(worst)
        print(f"{case}: largest per-column |diff| {diff:.4f} ({where})")
    lengths = results[next(iter(results))]["ours"][0]
    print(f"length real: {lengths['length_real']}")
    for case, both in results.items():
        print(f"length {case}: {both['ours'][0]['length_synthetic']}")
    if args.out:
        write_result(
            {
                "benchmark": "coherence_vs_mostlyai_qa",
                "seeds": args.seeds,
                "machine": machine(),
                "results": results,
            },
            args.out,
        )


if __name__ == "__main__":
    main()
