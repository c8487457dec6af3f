"""Membership-inference audit: can an attacker who holds the synthetic data tell training rows apart?

Distance summaries average over all synthetic rows and can miss a generator that copies a few records;
an attack scores individual candidates. The auditor takes candidates known to be members (training rows)
and non-members (holdout rows the generator never saw) and scores each from the synthetic data alone:

- **closest synthetic record**: a member whose copy (or near copy) was generated sits closer to a
  synthetic row than a non-member does; score = minus that distance.
- **density ratio** (the headline): the same distance divided by the distance to the closest row of a
  *reference* sample of real non-members (the other half of the holdout). Rows in dense regions are close
  to everything; the ratio asks whether the synthetic data is closer to this record than real data from
  the same population is, which is what memorisation looks like.

The AUC of each score over members vs non-members is 0.5 when the synthetic data tells nothing about
membership and approaches 1 for a leaky generator; its 95% confidence interval comes from DeLong's
variance. Spark-free: the caller passes encoded samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from spark_synth.evaluation.distances import closest

CONFIDENCE = 0.95


def auc_with_interval(members: np.ndarray, non_members: np.ndarray, level: float = CONFIDENCE) -> dict:
    """AUC of scores where members should score higher, with DeLong's (1988) confidence interval.

    Ties count half. The variance comes from the structural components (placement values) of the
    Mann-Whitney statistic, so no bootstrap is needed.
    """
    m, n = len(members), len(non_members)
    if m < 2 or n < 2:
        raise ValueError("the audit needs at least two members and two non-members")
    ranks = rankdata(np.concatenate([members, non_members]))
    pos_in_all, neg_in_all = ranks[:m], ranks[m:]
    v10 = (pos_in_all - rankdata(members)) / n  # share of non-members each member beats
    v01 = 1.0 - (neg_in_all - rankdata(non_members)) / m  # share of members that beat each non-member
    auc = float(v10.mean())
    std = float(np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n))
    z = float(norm.ppf(0.5 + level / 2))
    return {"auc": auc, "low": max(0.0, auc - z * std), "high": min(1.0, auc + z * std), "std": std}


def membership_audit(
    synthetic: np.ndarray, members: np.ndarray, non_members: np.ndarray, reference: np.ndarray
) -> dict:
    """Run both attacks on encoded points; returns each attack's AUC with its interval and the ROC curve
    of the headline attack (false and true positive rates at 101 thresholds)."""
    d_syn = [closest(synthetic, x, 1)[:, 0] for x in (members, non_members)]
    d_ref = [closest(reference, x, 1)[:, 0] for x in (members, non_members)]
    closest_attack = auc_with_interval(-d_syn[0], -d_syn[1])
    ratio = [np.log(r + 1e-8) - np.log(s + 1e-8) for s, r in zip(d_syn, d_ref, strict=True)]
    ratio_attack = auc_with_interval(ratio[0], ratio[1])
    thresholds = np.quantile(np.concatenate(ratio), np.linspace(0, 1, 101))
    roc = {"false_positive": [float(np.mean(ratio[1] >= t)) for t in thresholds],
           "true_positive": [float(np.mean(ratio[0] >= t)) for t in thresholds]}
    return {
        "auc": ratio_attack["auc"], "auc_low": ratio_attack["low"], "auc_high": ratio_attack["high"],
        "closest_record_auc": closest_attack["auc"], "closest_record_auc_low": closest_attack["low"],
        "closest_record_auc_high": closest_attack["high"],
        "members": len(members), "non_members": len(non_members), "reference": len(reference),
        "synthetic": len(synthetic), "roc": roc,
    }


def planted_leak(training: pd.DataFrame, share: float, seed: int = 0) -> pd.DataFrame:
    """A deliberately leaky "synthetic" table: the training rows, each value replaced with probability
    ``share`` by the same column's value in a random row. What the audit must flag; useful to calibrate it
    on one's own data."""
    rng = np.random.default_rng(seed)
    out = training.copy()
    for column in out.columns:
        rows = rng.random(len(out)) < share
        out.loc[rows, column] = training[column].to_numpy()[rng.integers(0, len(training), int(rows.sum()))]
    return out
