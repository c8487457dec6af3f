"""`spark-synth evaluate` against the independent referee (mostlyai-qa via ../shared/tools/score.py).

Trains a census generator and a baseball (players -> batting) generator for a few minutes, generates as
many rows / subjects as the training splits, and scores the *same* synthetic files with both tools.
The issue's tolerances: univariate, bivariate and coherence within 0.01, DCR share within 0.02. Then the
membership audit on two planted cases (census): a leaky "synthetic" set (the training rows with 10% of
the values of each column replaced by another row's) must score an AUC clearly above 0.5; half of the
holdout used as "synthetic" data (against the other half) about 0.5. Finally the census report is
rendered in headless Chromium and the screenshot checked for the plots' colours.

    .venv/bin/python benchmarks/evaluate_vs_mostlyai_qa.py [--minutes 3] [--only census|baseball]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd
from common import REPO, RESULTS_DIR, default_qa_python, machine, referee, table, write_result

DATA = os.path.join(REPO, "..", "shared", "data")
TOLERANCE = {"univariate": 0.01, "bivariate": 0.01, "coherence": 0.01, "dcr_share": 0.02}
SYNTHETIC_TEAL = (0x1F, 0x9E, 0x89)  # plots.SYNTHETIC: visible bars mean the plots rendered


def census_paths() -> dict[str, str]:
    return {s: os.path.abspath(os.path.join(DATA, "census", f"census_{s}.parquet")) for s in ("train", "holdout")}


def baseball_paths() -> dict[str, str]:
    return {f"{t}_{s}": os.path.abspath(os.path.join(DATA, "baseball", f"{t}_{s}.parquet"))
            for t in ("players", "batting") for s in ("train", "holdout")}


def train_and_generate(spark, work: str, name: str, minutes: float) -> str:
    from spark_synth import generate, train
    from spark_synth.config import GenerateConfig, TrainConfig

    tracking = f"sqlite:///{os.path.join(work, 'mlflow.db')}"
    model, output = os.path.join(work, f"{name}-model"), os.path.join(work, f"{name}-synthetic")
    common = {"model_dir": model, "max_minutes": minutes, "tracking_uri": tracking, "experiment": "evaluate-bench",
              "progress": False, "quality_rows": 0, "work_dir": work}
    if name == "census":
        paths = census_paths()
        train(TrainConfig(data=paths["train"], **common), spark)
        generate(GenerateConfig(model=model, rows=len(pd.read_parquet(paths["train"])), output=output), spark)
    else:
        paths = baseball_paths()
        train(TrainConfig(subjects=paths["players_train"], subject_key="id", events=paths["batting_train"],
                          foreign_key="players_id", order_by="year", **common), spark)
        n = len(pd.read_parquet(paths["players_train"]))
        generate(GenerateConfig(model=model, subjects=n, output=output), spark)
    return output


def ours(spark, settings: dict, report: str | None = None) -> tuple[dict, float]:
    from spark_synth.config import EvaluateConfig
    from spark_synth.stages.evaluate import run_evaluation

    started = time.monotonic()
    outcome = run_evaluation(EvaluateConfig(**settings, mlflow=False, progress=False, report=report), spark)
    return outcome.evaluation.headline, time.monotonic() - started


def compare(name: str, mine: dict, qa: dict, keys: list[str]) -> list[list[object]]:
    rows = []
    for key in keys:
        theirs = qa.get(key)
        value = mine.get({"overall": "accuracy_overall"}.get(key, f"accuracy_{key}" if key in (
            "univariate", "bivariate", "trivariate") else key))
        diff = None if theirs is None or value is None else abs(value - theirs)
        verdict = "" if key not in TOLERANCE or diff is None else (
            f"<= {TOLERANCE[key]} " + ("ok" if diff <= TOLERANCE[key] else "MISSED"))
        rows.append([name, key, value, theirs, diff, verdict])
    return rows


def screenshot(report: str, png: str) -> dict:
    """Render the report in headless Chromium; count pixels in the synthetic bars' colour."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium on PATH: install it (Debian: apt-get install chromium) for the screenshot")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,4000", f"--screenshot={png}", f"file://{os.path.abspath(report)}"],
                   check=True, capture_output=True, timeout=180)
    from matplotlib.image import imread

    pixels = (imread(png)[..., :3] * 255).round().astype(int)
    teal = np.all(np.abs(pixels - np.array(SYNTHETIC_TEAL)) <= 8, axis=-1).mean()
    return {"screenshot": os.path.relpath(png, REPO), "teal_pixel_share": float(teal),
            "plots_visible": bool(teal > 0.005)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget per generator")
    ap.add_argument("--only", choices=["census", "baseball"])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--qa-python", default=default_qa_python())
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "evaluate_vs_mostlyai_qa.json"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    from spark_synth.evaluation.membership import planted_leak
    from spark_synth.spark.session import get_spark

    host = machine()
    spark = get_spark(args.master)
    work = tempfile.mkdtemp(prefix="bench-evaluate-")
    rows: list[list[object]] = []
    result: dict = {"benchmark": "evaluate_vs_mostlyai_qa", "minutes": args.minutes, "machine": host}
    try:
        if args.only in (None, "census"):
            paths = census_paths()
            synthetic = train_and_generate(spark, work, "census", args.minutes)
            report = os.path.join(work, "census-report.html")
            mine, seconds = ours(spark, {"synthetic": synthetic, "training": paths["train"],
                                         "holdout": paths["holdout"], "target": "income"}, report)
            qa = referee(args.qa_python, ["flat", synthetic, paths["train"], paths["holdout"], "--target", "income",
                                          "--label", "census_evaluate", "--report-dir", work])
            rows += compare("census", mine, qa, ["univariate", "bivariate", "trivariate", "overall", "dcr_share",
                                                 "dcr_training", "dcr_holdout"])
            rows += [["census", "tstr (ours / score.py)", mine.get("utility_tstr"), qa.get("tstr_auc"), None, ""],
                     ["census", "seconds", seconds, qa.get("referee_s"), None, ""]]
            result["census"] = {"ours": mine, "referee": qa, "seconds": seconds}
            result["census"] |= screenshot(report, os.path.join(RESULTS_DIR, "report_census.png"))

            train = pd.read_parquet(paths["train"])
            holdout = pd.read_parquet(paths["holdout"]).sample(frac=1, random_state=0)
            leaky, half_a, half_b = (os.path.join(work, f) for f in ("leaky.parquet", "hol_a.parquet", "hol_b.parquet"))
            planted_leak(train, 0.1, seed=0).to_parquet(leaky, index=False)
            holdout.iloc[: len(holdout) // 2].to_parquet(half_a, index=False)
            holdout.iloc[len(holdout) // 2:].to_parquet(half_b, index=False)
            audits = {}
            for case, syn, hol in (("leaky (training, 10% perturbed)", leaky, paths["holdout"]),
                                   ("holdout half (never trained on)", half_a, half_b)):
                figures, _ = ours(spark, {"synthetic": syn, "training": paths["train"], "holdout": hol})
                audits[case] = {k: figures[k] for k in ("membership_auc", "membership_auc_low", "membership_auc_high",
                                                        "membership_closest_record_auc", "dcr_share",
                                                        "identical_training", "identical_holdout")}
            result["audit"] = audits
        if args.only in (None, "baseball"):
            paths = baseball_paths()
            synthetic = train_and_generate(spark, work, "baseball", args.minutes)
            settings = {f"{side}_{part}": os.path.join(synthetic, part) for side, part in
                        (("synthetic", "subjects"), ("synthetic", "events"))}
            settings |= {"training_subjects": paths["players_train"], "training_events": paths["batting_train"],
                         "holdout_subjects": paths["players_holdout"], "holdout_events": paths["batting_holdout"],
                         "subject_key": "id", "foreign_key": "players_id", "order_by": "year"}
            mine, seconds = ours(spark, settings)
            qa = referee(args.qa_python, ["logs", os.path.join(synthetic, "subjects"), os.path.join(synthetic, "events"),
                                          paths["players_train"], paths["batting_train"], paths["players_holdout"],
                                          paths["batting_holdout"], "--key", "id", "--fk", "players_id",
                                          "--label", "baseball_evaluate", "--report-dir", work])
            rows += compare("baseball", mine, qa, ["univariate", "bivariate", "trivariate", "coherence", "overall",
                                                   "dcr_share", "dcr_training", "dcr_holdout"])
            rows.append(["baseball", "seconds", seconds, qa.get("referee_s"), None, ""])
            result["baseball"] = {"ours": mine, "referee": qa, "seconds": seconds}
    finally:
        spark.stop()
        if args.keep:
            print(f"working directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nspark-synth evaluate vs mostlyai-qa, generators trained {args.minutes} min, {host['nproc']} x "
          f"{host['cpu']}, load {host['loadavg_1m_at_start']}")
    print(table(["data", "figure", "spark-synth", "mostlyai-qa", "|diff|", "tolerance"], rows))
    if "audit" in result:
        print("\nmembership audit (census)")
        print(table(["synthetic data", "attack AUC", "95% CI", "closest-record AUC", "DCR share", "identical trn/hol"],
                    [[case, a["membership_auc"], f"{a['membership_auc_low']:.3f}-{a['membership_auc_high']:.3f}",
                      a["membership_closest_record_auc"], a["dcr_share"],
                      f"{a['identical_training']:.4f} / {a['identical_holdout']:.4f}"] for case, a in result["audit"].items()]))
    if "census" in result:
        print(f"\nreport screenshot: {result['census']['screenshot']} (plots visible: {result['census']['plots_visible']},"
              f" {result['census']['teal_pixel_share']:.1%} of pixels in the synthetic bars' colour)")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
