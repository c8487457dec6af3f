"""Spark expressions that compute, code for code, what each numpy codec's ``encode`` computes.

Why: encoding rows in Python ships every row to a Python worker and back, which alone costs about
what Spark spends reading, grouping and writing the whole table. These run in the JVM instead. They
follow ``spark_synth.encoding`` exactly (a test compares both on real tables): nulls, clipping to the
protected bounds, half-even rounding, the codec's own bin edges and thresholds, calendar parts in UTC.
Lookups that must scale use Spark ML's hash-map and binary-search transformers (``StringIndexer``,
``Bucketizer``); everything else is plain column arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.ml.feature import Bucketizer, StringIndexerModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_synth.encoding import TableCodec
from spark_synth.encoding.base import NULL_CODE, ColumnCodec
from spark_synth.encoding.categorical import FIRST_VALUE_CODE, RARE_CODE, CategoricalCodec
from spark_synth.encoding.datetime import MICROS_PER_DAY, TIME_PARTS, DatetimeCodec
from spark_synth.encoding.numeric import BinnedCodec, DigitsCodec
from spark_synth.spark.schema import quoted

INFINITY = float("inf")


def micros(c: Column, spark_type: str) -> Column:
    """Microseconds since the epoch as the numpy codecs count them: instants for timestamps, the wall clock
    read as UTC for dates and timestamps without a time zone. No session time zone enters."""
    if spark_type == "date":
        return F.unix_date(c).cast("long") * F.lit(MICROS_PER_DAY)
    if spark_type == "timestamp":
        return F.unix_micros(c)
    return (F.unix_date(c.cast("date")).cast("long") * F.lit(MICROS_PER_DAY)  # timestamp_ntz: its own fields
            + F.hour(c).cast("long") * F.lit(3_600_000_000) + F.minute(c).cast("long") * F.lit(60_000_000)
            + (F.date_part(F.lit("SECOND"), c) * F.lit(1_000_000)).cast("long"))


SMALL_CATEGORIES = 16  # up to this many kept texts, comparisons in generated code beat the hash lookup's UDF call


@dataclass
class _Stage:
    """What the codes are computed from: helper columns, then Spark ML lookups over them (one StringIndexer,
    one Bucketizer for the whole table).

    A helper is a column of its own because Spark does not share a subexpression that sits inside a
    conditional (every code is one: null rows get code 0): a date's micros, clipped, would otherwise be
    computed again for each of its six parts (measured: a timestamp's codes took 2.5 s per 10M rows).
    """

    helpers: list[Column] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    label_inputs: list[str] = field(default_factory=list)
    splits: list[list[float]] = field(default_factory=list)
    split_inputs: list[str] = field(default_factory=list)

    def helper(self, value: Column) -> str:
        """A column computed once per row before the codes; returns its name."""
        name = f"__h{len(self.helpers)}"
        self.helpers.append(value.alias(name))
        return name

    def text_index(self, labels: list[str], text: Column) -> Column:
        """Index of the text in ``labels`` (a hash lookup in the JVM); ``len(labels)`` for any other value."""
        self.labels.append(labels)
        self.label_inputs.append(self.helper(text))
        return F.col(f"__i{len(self.labels) - 1}")

    def interval(self, thresholds: list[float], x: Column) -> Column:
        """How many thresholds are at most x (x never null): a binary search in the JVM."""
        if not thresholds:
            return F.lit(0)
        self.splits.append([-INFINITY, *thresholds, INFINITY])
        self.split_inputs.append(self.helper(x))
        return F.col(f"__b{len(self.splits) - 1}").cast("int")

    def apply(self, df: DataFrame) -> DataFrame:
        df = df.select("*", *self.helpers)
        if self.labels:
            df = StringIndexerModel.from_arrays_of_labels(
                self.labels, self.label_inputs, [f"__i{j}" for j in range(len(self.labels))],
                handleInvalid="keep").transform(df)
        if self.splits:
            df = Bucketizer(splitsArray=self.splits, inputCols=self.split_inputs,
                            outputCols=[f"__b{j}" for j in range(len(self.splits))], handleInvalid="keep").transform(df)
        return df


def encoded_frame(df: DataFrame, codec: TableCodec, keep: tuple[str, ...] = ()) -> DataFrame:
    """The codec's columns of ``df`` as one int column per sub-column, ``c0``..``cS-1``, plus the ``keep`` columns.

    The source columns are first renamed by position: Spark ML resolves dotted names as nested fields.
    """
    names = codec.column_names
    positional = df.select(*[F.col(quoted(name)).alias(f"__s{i}") for i, name in enumerate(names)], *keep)
    sources = {name: f"__s{i}" for i, name in enumerate(names)}
    stage = _Stage()
    codes = [code.alias(f"c{j}") for j, code in enumerate(
        code for c in codec.modelled for code in _codes(c, sources[c.name], stage))]
    return stage.apply(positional).select(*codes, *keep)


def _codes(codec: ColumnCodec, source: str, stage: _Stage) -> list[Column]:
    """One int column per sub-column of ``codec``, from the source column named ``source``."""
    encode: Callable[..., list[Column]] = _ENCODERS[type(codec)]
    c = F.col(source)
    codes = [F.when(c.isNull(), F.lit(NULL_CODE)).otherwise(code) for code in encode(codec, c, stage)]
    if isinstance(codec, DigitsCodec | DatetimeCodec) and codec.has_nulls:  # their first part: a null flag
        codes = [c.isNull().cast("int"), *codes]
    return [code.cast("int") for code in codes]


def _categorical(codec: CategoricalCodec, c: Column, stage: _Stage) -> list[Column]:
    if not codec.values:
        return [F.lit(RARE_CODE)]
    if codec.numeric:  # the kept number whose interval holds the value (its nearest)
        index = stage.interval(codec.thresholds.tolist(), F.coalesce(c.cast("double"), F.lit(0.0)))
        return [index + F.lit(FIRST_VALUE_CODE)]
    labels = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in codec.values]
    text = c.cast("string")
    if len(labels) <= SMALL_CATEGORIES:
        code = F.lit(RARE_CODE)
        for i, label in reversed(list(enumerate(labels))):
            code = F.when(text == F.lit(label), F.lit(FIRST_VALUE_CODE + i)).otherwise(code)
        return [code]
    index = stage.text_index(labels, text)
    return [F.when(index >= F.lit(len(labels)), F.lit(RARE_CODE)).otherwise(index.cast("int") + F.lit(FIRST_VALUE_CODE))]


def _digits(codec: DigitsCodec, c: Column, stage: _Stage) -> list[Column]:
    x = F.col(stage.helper(
        (_clipped(F.bround(c.cast("double"), 0), codec.low, codec.high) - F.lit(float(codec.low))).cast("long")))
    powers = [10**p for p in range(codec.n_digits - 1, -1, -1)]
    digits = [F.floor(x / F.lit(power)) for power in powers]
    return [digits[0], *[F.pmod(d, F.lit(10)) for d in digits[1:]]]


def _binned(codec: BinnedCodec, c: Column, stage: _Stage) -> list[Column]:
    x = F.col(stage.helper(_clipped(c.cast("double"), codec.low, codec.high)))
    code = stage.interval(codec.edges[1:-1].tolist(), x) + F.lit(1 + len(codec.points))
    for i, point in enumerate(codec.points.tolist()):  # distinct values: at most one matches
        code = F.when(x == F.lit(point), F.lit(1 + i)).otherwise(code)
    return [code]


def _datetime(codec: DatetimeCodec, c: Column, stage: _Stage) -> list[Column]:
    # a column parsed from text is a date or a wall-clock timestamp by now (spark_synth.spark.normalize)
    spark_type = {"date": "date", "timestamp": "timestamp_ntz"}.get(codec.stats.text_format, codec.stats.spark_type)
    m = _clipped(micros(c, spark_type), codec.low, codec.high)
    within_day = F.pmod(m, F.lit(MICROS_PER_DAY))
    # an exact multiple of a day divided in doubles: the quotient is whole, rounding only removes float error
    date = F.col(stage.helper(F.date_from_unix_date(F.round((m - within_day) / F.lit(MICROS_PER_DAY)).cast("int"))))
    parts = [F.year(date) - F.lit(codec.year0), F.month(date) - F.lit(1), F.dayofmonth(date) - F.lit(1)]
    if codec.has_time:
        within_day = F.col(stage.helper(within_day))
        parts += [F.pmod(F.floor(within_day / F.lit(unit)), F.lit(card)) for _, card, unit in TIME_PARTS]
    return parts


def _clipped(x: Column, low: float, high: float) -> Column:
    """x within [low, high]; null stays null (unlike greatest/least, which skip nulls)."""
    return F.when(x < F.lit(low), F.lit(low)).when(x > F.lit(high), F.lit(high)).otherwise(x)


_ENCODERS: dict[type, Callable[..., list[Column]]] = {
    CategoricalCodec: _categorical, DigitsCodec: _digits, BinnedCodec: _binned, DatetimeCodec: _datetime,
}
