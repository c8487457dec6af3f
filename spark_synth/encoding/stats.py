"""A table's protected statistics: what the analysis publishes about each column and all the codecs need.

Produced by the exact (k-protected) or the DP analysis on Spark, saved with the generator as ``stats.json``
(the same JSON as before these types existed, so older generators load), and read by the codecs. Nothing
here is exact data beyond what the protection allows: kept categories held by k rows (subjects) or released
under DP, protected bounds, quantile edges.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

FORMAT_VERSION = 1
_TUPLES = ("values", "edges", "point_masses")


@dataclass(frozen=True)
class ColumnStats:
    name: str
    spark_type: str  # the output type ("string" for dates parsed from text)
    encoding: str  # key | categorical | digits | binned | datetime
    kind: str | None = None  # categorical | numeric | datetime (None in hand-made stats)
    has_nulls: bool = True  # nulls are held by enough rows (subjects) to be generated
    text_format: str | None = None  # "date"/"timestamp": parsed from ISO text, written back as text
    values: tuple[Any, ...] | None = None  # categorical: the kept (released) values, in code order
    has_rare: bool = True  # categorical: some values were not kept (a RARE code exists)
    min: Any = None  # digits, binned, datetime: protected bounds (epoch micros for datetimes)
    max: Any = None
    has_time: bool | None = None  # datetime: a time of day is modelled
    edges: tuple[float, ...] | None = None  # binned: quantile edges
    point_masses: tuple[float, ...] | None = None  # binned: values that alone hold a share of the rows
    integral: bool | None = None  # binned: whole numbers only

    def to_json(self) -> dict[str, Any]:
        """Only the fields that apply (None left out), lists for tuples: the stats.json layout."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if f.name in _TUPLES else value
        return out

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ColumnStats:
        """From stats.json; keys this version does not know (a newer writer's) are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k in _TUPLES and v is not None else v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class TableStats:
    columns: tuple[ColumnStats, ...]  # every output column, in table order
    n_rows: int | None = None  # rows (subjects) analyzed; under DP the noisy count
    excluded: tuple[str, ...] = ()  # source columns left out of the model and the output
    format_version: int = FORMAT_VERSION
    private: bool = False  # released under differential privacy

    def column(self, name: str) -> ColumnStats:
        return next(c for c in self.columns if c.name == name)

    def excluding(self, names: list[str]) -> TableStats:
        return replace(self, excluded=tuple(names))

    def to_json(self) -> dict[str, Any]:
        out = {"format_version": self.format_version, "n_rows": self.n_rows,
               "columns": [c.to_json() for c in self.columns], "excluded": list(self.excluded),
               "private": self.private or None}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> TableStats:
        n_rows = values.get("n_rows")
        return cls(tuple(ColumnStats.from_json(c) for c in values["columns"]),
                   None if n_rows is None else int(n_rows), tuple(values.get("excluded", ())),
                   int(values.get("format_version", FORMAT_VERSION)), bool(values.get("private", False)))
