"""The one input model: a schema of tables linked by keys.

Every data shape is a schema: a flat table is a schema of one table; an event log is a parent table (the
subjects) and a child (the events) whose foreign key to it is a *context* key (the child is generated in the
context of its parent). The CLI flags (``--data``; ``--subjects/--events``), YAML (``tables:``) and the Python
API all produce one :class:`Schema`, and training dispatches on its shape. Spark-free: it describes tables, it
does not read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spark_synth.errors import SynthError

Encoding = Literal["auto", "categorical", "numeric", "digits", "binned", "datetime", "key"]
Shape = Literal["flat", "event_log"]


class ColumnSettings(BaseModel):
    """Per-column overrides: force an encoding, or leave the column out of the model and output."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    encoding: Encoding = "auto"
    exclude: bool = False


class ForeignKey(BaseModel):
    """A column that references a parent table's primary key; a context key makes the child a sequence
    generated in the context of its parent (at most one per table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    references: str = Field(description="the parent table's name")
    context: bool = True


class TableSpec(BaseModel):
    """One table of a schema: where it is read from, its keys, its order and its column settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    name: str = Field(min_length=1)
    source: Any = Field(None, description="path, catalog table name or Spark DataFrame; none: an event log's "
                                          "subjects, derived from the events' keys")
    primary_key: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    order_by: str | None = Field(None, description="a child's column that orders its rows within a parent")
    columns: dict[str, ColumnSettings] = Field(default_factory=dict)

    @property
    def context_key(self) -> ForeignKey | None:
        return next((k for k in self.foreign_keys if k.context), None)

    @property
    def source_name(self) -> str:
        """How messages and MLflow params name the source: its path or table name, never its content."""
        if isinstance(self.source, str):
            return self.source
        return "derived from the events" if self.source is None else "DataFrame"


@dataclass(frozen=True)
class EventLink:
    """How an event log's two tables link: what the sequence training and generation need of the schema."""

    subject_key: str  # the subjects' primary key
    foreign_key: str  # the events' context key to it
    order_by: str | None  # orders a subject's events; None: the order they come in


@dataclass(frozen=True)
class Schema:
    """Tables and their keys, checked on construction (:func:`schema`); ``shared_columns`` are settings by
    column name for whichever table holds the column (the top-level ``columns:`` of a config)."""

    tables: tuple[TableSpec, ...]
    shared_columns: Mapping[str, ColumnSettings]

    @property
    def shape(self) -> Shape:
        return "flat" if len(self.tables) == 1 and not self.tables[0].foreign_keys else "event_log"

    @property
    def flat(self) -> TableSpec:
        return self.tables[0]

    @property
    def subjects(self) -> TableSpec:
        return self.table(self.events.context_key.references)  # type: ignore[union-attr]

    @property
    def events(self) -> TableSpec:
        return next(t for t in self.tables if t.context_key is not None)

    @property
    def link(self) -> EventLink:
        fk = self.events.context_key
        assert fk is not None and self.subjects.primary_key is not None
        return EventLink(self.subjects.primary_key, fk.column, self.events.order_by)

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)

    def settings_for(self, table: TableSpec, columns: list[str]) -> dict[str, ColumnSettings]:
        """The column settings of ``table`` (holding ``columns``): its own, and the shared ones it holds."""
        return {**{c: s for c, s in self.shared_columns.items() if c in columns}, **table.columns}

    def check_columns(self, columns: Mapping[str, list[str]]) -> None:
        """Refuse settings for columns no table has (``columns``: each table's column names, once read)."""
        for table in self.tables:
            unknown = [c for c in table.columns if c not in columns[table.name]]
            if unknown:
                raise SynthError(f"the config names column(s) {unknown} that table '{table.name}' does not have "
                                 f"(it has {columns[table.name]}).", "Fix the names under its `columns:`.")
        held = {c for names in columns.values() for c in names}
        unknown = [c for c in self.shared_columns if c not in held]
        if unknown:
            where = "; ".join(f"{name}: {names}" for name, names in columns.items())
            raise SynthError(f"the config names column(s) {unknown} that no table has ({where}).",
                             "Fix the names under `columns:` in the config.")


def schema(tables: list[TableSpec], shared_columns: Mapping[str, ColumnSettings] | None = None) -> Schema:
    """A checked schema: unique names, references to tables of the schema, keys that are declared, one
    context parent per table, and a shape this version trains (one table, or a parent and a context child;
    an events table alone has its subjects derived from its context key)."""
    names = [t.name for t in tables]
    if not tables:
        raise SynthError("the schema has no table.", "Give `tables:` at least one table, or --data PATH.")
    if len(set(names)) < len(names):
        raise SynthError(f"table names repeat in the schema: {names}.", "Give every table its own name.")
    for t in tables:
        if t.source is None and not any(k.references == t.name for u in tables for k in u.foreign_keys):
            raise SynthError(f"table '{t.name}' has no source.", f"Give '{t.name}' a `source:` (path or table name).")
        contexts = [k for k in t.foreign_keys if k.context]
        if len(contexts) > 1:
            raise SynthError(f"table '{t.name}' has {len(contexts)} context foreign keys "
                             f"({[k.column for k in contexts]}); a table is generated in one parent's context.",
                             "Mark all but one with `context: false`.")
        for k in t.foreign_keys:
            if k.references not in names:
                raise SynthError(f"foreign key '{k.column}' of table '{t.name}' references '{k.references}', which "
                                 f"is not a table of the schema ({names}).", "Fix `references:` or add the table.")
            if tables[names.index(k.references)].primary_key is None:
                raise SynthError(f"table '{k.references}' is referenced by '{t.name}'.{k.column} but has no "
                                 "primary key.", f"Give '{k.references}' a `primary_key:`.")
            if k.references == t.name:
                raise SynthError(f"table '{t.name}' references itself through '{k.column}'.",
                                 "Self-references are not supported; drop that foreign key.")
        if t.order_by is not None and t.context_key is None:
            raise SynthError(f"table '{t.name}' has `order_by: {t.order_by}` but no context parent to order within.",
                             "Give it a context foreign key, or drop `order_by`.")
    children = [t for t in tables if t.foreign_keys]
    event_log = (len(tables) == 2 and len(children) == 1 and len(children[0].foreign_keys) == 1
                 and children[0].context_key is not None)
    if len(tables) > 1 and not event_log:
        raise SynthError(f"this schema ({_outline(tables)}) is not a shape this version trains: one table, or a "
                         "parent table and one child with a context foreign key to it (an event log).",
                         "Train the tables as one flat table or one parent-child pair; schemas of more related "
                         "tables are planned.")
    if len(tables) == 1 and tables[0].foreign_keys:
        raise SynthError(f"table '{tables[0].name}' has foreign keys but the schema has no parent table.",
                         "Add the parent table (without a source its subjects are derived from the keys).")
    return Schema(tuple(tables), dict(shared_columns or {}))


def _outline(tables: list[TableSpec]) -> str:
    edges = [f"{t.name}.{k.column} -> {k.references}{'' if k.context else ' (not context)'}"
             for t in tables for k in t.foreign_keys]
    return f"tables {[t.name for t in tables]}" + (f"; keys {edges}" if edges else "")
