"""`streamhouse demo`: simulated traffic in, a Parquet lake out, answers from DuckDB. No broker.

The simulator runs once; every dataflow reads its messages in-process, one after the other: land_events
lands every valid event in `events`; order_stats, user_activity, log_alerts and
api_metrics window their topics and watch them for alerts; behavior_etl merges three
topics into records, summaries and recommendations; anomalies scores the business
metrics; all dead-letter what they cannot decode. The report
is read back from the lake with DuckDB: orders per minute next to the order drop
the simulator injected, the slowest routes and top errors next to the latency spike
and error burst, each injected incident with the alerts it raised, the most active users, and an account of
every order event.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import pyarrow as pa
from bytewax.testing import run_main
from tqdm import tqdm

from dataflows import (
    anomalies,
    api_metrics,
    behavior_etl,
    land_events,
    log_alerts,
    order_stats,
    user_activity,
)
from dataflows.inputs import MemorySource, simulated_messages
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.incidents import GRACE, matches
from models.simulator import SimConfig, Simulator
from streamhouse.render import print_table
from warehouse.lake import Lake
from warehouse.query import Warehouse, named_query
from warehouse.tables import TABLES

BAR_WIDTH = 40
INCIDENT_NAMES = {"latency_spike": "a latency spike", "error_burst": "an error burst"}


@dataclass
class DemoResult:
    lake: Lake
    simulator: Simulator
    records: int = 0
    """Simulated records each flow read, all topics."""


def reset_lake(lake: Lake) -> None:
    """Start from an empty lake: remove the demo's tables, and nothing else."""
    for name in TABLES:
        shutil.rmtree(lake.table_dir(name), ignore_errors=True)


def run(config: SimConfig, lake_dir: Path, *, show_progress: bool = True) -> DemoResult:
    lake = Lake(lake_dir)
    reset_lake(lake)
    result = DemoResult(lake=lake, simulator=Simulator(config))
    outputs = Outputs(lake=lake)
    clock = Clock(timedelta(seconds=config.allowed_lateness_s))
    # Simulated once and replayed to each flow, as a topic is: results do not depend on
    # batching (tests/test_properties.py), and the simulator is the slow part.
    messages = list(
        tqdm(
            simulated_messages(config),
            total=result.simulator.expected_records(),
            unit="rec",
            unit_scale=True,
            desc="simulate",
            disable=not show_progress,
            mininterval=0.5,
        )
    )
    flows = (
        ("land_events", lambda source: land_events.build(source, outputs)),
        ("order_stats", lambda source: order_stats.build(source, outputs, clock)),
        ("user_activity", lambda source: user_activity.build(source, outputs, clock)),
        ("log_alerts", lambda source: log_alerts.build(source, outputs, clock)),
        ("api_metrics", lambda source: api_metrics.build(source, outputs, clock)),
        ("behavior_etl", lambda source: behavior_etl.build(source, outputs, clock)),
        ("anomalies", lambda source: anomalies.build(source, outputs)),
    )
    for name, build in flows:
        with tqdm(
            total=result.simulator.expected_records(),
            unit="rec",
            unit_scale=True,
            desc=name,
            disable=not show_progress,
            mininterval=0.5,
        ) as bar:
            read = 0

            def progressed(n: int, bar: tqdm = bar) -> None:
                nonlocal read
                read += n
                bar.update(n)

            run_main(build(MemorySource(messages, batch_size=5_000, on_batch=progressed)))
            result.records = read
    return result


def _minute_chart(
    per_minute: list[dict[str, object]], drops: list[tuple[datetime, datetime]]
) -> str:
    if not per_minute:
        return "(no windows)"
    peak = max(int(row["created"]) for row in per_minute) or 1
    lines = []
    for row in per_minute:
        start, count = row["minute"], int(row["created"])
        bar = "█" * round(BAR_WIDTH * count / peak)
        mark = "  ◄ injected order drop" if any(a <= start < b for a, b in drops) else ""
        lines.append(f"  {start:%H:%M}  {bar:<{BAR_WIDTH}} {count:>6}{mark}")
    return "\n".join(lines)


def _named(wh: Warehouse, name: str, **params: str) -> pa.Table:
    query = named_query(name)
    return wh.sql(query.sql, query.bind(params))


