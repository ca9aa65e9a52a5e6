"""A mergeable quantile sketch as polars expressions: log-spaced buckets (DDSketch).

A value v >= MIN_VALUE falls in bucket i = ceil(log_gamma(v)) with
gamma = (1 + ALPHA) / (1 - ALPHA); the bucket's representative 2 gamma^i / (gamma + 1)
is within ALPHA (1 %) of every value in it. Bucket counts add, so partial sketches
merge exactly and a quantile does not depend on how the events were batched. The
quantile q of n values is the representative of the bucket holding the
ceil(q n)-th smallest value (nearest rank): within 1 % of the exact nearest-rank value.
"""

from __future__ import annotations

import math

import polars as pl

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
MIN_VALUE = 1e-3
"""Smaller values (in the unit measured, here ms) share bucket ZERO_BUCKET, read as 0."""
ZERO_BUCKET = -(2**31)


def bucket(value: pl.Expr) -> pl.Expr:
    return (
        pl.when(value < MIN_VALUE)
        .then(pl.lit(ZERO_BUCKET))
        .otherwise((value.log() / math.log(GAMMA)).ceil())
        .cast(pl.Int32)
    )


def representative(bucket_index: pl.Expr) -> pl.Expr:
    return (
        pl.when(bucket_index == ZERO_BUCKET)
        .then(0.0)
        .otherwise(2 * pl.lit(GAMMA).pow(bucket_index.cast(pl.Float64)) / (GAMMA + 1))
    )


def quantiles(
    buckets: pl.DataFrame, group: list[str], qs: dict[str, float], count: str = "count"
) -> pl.DataFrame:
    """Rows of (group..., `_bucket`, count) -> one row per group with a column per quantile."""
    ranked = buckets.sort([*group, "_bucket"]).with_columns(
        pl.col(count).cum_sum().over(group).alias("_cum"),
        pl.col(count).sum().over(group).alias("_n"),
    )
    result = ranked.group_by(group).agg(
        *(
            representative(
                pl.col("_bucket").filter(pl.col("_cum") >= (pl.col("_n") * q).ceil()).first()
            ).alias(name)
            for name, q in qs.items()
        )
    )
    return result
