"""A behavioral-log simulator on Spark: customers and their events, at any size, for scale tests and demos.

Everything is Spark expressions over ``spark.range``: no driver collect, no Python UDF, so it runs
at the speed of Spark itself. Every random number is a hash of (seed, row, purpose), so the tables
are the same for any partitioning and any cluster. The structure is what real logs have and a
generator must learn:

- heterogeneous activity: a customer's event rate is log-normal (a few heavy users, many light ones);
- seasonality: more events in December and at weekends, business hours for business customers;
- categorical drift: the channel mix moves from web to mobile over the years;
- heavy tails: purchase amounts are Pareto-distributed, scaled by segment;
- dependence on the subject: event types and amounts depend on the customer's segment.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

START = "2019-01-01"
YEARS = 5
SEGMENTS = (("consumer", 0.62), ("small_business", 0.28), ("enterprise", 0.10))
COUNTRIES = ("US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "ES", "IT", "NL", "SE", "PL", "MX", "AU")
EVENT_TYPES = ("view", "search", "cart", "purchase", "refund", "support")
EVENT_WEIGHTS = {  # per segment: business customers buy more per visit and call support more
    "consumer": (0.46, 0.22, 0.14, 0.12, 0.02, 0.04),
    "small_business": (0.36, 0.18, 0.16, 0.20, 0.03, 0.07),
    "enterprise": (0.30, 0.12, 0.16, 0.26, 0.04, 0.12),
}
AMOUNT_SCALE = {"consumer": 18.0, "small_business": 60.0, "enterprise": 240.0}
PARETO_ALPHA = 1.6  # tail index of purchase amounts: finite mean, infinite variance


def uniform(seed: int, key: Column, purpose: int) -> Column:
    """A uniform number in (0, 1) from a hash of (seed, key, purpose): the same on any partitioning."""
    bits = F.pmod(F.xxhash64(F.lit(seed), F.lit(purpose), key), F.lit(2**53))  # 53 bits: exact in a double
    return (bits.cast("double") + F.lit(0.5)) / F.lit(float(2**53))


def normal(seed: int, key: Column, purpose: int) -> Column:
    """A standard normal number (Box-Muller over two hashed uniforms)."""
    u1, u2 = uniform(seed, key, purpose), uniform(seed, key, purpose + 1)
    return F.sqrt(F.lit(-2.0) * F.log(u1)) * F.cos(F.lit(2 * math.pi) * u2)


def _choice(u: Column, values: tuple[str, ...], weights: tuple[float, ...]) -> Column:
    """The value whose cumulative-weight interval holds ``u``."""
    total, bound = sum(weights), 0.0
    expr = None
    for value, weight in zip(values[:-1], weights[:-1], strict=True):
        bound += weight / total
        expr = F.when(u < bound, F.lit(value)) if expr is None else expr.when(u < bound, F.lit(value))
    return expr.otherwise(F.lit(values[-1]))


def simulate_log(spark: SparkSession, customers: int, seed: int = 0, mean_events: float = 20.0,
                 partitions: int | None = None) -> tuple[DataFrame, DataFrame]:
    """(customers, events): ``customers`` subjects and about ``mean_events`` events each, lazily.

    Keys: ``customers.customer_id`` and ``events.customer_id``; events are ordered by ``event_time``.
    """
    if customers <= 0:
        raise ValueError(f"customers must be positive, got {customers}")
    ids = spark.range(0, customers, 1, numPartitions=partitions) if partitions else spark.range(0, customers)
    key = F.col("id")
    segment = _choice(uniform(seed, key, 1), tuple(s for s, _ in SEGMENTS), tuple(w for _, w in SEGMENTS))
    # Zipf-like country mix: weight 1/rank
    country = _choice(uniform(seed, key, 2), COUNTRIES, tuple(1 / (r + 1) for r in range(len(COUNTRIES))))
    signup_days = F.floor(uniform(seed, key, 3) * F.lit(365.0 * (YEARS - 1))).cast("int")
    age = F.greatest(F.lit(18), F.least(F.lit(90), F.round(F.lit(41.0) + F.lit(13.0) * normal(seed, key, 4))))
    # log-normal activity with mean mean_events: exp(mu + s z), mu = ln(mean) - s^2 / 2
    sigma = 1.1
    rate = F.exp(F.lit(math.log(mean_events) - sigma**2 / 2) + F.lit(sigma) * normal(seed, key, 6))
    # Poisson by its normal approximation (exact enough for a simulator), never negative, capped for sanity
    count = F.least(F.lit(int(mean_events * 60)), F.greatest(F.lit(0), F.round(
        rate + F.sqrt(rate) * normal(seed, key, 8)).cast("int")))
    base = ids.select(
        key.alias("n"),
        F.concat(F.lit("C"), F.lpad(key.cast("string"), 10, "0")).alias("customer_id"),
        segment.alias("segment"),
        country.alias("country"),
        F.date_add(F.lit(START).cast("date"), signup_days).alias("signup_date"),
        age.cast("int").alias("age"),
        count.alias("__events"),
    )
    customers_df = base.drop("n", "__events")
    events = _events(base, seed)
    return customers_df, events


def _events(base: DataFrame, seed: int) -> DataFrame:
    steps = F.when(F.col("__events") > 0, F.sequence(F.lit(1), F.col("__events")))  # none: no events
    exploded = base.select("customer_id", "segment", "signup_date", "n", F.explode(steps).alias("k"))
    key = F.col("n") * F.lit(100_003) + F.col("k")  # one key per (customer, event)
    end = F.date_add(F.lit(START).cast("date"), 365 * YEARS)
    span = F.datediff(end, F.col("signup_date"))
    # seasonality: a share of events moves into December; weekends get extra weight via a day shift
    day = F.floor(uniform(seed, key, 20) * span).cast("int")
    date = F.date_add(F.col("signup_date"), day)
    december = F.make_date(F.year(date), F.lit(12), F.least(F.dayofmonth(date), F.lit(31)))
    date = F.when((uniform(seed, key, 21) < 0.12) & (december <= end), december).otherwise(date)
    weekend_shift = F.when((uniform(seed, key, 22) < 0.25) & (F.dayofweek(date).between(2, 6)),
                           F.lit(7) - F.dayofweek(date)).otherwise(F.lit(0))
    date = F.date_add(date, weekend_shift)
    business = F.col("segment") != "consumer"
    hour = F.when(business, F.lit(8.0) + F.lit(10.0) * uniform(seed, key, 23)).otherwise(
        F.pmod(F.lit(17.0) + F.lit(9.0) * uniform(seed, key, 23), F.lit(24.0)))
    seconds = (hour * F.lit(3600.0) + F.lit(3599.0) * uniform(seed, key, 24)).cast("long")
    event_time = F.timestamp_seconds(F.unix_timestamp(date.cast("timestamp")) + seconds)
    # drift: the mobile share grows from 15% to 65% over the simulated years
    progress = F.datediff(date, F.lit(START).cast("date")) / F.lit(365.0 * YEARS)
    mobile = F.lit(0.15) + F.lit(0.5) * progress
    u_channel = uniform(seed, key, 25)
    channel = F.when(u_channel < mobile, F.lit("mobile")).when(
        u_channel < mobile + (F.lit(1.0) - mobile) * F.lit(0.8), F.lit("web")).otherwise(F.lit("store"))
    u_type = uniform(seed, key, 26)
    event_type = F.when(F.col("segment") == "consumer", _choice(u_type, EVENT_TYPES, EVENT_WEIGHTS["consumer"]))
    event_type = event_type.when(F.col("segment") == "small_business",
                                 _choice(u_type, EVENT_TYPES, EVENT_WEIGHTS["small_business"]))
    event_type = event_type.otherwise(_choice(u_type, EVENT_TYPES, EVENT_WEIGHTS["enterprise"]))
    scale = F.when(F.col("segment") == "consumer", F.lit(AMOUNT_SCALE["consumer"])).when(
        F.col("segment") == "small_business", F.lit(AMOUNT_SCALE["small_business"])).otherwise(
        F.lit(AMOUNT_SCALE["enterprise"]))
    pareto = scale * F.pow(uniform(seed, key, 27), F.lit(-1.0 / PARETO_ALPHA))
    typed = exploded.withColumn("event_type", event_type)
    amount = F.when(F.col("event_type").isin("purchase", "refund"), F.round(pareto, 2))
    return typed.select(
        "customer_id",
        event_time.alias("event_time"),
        "event_type",
        channel.alias("channel"),
        amount.alias("amount"),
    )