def alerts_report(wh: Warehouse, sim: Simulator) -> str:
    """Each injected incident with the alerts that matched it (models/incidents.py), then
    any alert that matched none."""
    rows = wh.sql("SELECT * FROM alerts_latest ORDER BY first_seen, rule, subject").to_pylist()
    labels = [i.as_label() for i in sim.incidents]
    lines, matched = [], set()
    for incident, label in zip(sim.incidents, labels, strict=True):
        found = [a for a in rows if matches(a, label, GRACE)]
        matched |= {a["alert_id"] for a in found}
        lines.append(
            f"  injected {incident.kind:<13} {incident.subject:<30} "
            f"{incident.start:%H:%M:%S}-{incident.end:%H:%M:%S}"
            + ("" if found else "   NOT DETECTED")
        )
        for a in found:
            delay = (a["first_seen"] - incident.start).total_seconds()
            lines.append(
                f"      alert {a['rule']:<20} {a['state']:<8} {a['first_seen']:%H:%M:%S}-"
                f"{a['last_seen']:%H:%M:%S}  worst {a['observed']:.4g}  "
                f"first seen {delay:+.0f} s from the start"
            )
    others = [a for a in rows if a["alert_id"] not in matched]
    lines.append(f"  alerts that match no incident: {len(others)}")
    for a in others:
        lines.append(
            f"      alert {a['rule']:<20} {a['subject']:<30} {a['state']:<8} "
            f"{a['first_seen']:%H:%M:%S}-{a['last_seen']:%H:%M:%S}"
        )
    return "\n".join(lines)


def report(result: DemoResult, out: TextIO = sys.stdout) -> None:
    sim = result.simulator
    labels = {i.kind: i for i in sim.incidents}
    with Warehouse(result.lake) as wh:
        print(
            f"\nLake: {result.lake.root}  (query it: streamhouse sql --lake "
            f'{result.lake.root} "SELECT ...")',
            file=out,
        )
        print("\nOrders per minute and currency (lake table order_stats_minute)\n", file=out)
        print_table(
            wh.sql(
                "SELECT strftime(window_start, '%Y-%m-%d %H:%M') AS minute, currency, "
                "orders_created AS created, orders_paid AS paid, orders_cancelled AS cancelled, "
                "revenue, avg_order_value AS avg_order, duplicates_ignored AS dupes_ignored "
                "FROM order_stats_minute ORDER BY window_start, currency"
            ),
            out,
        )
        print("\nOrders created per minute, all currencies (query orders_per_minute)\n", file=out)
        drops = [(i.start, i.end) for i in sim.incidents if i.kind == "order_drop"]
        print(_minute_chart(_named(wh, "orders_per_minute").to_pylist(), drops), file=out)

        for kind, query, title in (
            ("latency_spike", "slowest_routes", "Slowest routes (api_metrics)"),
            ("error_burst", "top_errors", "Top errors (log_alerts)"),
        ):
            window: dict[str, str] = {}
            heading = f"{title}, query {query}"
            if (incident := labels.get(kind)) is not None:
                window = {"since": incident.start.isoformat(), "until": incident.end.isoformat()}
                heading = (
                    f"{title} while the simulator injected {INCIDENT_NAMES[kind]} in "
                    f"{incident.subject}, {incident.start:%H:%M:%S}-{incident.end:%H:%M:%S} "
                    f"(query {query})"
                )
            print(f"\n{heading}\n", file=out)
            print_table(_named(wh, query, **window).slice(0, 5), out)

        print("\nAlerts raised (lake table alerts) next to the incidents injected\n", file=out)
        print(alerts_report(wh, sim), file=out)

        print(
            "\nMost active users (user_activity) and what behavior_etl recommends them\n", file=out
        )
        print_table(_named(wh, "most_active_users", limit="5"), out)
        print(file=out)
        print_table(
            wh.sql(
                "SELECT s.user_id, s.page_views, s.purchases, r.items AS recommended, r.basis, "
                "r.version AS changes FROM user_summary_latest AS s "
                "JOIN user_recommendations_latest AS r USING (user_id) "
                "ORDER BY s.version DESC, s.user_id LIMIT 5"
            ),
            out,
        )

        counts = wh.sql(
            "SELECT (SELECT count(*) FROM events) AS events, "
            "(SELECT count(*) FROM events WHERE topic = 'order-events') AS order_events, "
            "(SELECT coalesce(sum(orders_created + orders_paid + orders_cancelled), 0) "
            "   FROM order_stats_minute) AS counted, "
            "(SELECT coalesce(sum(duplicates_ignored), 0) FROM order_stats_minute) AS dupes, "
            "(SELECT count(*) FROM late_events WHERE flow = 'order_stats') AS late, "
            "(SELECT count(*) FROM dead_letters WHERE flow = 'land_events') AS dead_all, "
            "(SELECT count(*) FROM dead_letters WHERE flow = 'order_stats') AS dead_orders"
        ).to_pylist()[0]
    print(
        f"\nSimulated {result.records:,} records. land_events landed {counts['events']:,} "
        f"events and {counts['dead_all']:,} dead letters. order_stats counted "
        f"{counts['counted']:,} order events, ignored {counts['dupes']:,} duplicates, "
        f"recorded {counts['late']:,} late events and {counts['dead_orders']:,} dead letters.",
        file=out,
    )
