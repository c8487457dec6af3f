"""Machine-learning utility: train on synthetic, test on real (TSTR) against train real, test real (TRTR).

The same gradient-boosting model (scikit-learn's histogram GBM, native categorical support) is trained
once on a training sample and once on a synthetic sample of the same size, and both are scored on the
real holdout. Classification targets score by ROC AUC (binary: the rarer class is positive; more classes:
one-vs-rest, macro), numeric targets by R². Permutation importances on the holdout, for both models,
show whether the synthetic-trained model relies on the same features. Spark-free (pandas samples).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_CATEGORIES = 250  # the GBM's limit is 255 bins per feature
MAX_IMPORTANCE_ROWS = 5_000
IMPORTANCE_REPEATS = 3
CLASSIFY_BELOW = 10  # a numeric target with at most this many distinct values is a class label


def _features(frame: pd.DataFrame, reference: pd.DataFrame, target: str, categories: dict[str, list]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for name in reference.columns:
        if name == target:
            continue
        if name in categories:
            out[name] = pd.Categorical(frame[name].astype(object).where(frame[name].notna(), None).astype("string"),
                                       categories=categories[name])
        elif pd.api.types.is_datetime64_any_dtype(reference[name]):
            values = pd.to_datetime(frame[name], errors="coerce")
            out[name] = np.where(values.isna(), np.nan, values.astype("int64").astype(float))
        else:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return out


def _is_category(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series)) or \
        pd.api.types.is_bool_dtype(series)


def tstr(training: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, target: str, seed: int = 0) -> dict:
    """TSTR and TRTR scores and permutation importances for ``target``; rows with a null target are dropped."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import r2_score, roc_auc_score

    if target not in training.columns:
        raise ValueError(f"target column {target!r} is not in the data")
    training, synthetic, holdout = (f[f[target].notna()] for f in (training, synthetic, holdout))
    if min(len(training), len(synthetic), len(holdout)) < 10:
        raise ValueError(f"too few rows with a {target!r} value to train and test a model")
    reference = pd.concat([training, holdout], ignore_index=True)
    categories = {c: reference[c].astype("string").value_counts().index[:MAX_CATEGORIES].tolist()
                  for c in reference.columns if c != target and _is_category(reference[c])}
    classify = _is_category(reference[target]) or reference[target].nunique() <= CLASSIFY_BELOW
    labels = reference[target].astype("string").value_counts()
    if classify and len(labels) < 2:
        raise ValueError(f"target {target!r} has a single class in the real data: nothing to predict")

    def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        x = _features(frame, reference, target, categories)
        if not classify:
            return x, pd.to_numeric(frame[target], errors="coerce").astype(float).to_numpy()
        y = frame[target].astype("string")
        if len(labels) == 2:
            return x, (y == labels.index[-1]).astype(int).to_numpy()  # the rarer class is positive
        return x, pd.Categorical(y, categories=labels.index).codes

    x_test, y_test = xy(holdout)
    importance_rows = np.random.default_rng(seed).permutation(len(x_test))[:MAX_IMPORTANCE_ROWS]
    binary = classify and len(labels) == 2

    def score(model, x: pd.DataFrame, y: np.ndarray) -> float:
        if not classify:
            return float(r2_score(y, model.predict(x)))
        proba = model.predict_proba(x)
        if binary:
            return float(roc_auc_score(y, proba[:, list(model.classes_).index(1)] if 1 in model.classes_ else
                                       np.zeros(len(y))))
        full = np.zeros((len(y), len(labels)))
        full[:, model.classes_] = proba
        present = np.unique(y)
        return float(roc_auc_score(y, full[:, present] / full[:, present].sum(1, keepdims=True).clip(1e-12),
                                   multi_class="ovr", labels=present))

    results: dict = {"target": target, "task": "classification" if classify else "regression",
                     "metric": "roc_auc" if classify else "r2"}
    importances: dict[str, dict[str, float]] = {}
    for name, frame in (("trtr", training), ("tstr", synthetic)):
        x, y = xy(frame)
        estimator = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        model = estimator(categorical_features="from_dtype", random_state=seed).fit(x, y)
        results[name] = score(model, x_test, y_test)
        rows = importance_rows
        permuted = permutation_importance(model, x_test.iloc[rows], y_test[rows], n_repeats=IMPORTANCE_REPEATS,
                                          random_state=seed, scoring=lambda m, xx, yy: score(m, xx, yy))
        importances[name] = dict(zip(x_test.columns, permuted.importances_mean.astype(float), strict=True))
    features = sorted(importances["trtr"], key=lambda c: -importances["trtr"][c])
    results["importances"] = {c: {"trtr": importances["trtr"][c], "tstr": importances["tstr"][c]} for c in features}
    results["importance_rank_correlation"] = _rank_correlation(
        [importances["trtr"][c] for c in features], [importances["tstr"][c] for c in features])
    results["rows"] = {"training": len(training), "synthetic": len(synthetic), "holdout": len(holdout)}
    return results


def _rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman correlation of the two importance rankings (NaN with fewer than two features)."""
    from scipy.stats import spearmanr

    if len(a) < 2:
        return float("nan")
    value = spearmanr(a, b).statistic
    return float(value) if np.isfinite(value) else float("nan")
