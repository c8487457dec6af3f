"""The evaluation as one self-contained HTML page: headline figures, then the plots and tables behind them.

Everything is inline (CSS and base64 PNG), so the file can be mailed, attached to an MLflow run or opened
offline. Column names and bin labels come from the data and are escaped; bin labels are the accuracy
bins (categories held by at least five real rows, quantile edges), never single records.
"""

from __future__ import annotations

import html
import math
from typing import Any

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1180px;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;font-size:.9em} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:1.5em} .card span{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} td,th{border-bottom:1px solid #eee;padding:4px 10px;
text-align:right} td:first-child,th:first-child{text-align:left} img{max-width:100%;margin:.5em 0}
.note{color:#555;font-size:.88em;max-width:900px}
"""


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.1%}" if percent else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _card(label: str, value: Any, detail: str = "", percent: bool = False) -> str:
    return f'<div class="card"><b>{_fmt(value, percent)}</b><span>{html.escape(label)}</span>' + (
        f'<br><span>{html.escape(detail)}</span>' if detail else "") + "</div>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(data: str | None, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">' if data else ""


def _accuracy_section(title: str, accuracy: dict, plots: dict[str, str], key: str) -> str:
    expected = accuracy["expected"]
    rows = [[name, accuracy[name], expected[name]] for name in ("univariate", "bivariate", "trivariate")]
    rows.append(["overall", accuracy["overall"], expected["overall"]])
    weakest = sorted(accuracy["per_column"].items(), key=lambda kv: kv[1])[:8]
    weakest_pairs = sorted(accuracy["per_pair"].items(), key=lambda kv: kv[1])[:8]
    return (
        f"<h2>{html.escape(title)}</h2>"
        '<p class="note">1 − total variation distance between real and synthetic binned distributions (10 quantile '
        "bins per number or date, the 10 most frequent categories plus “other”, nulls on their own), bins fitted on "
        "training + holdout. The ceiling is what a sample of the real distribution as large as the synthetic data "
        "reaches on average: sampling noise alone keeps a perfect generator below 1.</p>"
        + _table(["accuracy", "synthetic", "ceiling (same-size holdout)"], rows)
        + "<p>Weakest columns</p>" + _table(["column", "accuracy"], [[c, a] for c, a in weakest])
        + ("<p>Weakest pairs</p>" + _table(["pair", "accuracy"], [[c.replace("|", " × "), a] for c, a in weakest_pairs])
           if weakest_pairs else "")
        + _image(plots.get(f"{key}distributions"), "distributions, real vs synthetic")
        + _image(plots.get(f"{key}association"), "association matrices, real vs synthetic")
    )


def render(result: dict, headline: dict[str, float], plots: dict[str, str]) -> str:
    """The whole page for an evaluation ``result`` (see ``evaluation.evaluate``)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(result['title'])}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(result['title'])}</h1>",
             f"<p class='sub'>{html.escape(result['created'])} · spark-synth {html.escape(result['version'])} · "
             + " · ".join(f"{html.escape(k)}: {_fmt(v)}" for k, v in result["rows"].items()) + "</p>"]
    cards = [_card("overall accuracy", headline.get("accuracy_overall"),
                   f"ceiling {_fmt(headline.get('accuracy_expected_overall'))}")]
    if "coherence" in headline:
        cards.append(_card("coherence", headline["coherence"]))
    cards += [_card("DCR share", headline.get("dcr_share"), "ideal 50%; training ≫ holdout is a leak", percent=True),
              _card("membership attack AUC", headline.get("membership_auc"),
                    f"95% CI {_fmt(headline.get('membership_auc_low'))}–{_fmt(headline.get('membership_auc_high'))}"),
              _card("identical to training", headline.get("identical_training"),
                    f"to holdout {_fmt(headline.get('identical_holdout'), True)}", percent=True)]
    if "utility_tstr" in headline:
        cards.append(_card(f"TSTR {result['utility']['metric']}", headline["utility_tstr"],
                           f"TRTR {_fmt(headline['utility_trtr'])}"))
    if "epsilon" in headline:
        cards.append(_card("DP epsilon", headline["epsilon"], f"delta {headline.get('delta', 0):.2g}"))
    parts.append('<div class="cards">' + "".join(cards) + "</div>")

    if result["kind"] == "log":
        if result["subject_accuracy"]:  # None when subjects have only their key
            parts.append(_accuracy_section("Subject table accuracy", result["subject_accuracy"], plots, "subject_"))
        parts.append(_accuracy_section("Event accuracy (one random event per subject, beside its subject)",
                                       result["accuracy"], plots, ""))
        coherence = result["coherence"]
        parts.append(
            "<h2>Sequences</h2><p class='note'>Coherence: consecutive-event pairs, distinct categories per subject "
            "and subjects per category, each 1 − TVD (mostlyai-qa's definition).</p>"
            + _table(["figure", "value"], [[k.replace("_", " "), coherence[k]] for k in (
                "coherence", "consecutive_pairs", "distinct_per_subject", "subjects_per_category",
                "sequence_length")])
            + _table(["events per subject", "mean", "p50", "p90", "max", "subjects", "empty"],
                     [[side, s["mean"], s["p50"], s["p90"], s["max"], s["subjects"], s["empty_subjects"]]
                      for side, s in (("real", coherence["length_real"]), ("synthetic", coherence["length_synthetic"]))])
            + _image(plots.get("lengths"), "sequence lengths"))
    else:
        parts.append(_accuracy_section("Accuracy", result["accuracy"], plots, ""))

    distances, matches, audit = result["distances"], result["matches"], result["membership"]
    parts.append(
        "<h2>Privacy</h2><p class='note'>Synthetic rows should be no closer to the training rows than to holdout rows "
        "the generator never saw. Identical matches are counted over every synthetic row (training subsampled to "
        "the holdout's size); distances on equal-size samples, rows embedded as mostlyai-qa does (quantile-scaled "
        "numbers, one-hot categories, unit length), the DCR share the largest over column groups. The membership "
        "audit attacks individual records: it scores training members against holdout non-members by their "
        "distance to the closest synthetic record relative to real reference records. AUC 0.5 means the "
        "synthetic data tells an attacker nothing about membership.</p>"
        + _table(["figure", "to training", "to holdout"], [
            ["identical rows (share)", matches["identical_training"], matches["identical_holdout"]],
            ["mean distance to closest record", distances["dcr_training"], distances["dcr_holdout"]],
            ["NNDR (10th smallest)", distances["nndr_training"], distances["nndr_holdout"]]])
        + _table(["figure", "value"], [
            ["DCR share (closer to training)", distances["dcr_share"]],
            ["DCR share, all columns", distances["dcr_share_all_columns"]],
            ["identical to any training row", matches["identical_training_all"]],
            ["rows per side (distances)", distances["rows_per_side"]],
            ["attack AUC, density ratio", audit["auc"]],
            ["95% interval", f"{audit['auc_low']:.4f} – {audit['auc_high']:.4f}"],
            ["attack AUC, closest record only", audit["closest_record_auc"]],
            ["members / non-members audited", f"{audit['members']:,} / {audit['non_members']:,}"]])
        + _image(plots.get("distances"), "distance to closest record") + _image(plots.get("roc"), "attack ROC"))
    if result.get("privacy"):
        p = result["privacy"]
        parts.append(f"<p>Trained with differential privacy: ε = {p['epsilon']:.3f}, δ = {p['delta']:.2g} "
                     "(statistics and weights together).</p>")

    utility = result.get("utility")
    if utility:
        parts.append(
            f"<h2>Machine-learning utility: predicting {html.escape(utility['target'])}</h2>"
            "<p class='note'>A gradient-boosting model trained on synthetic rows (TSTR) and one trained on real "
            "training rows (TRTR), both tested on the real holdout; permutation importances on the holdout.</p>"
            + _table(["model", utility["metric"]], [["trained on synthetic (TSTR)", utility["tstr"]],
                                                   ["trained on real (TRTR)", utility["trtr"]]])
            + _table(["feature", "importance (real-trained)", "importance (synthetic-trained)"],
                     [[c, v["trtr"], v["tstr"]] for c, v in utility["importances"].items()])
            + f"<p>Rank correlation of the importances: {_fmt(utility['importance_rank_correlation'])}</p>"
            + _image(plots.get("importances"), "feature importances"))
    parts.append("</body></html>")
    return "\n".join(parts)
