"""How an event log's events become sequences: the link to their subject, the order, the protected length.

Made by the training's sequence step on Spark, saved with the generator (``log.json``), read by sampling,
seeding and serving. ``max_length`` is protected (the k-th largest length, or DP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SequenceSpec:
    subject_key: str  # the subject table's key (regenerated, never modelled)
    foreign_key: str  # the events' column that references it
    foreign_key_type: str  # its Spark type, written back as is
    order_by: str | None  # orders a subject's events; None: in the order they came
    max_length: int  # events per subject at most (protected)
    event_columns: tuple[str, ...]  # the event table's columns, in its order (the output keeps it)
    order_type: str | None = None  # the order column's Spark type
    order_text: str | None = None  # "date"/"timestamp": an order parsed from text, written back as text
    gap_coded: bool = False  # the order is modelled as first value + gaps (ordered by construction)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "event_columns": list(self.event_columns)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> SequenceSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known} |
                   {"event_columns": tuple(values["event_columns"])})
