"""The schema of tables, the one input model: what the flags and ``tables:`` produce, and what is refused."""

from __future__ import annotations

import pytest

from spark_synth.config import TrainConfig
from spark_synth.errors import SynthError
from spark_synth.tables import ColumnSettings, ForeignKey, TableSpec, schema


def _config(**settings) -> TrainConfig:
    return TrainConfig(model_dir="/tmp/never-written", **settings)


def test_a_flat_table_is_a_schema_of_one_table() -> None:
    tables = _config(data="census.parquet", columns={"age": {"encoding": "binned"}}).schema()
    assert tables.shape == "flat"
    assert tables.flat.source == "census.parquet" and tables.flat.foreign_keys == ()
    assert tables.settings_for(tables.flat, ["age", "sex"]) == {"age": ColumnSettings(encoding="binned")}


def test_an_event_log_is_a_parent_and_a_context_child() -> None:
    tables = _config(subjects="players.parquet", subject_key="id", events="batting.parquet",
                     foreign_key="players_id", order_by="year").schema()
    assert tables.shape == "event_log"
    assert (tables.subjects.name, tables.events.name) == ("subjects", "events")
    link = tables.link
    assert (link.subject_key, link.foreign_key, link.order_by) == ("id", "players_id", "year")


def test_events_alone_derive_their_subjects_from_the_foreign_key() -> None:
    tables = _config(events="tx.parquet", foreign_key="customer_id").schema()
    assert tables.subjects.source is None and tables.subjects.source_name == "derived from the events"
    assert tables.link.subject_key == "customer_id"


def test_yaml_tables_give_the_same_schema_as_the_flags() -> None:
    from_flags = _config(subjects="players.parquet", subject_key="id", events="batting.parquet",
                         foreign_key="players_id", order_by="year").schema()
    from_yaml = _config(tables=[
        {"name": "players", "source": "players.parquet", "primary_key": "id"},
        {"name": "batting", "source": "batting.parquet", "order_by": "year",
         "foreign_keys": [{"column": "players_id", "references": "players"}]},
    ]).schema()
    assert from_yaml.shape == "event_log" and from_yaml.link == from_flags.link
    assert from_yaml.subjects.source == "players.parquet" and from_yaml.events.source == "batting.parquet"


def test_per_table_settings_win_over_shared_ones_and_only_reach_their_table() -> None:
    tables = schema([TableSpec(name="players", source="p", primary_key="id",
                               columns={"weight": ColumnSettings(encoding="categorical")}),
                     TableSpec(name="batting", source="b", foreign_keys=(ForeignKey(column="pid", references="players"),))],
                    {"weight": ColumnSettings(exclude=True), "hits": ColumnSettings(encoding="digits")})
    assert tables.settings_for(tables.subjects, ["id", "weight"]) == {"weight": ColumnSettings(encoding="categorical")}
    assert tables.settings_for(tables.events, ["pid", "hits"]) == {"hits": ColumnSettings(encoding="digits")}


def test_settings_for_columns_no_table_has_are_refused_by_name() -> None:
    tables = schema([TableSpec(name="players", source="p", primary_key="id", columns={"hieght": ColumnSettings()}),
                     TableSpec(name="batting", source="b", foreign_keys=(ForeignKey(column="pid", references="players"),))])
    with pytest.raises(SynthError, match="hieght.*players"):
        tables.check_columns({"players": ["id", "height"], "batting": ["pid"]})
    shared = schema([TableSpec(name="data", source="d")], {"agee": ColumnSettings()})
    with pytest.raises(SynthError, match="agee.*no table"):
        shared.check_columns({"data": ["age"]})


@pytest.mark.parametrize(("tables", "problem"), [
    ([], "no table"),
    ([{"name": "a", "source": "x"}, {"name": "a", "source": "y"}], "names repeat"),
    ([{"name": "a"}], "has no source"),
    ([{"name": "p", "source": "x", "primary_key": "id"},
      {"name": "c", "source": "y", "foreign_keys": [{"column": "pid", "references": "q"}]}], "not a table of the schema"),
    ([{"name": "p", "source": "x"},
      {"name": "c", "source": "y", "foreign_keys": [{"column": "pid", "references": "p"}]}], "has no primary key"),
    ([{"name": "p", "source": "x", "primary_key": "id"}, {"name": "q", "source": "z", "primary_key": "id"},
      {"name": "c", "source": "y", "foreign_keys": [{"column": "pid", "references": "p"},
                                                   {"column": "qid", "references": "q"}]}], "2 context foreign keys"),
    ([{"name": "c", "source": "y", "order_by": "t"}], "no context parent"),
    ([{"name": "p", "source": "x", "primary_key": "id"}, {"name": "q", "source": "z", "primary_key": "id"},
      {"name": "c", "source": "y", "foreign_keys": [{"column": "pid", "references": "p"},
                                                   {"column": "qid", "references": "q", "context": False}]}],
     "not a shape this version trains"),
    ([{"name": "p", "source": "x", "primary_key": "id",
       "foreign_keys": [{"column": "boss", "references": "p", "context": False}]}], "references itself"),
])
def test_bad_schemas_are_refused_with_the_problem_and_a_fix(tables, problem) -> None:
    with pytest.raises(SynthError, match=problem) as refused:
        _config(tables=tables).schema()
    assert refused.value.fix


def test_tables_exclude_the_single_table_and_event_log_flags() -> None:
    with pytest.raises(ValueError, match="either `tables:`"):
        _config(tables=[{"name": "a", "source": "x"}], data="y")
