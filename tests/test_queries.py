"""Named queries over a lake the flows wrote: they run, agree with the input, bind safely."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from bytewax.testing import run_main
from helpers import frozen_now
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from dataflows import (
    api_metrics,
    behavior_etl,
    land_events,
    log_alerts,
    order_stats,
    user_activity,
)
from dataflows.inputs import SimulatorSource
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.codec import BatchDecoder
from models.simulator import SimConfig, Simulator
from models.topics import PURCHASES
from warehouse.lake import Lake
from warehouse.query import QueryError, Warehouse, named_queries, named_query

CONFIG = SimConfig(seed=8, events_per_s=300, duration_s=240)
READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


def dead_letter_counts() -> dict[tuple[str, str], int]:
    counted: dict[tuple[str, str], int] = {}
    data = READER.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "streamhouse.dead_letters":
                    for point in metric.data.data_points:
                        key = (point.attributes["flow"], point.attributes["topic"])
                        counted[key] = point.value
    return counted


COUNTED: dict[tuple[str, str], int] = {}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("lake"))
    before = dead_letter_counts()  # other tests in this process count dead letters too
    run_main(land_events.build(SimulatorSource(CONFIG), Outputs(lake=lake)))
    clock = Clock(now=frozen_now)
    for flow in (order_stats, user_activity, log_alerts, api_metrics):
        run_main(flow.build(SimulatorSource(CONFIG), Outputs(lake=lake), clock))
    run_main(behavior_etl.build(SimulatorSource(CONFIG), Outputs(lake=lake), clock))
    after = dead_letter_counts()
    COUNTED.update({k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)})
    return lake


def run(lake: Lake, name: str, **params: str) -> list[dict]:
    query = named_query(name)
    with Warehouse(lake) as wh:
        return wh.sql(query.sql, query.bind(params)).to_pylist()


def test_every_named_query_runs_with_its_defaults(lake: Lake) -> None:
    for name in named_queries():
        rows = run(lake, name)
        assert rows, name


def test_orders_per_minute_adds_up_the_windows(lake: Lake) -> None:
    rows = run(lake, "orders_per_minute")
    with Warehouse(lake) as wh:
        total = wh.sql("SELECT sum(orders_created) AS n FROM order_stats_minute").to_pylist()[0]
    assert sum(r["created"] for r in rows) == total["n"] > 0
    since = run(lake, "orders_per_minute", since="2026-01-05T10:02:00Z")
    assert since == [r for r in rows if r["minute"].isoformat() >= "2026-01-05T10:02:00+00:00"]


def test_top_customers_match_the_purchases_sent(lake: Lake) -> None:
    decoder = BatchDecoder(PURCHASES)
    spent: dict[tuple[str, str], float] = defaultdict(float)
    seen = set()
    for record in Simulator(CONFIG).records():
        if record.topic == PURCHASES:
            try:
                p = decoder.decode(record.value)
            except ValueError:
                continue
            if p.event_id not in seen:  # duplicates count once
                seen.add(p.event_id)
                spent[p.user_id, p.currency] += p.amount
    top = run(lake, "top_customers_by_revenue", limit="5")
    assert len(top) == 5
    for row in top:
        assert row["revenue"] == pytest.approx(spent[row["customer_id"], row["currency"]])
    assert top[0]["revenue"] == pytest.approx(max(spent.values()))


def test_parameters_that_look_like_sql_are_values(lake: Lake) -> None:
    hostile = "'; DROP VIEW events; --"
    assert run(lake, "open_alerts", severity=hostile) == []
    with pytest.raises(QueryError, match="not a valid timestamp"):
        run(lake, "orders_per_minute", since=hostile)
    with pytest.raises(QueryError, match="not a valid int"):
        run(lake, "top_customers_by_revenue", limit="1; DROP VIEW events")
    assert run(lake, "top_customers_by_revenue", limit="1")  # the views are all still there


def test_unknown_queries_and_parameters_are_named() -> None:
    with pytest.raises(QueryError, match="unknown query 'nope'"):
        named_query("nope")
    with pytest.raises(QueryError, match="has no parameter colour"):
        named_query("orders_per_minute").bind({"colour": "red"})


def test_dead_letters_are_counted_for_monitoring(lake: Lake) -> None:
    with Warehouse(lake) as wh:
        in_lake = wh.sql("SELECT flow, topic, count(*) AS n FROM dead_letters GROUP BY ALL")
    assert {(r["flow"], r["topic"]): r["n"] for r in in_lake.to_pylist()} == COUNTED
    assert sum(COUNTED.values()) > 0


def test_the_lake_holds_files_by_date(lake: Lake) -> None:
    folders = {p.name for p in Path(lake.table_dir("events")).iterdir() if p.is_dir()}
    assert "date=2026-01-05" in folders
