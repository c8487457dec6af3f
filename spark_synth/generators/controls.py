"""Controlled generation: how a generator's draws are steered, resolved against its codec.

The any-order model makes every control a choice of column order plus fixed or forbidden codes:
- seeded columns are fixed and drawn first, so the rest is generated conditioned on them;
- rebalancing fixes one categorical column to values drawn from target shares;
- fairness draws the sensitive column and then the target "blind" (each from its marginal, seeing
  no other column), so the target is independent of the sensitive attribute (statistical parity),
  and every other column is generated conditioned on both;
- imputation fixes the present values and forbids the null (and rare) codes of the filled columns;
- temperature and top-p reshape every head's distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from spark_synth.encoding import TableCodec
from spark_synth.encoding.base import NULL_CODE
from spark_synth.encoding.categorical import RARE_CODE, CategoricalCodec
from spark_synth.encoding.numeric import BinnedCodec
from spark_synth.errors import SynthError

SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Controls:
    """Sampling controls, as the API, the CLI and the MLflow model take them."""

    temperature: float = 1.0
    top_p: float = 1.0
    rebalance_column: str | None = None
    rebalance_shares: dict[str, float] = field(default_factory=dict)  # value (as text) -> share of the rows
    fairness_target: str | None = None
    fairness_sensitive: str | None = None

    def check(self) -> None:
        if not self.temperature > 0:
            raise SynthError(f"temperature must be positive (got {self.temperature}).",
                             "Use 1 for the learned distribution, below 1 for safer draws, above 1 for more diverse.")
        if not 0 < self.top_p <= 1:
            raise SynthError(f"top-p must lie in (0, 1] (got {self.top_p}).", "Use 1 to keep every code, e.g. 0.9.")
        if (self.fairness_target is None) != (self.fairness_sensitive is None):
            raise SynthError("fairness needs both a target and a sensitive column.",
                             "Pass --fair-target COL and --fair-sensitive COL together.")
        if self.fairness_target is not None and self.fairness_target == self.fairness_sensitive:
            raise SynthError("the fairness target and sensitive column are the same.", "Name two different columns.")
        if (self.rebalance_column is None) != (not self.rebalance_shares):
            raise SynthError("rebalancing needs a column and its target shares.",
                             "Pass --rebalance COL with --share VALUE=SHARE for each value.")
        if self.rebalance_shares:
            total = sum(self.rebalance_shares.values())
            if any(not 0 <= s <= 1 for s in self.rebalance_shares.values()) or abs(total - 1) > SHARE_TOLERANCE:
                raise SynthError(f"rebalancing shares must lie in [0, 1] and add up to 1 (got {total:g}).",
                                 "Give every value of the column a share, e.g. --share '>50K=0.5' --share '<=50K=0.5'.")


@dataclass
class Plan:
    """Controls resolved against a codec: a column order, blind columns, forbidden codes, a rebalanced column."""

    order: list[int]
    blind: set[int]
    rebalance: tuple[int, np.ndarray, np.ndarray] | None  # (first sub-column, codes (values, sub-columns), shares)


def plan(codec: TableCodec, controls: Controls, fixed: list[str] = ()) -> Plan:
    """The column order (fixed columns, the rebalanced one, sensitive, target, then the rest in table order)."""
    controls.check()
    index = {c.name: i for i, c in enumerate(codec.modelled)}

    def column(name: str, role: str) -> int:
        if name not in index:
            raise SynthError(f"the {role} column '{name}' is not a column the generator models ({list(index)}).",
                             "Name one of the generator's columns (identifier columns are not modelled).")
        return index[name]

    first = [index[name] for name in fixed if name in index]
    rebalance = None
    if controls.rebalance_column is not None:
        j = column(controls.rebalance_column, "rebalanced")
        if fixed:
            raise SynthError("rebalancing applies to generation without a seed: a seed fixes the rows itself.",
                             "Put the wanted shares into the seed, or leave out --seed-data.")
        rebalance = (codec.column_slices[j][0], *_category_codes(codec, j, controls.rebalance_shares))
        first.append(j)
    blind: set[int] = set()
    if controls.fairness_target is not None:
        target, sensitive = column(controls.fairness_target, "fairness target"), column(
            controls.fairness_sensitive, "sensitive")
        if {target, sensitive} & set(first):
            raise SynthError("the fairness columns cannot be seeded or rebalanced.", "Leave them out of the seed.")
        first += [sensitive, target]
        blind = {sensitive, target}
    return Plan(first + [i for i in range(len(codec.modelled)) if i not in first], blind, rebalance)


def _category_codes(codec: TableCodec, j: int, shares: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    column = codec.modelled[j]
    if not isinstance(column, CategoricalCodec):
        raise SynthError(f"'{column.name}' is not categorical, so it cannot be rebalanced.",
                         "Rebalance a categorical column (e.g. the class of a classifier).")
    known = {str(v): v for v in column.values}
    unknown = [v for v in shares if v not in known]
    if unknown:
        shown = list(known)[:20]
        raise SynthError(f"rebalancing names value(s) {unknown} that '{column.name}' does not hold (it holds {shown}).",
                         "Use the column's values as they appear in the data.")
    values = pa.array([known[v] for v in shares], type=column.type)
    return column.encode(values), np.array(list(shares.values()), dtype=np.float64)


def null_codes(codec: TableCodec, columns: list[int]) -> dict[int, list[int]]:
    """Sub-column -> the codes that decode to null (or, for text, to the rare token) in these columns."""
    out: dict[int, list[int]] = {}
    for j in columns:
        lo, _ = codec.column_slices[j]
        column = codec.modelled[j]
        if isinstance(column, CategoricalCodec):
            out[lo] = [NULL_CODE] + ([RARE_CODE] if not column.numeric else [])
        elif isinstance(column, BinnedCodec):  # bin 0 is null
            out[lo] = [NULL_CODE]
        elif getattr(column, "has_nulls", False):  # digits, dates: a null flag as the first sub-column
            out[lo] = [1]
    return out
