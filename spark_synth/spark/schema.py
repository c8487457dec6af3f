"""Which columns are modelled and how: inferred from the Spark schema, overridden by config."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

from spark_synth.encoding.types import logical_kind
from spark_synth.errors import SynthError
from spark_synth.tables import ColumnSettings


def quoted(name: str) -> str:
    """A column name as a Spark SQL identifier, whatever characters it holds (backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    spark_type: str
    kind: str  # categorical | numeric | datetime
    encoding: str  # requested encoding, "auto" unless overridden
    text_format: str | None = None  # "date"/"timestamp": parsed from ISO text, written back as text


def plan_columns(schema: StructType, settings: dict[str, ColumnSettings]) -> list[ColumnPlan]:
    """Validate the config against the schema and return the columns to analyze, in table order."""
    names = [f.name for f in schema.fields]
    unknown = [c for c in settings if c not in names]
    if unknown:
        raise SynthError(f"the config names column(s) {unknown} that the input does not have (it has {names}).",
                         "Fix the names under `columns:` in the config.")
    plans, unsupported = [], []
    for field in schema.fields:
        setting = settings.get(field.name, ColumnSettings())
        if setting.exclude:
            continue
        spark_type = field.dataType.simpleString()
        kind = logical_kind(spark_type)
        if kind is None:
            unsupported.append(f"{field.name} ({spark_type})")
            continue
        if setting.encoding == "datetime" and kind != "datetime":
            raise SynthError(f"column '{field.name}' is {spark_type}, not a date or timestamp.",
                             f"Remove `encoding: datetime` for '{field.name}' or cast it first.")
        if setting.encoding in ("numeric", "digits", "binned") and kind != "numeric":
            raise SynthError(f"column '{field.name}' is {spark_type}, so it cannot use encoding '{setting.encoding}'.",
                             f"Use `encoding: categorical` or `auto` for '{field.name}'.")
        if setting.encoding == "key" and spark_type not in ("string", "tinyint", "smallint", "int", "bigint"):
            raise SynthError(f"column '{field.name}' is {spark_type}; only string and integer columns can be keys.",
                             f"Remove `encoding: key` for '{field.name}' or exclude it.")
        plans.append(ColumnPlan(field.name, spark_type, kind, setting.encoding))
    if unsupported:
        raise SynthError(f"unsupported column type(s): {', '.join(unsupported)}; nested and binary columns "
                         "cannot be synthesized.",
                         "Exclude them (`columns: {NAME: {exclude: true}}` in the config) or flatten them first.")
    if not plans:
        raise SynthError("no columns left to model.", "Do not exclude every column.")
    return plans
