"""The report's figures, drawn with matplotlib (no display needed) and returned as base64 PNG, so the
HTML file carries them inline and opens anywhere, offline."""

from __future__ import annotations

import base64
import io
import math

import numpy as np

REAL, SYNTHETIC, HOLDOUT = "#7f7f7f", "#1f9e89", "#c7a02a"
MAX_BINS_SHOWN = 12
MAX_COLUMNS_SHOWN = 40


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=90)


def _png(plt, figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def distributions(distributions: dict[str, dict], accuracy: dict[str, float]) -> str:
    """Small multiples: each column's binned distribution, real beside synthetic, weakest columns first."""
    names = sorted(distributions, key=lambda c: accuracy.get(c, 1.0))[:MAX_COLUMNS_SHOWN]
    per_row = 3
    rows = max(1, math.ceil(len(names) / per_row))
    plt, figure = _figure(13, 3.1 * rows)
    for k, name in enumerate(names):
        axis = figure.add_subplot(rows, per_row, k + 1)
        d = distributions[name]
        labels, real, syn = d["labels"], np.array(d["real"]), np.array(d["synthetic"])
        if len(labels) > MAX_BINS_SHOWN:  # keep the largest real bins, in their order
            keep = np.sort(np.argsort(-(real + syn))[:MAX_BINS_SHOWN])
            labels, real, syn = [labels[i] for i in keep], real[keep], syn[keep]
        y = np.arange(len(labels))
        axis.barh(y - 0.2, real, 0.4, color=REAL, label="real")
        axis.barh(y + 0.2, syn, 0.4, color=SYNTHETIC, label="synthetic")
        axis.set_yticks(y, [label if len(label) <= 22 else label[:21] + "…" for label in labels], fontsize=7)
        axis.invert_yaxis()
        axis.tick_params(axis="x", labelsize=7)
        axis.set_title(f"{name[:40]}  ({accuracy.get(name, float('nan')):.1%})", fontsize=9)
        if k == 0:
            axis.legend(fontsize=7, loc="lower right")
    return _png(plt, figure)


def association_matrices(columns: list[str], association: dict[str, tuple[float, float]]) -> str:
    """Cramér's V between every pair of columns, real and synthetic side by side (same colour scale)."""
    n = len(columns)
    index = {c: i for i, c in enumerate(columns)}
    matrices = [np.full((n, n), np.nan), np.full((n, n), np.nan)]
    for m in matrices:
        np.fill_diagonal(m, 1.0)
    for pair, values in association.items():
        a, b = pair.split("|", 1)
        if a in index and b in index:
            for m, v in zip(matrices, values, strict=True):
                m[index[a], index[b]] = m[index[b], index[a]] = v
    size = min(14, 4 + 0.35 * n)
    plt, figure = _figure(2 * size, size)
    for k, (m, title) in enumerate(zip(matrices, ("real", "synthetic"), strict=True)):
        axis = figure.add_subplot(1, 2, k + 1)
        image = axis.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ticks = [c if len(c) <= 18 else c[:17] + "…" for c in columns]
        axis.set_xticks(range(n), ticks, rotation=90, fontsize=7)
        axis.set_yticks(range(n), ticks, fontsize=7)
        axis.set_title(f"association (Cramér's V), {title}", fontsize=10)
    figure.colorbar(image, ax=figure.axes, shrink=0.7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def distance_distributions(histograms: dict[str, np.ndarray]) -> str:
    """Cumulative distributions of the distance to the closest record (synthetic to training, synthetic to
    holdout, holdout to training): curves that coincide mean no record is specially close to training.
    Cumulative rather than binned because distances are heavily skewed towards 0."""
    plt, figure = _figure(8, 3.4)
    axis = figure.add_subplot(1, 1, 1)
    top = max(float(np.quantile(h, 0.99)) for h in histograms.values()) or 1.0
    styles = {"synthetic_to_training": (SYNTHETIC, "synthetic → training"),
              "synthetic_to_holdout": (HOLDOUT, "synthetic → holdout"),
              "holdout_to_training": (REAL, "holdout → training")}
    for key, values in histograms.items():
        color, label = styles[key]
        ordered = np.sort(values)
        axis.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", linewidth=2, color=color,
                  label=label)
    axis.set_xlim(0, top)
    axis.set_xlabel("distance to closest record (up to the 99th percentile)")
    axis.set_ylabel("share of rows within")
    axis.legend(fontsize=8, loc="lower right")
    return _png(plt, figure)


def roc_curve(roc: dict[str, list[float]], auc: float) -> str:
    """The membership attack's ROC curve against the diagonal of a blind guess."""
    plt, figure = _figure(4.2, 4.0)
    axis = figure.add_subplot(1, 1, 1)
    axis.plot(roc["false_positive"], roc["true_positive"], color=SYNTHETIC, linewidth=2, label=f"attack, AUC {auc:.3f}")
    axis.plot([0, 1], [0, 1], color=REAL, linestyle="--", label="blind guess")
    axis.set_xlabel("non-members flagged")
    axis.set_ylabel("members flagged")
    axis.legend(fontsize=8, loc="lower right")
    return _png(plt, figure)


def importances(importances: dict[str, dict[str, float]]) -> str:
    """Permutation importances of the real-trained and the synthetic-trained model, side by side."""
    names = list(importances)[:25]
    plt, figure = _figure(8, 0.8 + 0.3 * len(names))
    axis = figure.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    axis.barh(y - 0.2, [importances[n]["trtr"] for n in names], 0.4, color=REAL, label="trained on real")
    axis.barh(y + 0.2, [importances[n]["tstr"] for n in names], 0.4, color=SYNTHETIC, label="trained on synthetic")
    axis.set_yticks(y, [n[:30] for n in names], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("drop in score when the feature is shuffled")
    axis.legend(fontsize=8)
    return _png(plt, figure)


def length_histograms(real: dict[int, int], synthetic: dict[int, int]) -> str:
    """Events per subject, real vs synthetic, as shares of subjects (the longest 1% folded into the last bar)."""
    plt, figure = _figure(8, 3.2)
    axis = figure.add_subplot(1, 1, 1)
    lengths = sorted(set(real) | set(synthetic))
    counts = np.array([real.get(n, 0) for n in lengths], dtype=float)
    cut = lengths[min(len(lengths) - 1, int(np.searchsorted(np.cumsum(counts) / counts.sum(), 0.99)))]
    for hist, color, label, offset in ((real, REAL, "real", -0.2), (synthetic, SYNTHETIC, "synthetic", 0.2)):
        total = sum(hist.values())
        shown = {n: c for n, c in hist.items() if n < cut}
        shown[cut] = sum(c for n, c in hist.items() if n >= cut)
        xs = sorted(shown)
        axis.bar(np.array(xs) + offset, [shown[x] / total for x in xs], 0.4, color=color, label=label)
    axis.set_xlabel(f"events per subject (≥ {cut} folded into the last bar)")
    axis.set_ylabel("share of subjects")
    axis.legend(fontsize=8)
    return _png(plt, figure)
