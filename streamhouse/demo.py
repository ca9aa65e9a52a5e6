"""`streamhouse demo`: simulated traffic through a real windowed dataflow, no broker needed.

The simulator runs in-process as a bytewax source; order_stats windows the
order events; the report shows orders per minute next to the incident the
simulator injected, and accounts for every order event: counted, ignored as a
duplicate, late, or dead-lettered with its reason.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

import polars as pl
from bytewax.testing import TestingSink, run_main
from tqdm import tqdm

from dataflows import order_stats
from dataflows.inputs import SimulatorSource
from dataflows.messages import DeadLetter, LateEvent
from models.simulator import SimConfig, Simulator
from models.stats import OrderStatsMinute
from models.topics import INPUT_TOPICS

BAR_WIDTH = 40


@dataclass
class DemoResult:
    rows: list[OrderStatsMinute] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    late: list[LateEvent] = field(default_factory=list)
    simulator: Simulator | None = None
    records: int = 0
    """Simulated records the flow read, all topics."""


def run(config: SimConfig, *, show_progress: bool = True) -> DemoResult:
    result = DemoResult(simulator=Simulator(config))
    with tqdm(
        total=result.simulator.expected_records(),
        unit="rec",
        unit_scale=True,
        desc="demo",
        disable=not show_progress,
        mininterval=0.5,
    ) as bar:

        def progressed(n: int) -> None:
            result.records += n
            bar.update(n)

        flow = order_stats.build(
            SimulatorSource(config, on_batch=progressed),
            TestingSink(result.rows),
            TestingSink(result.dead_letters),
            TestingSink(result.late),
            config.allowed_lateness_s,
        )
        run_main(flow)
    return result


def _minute_chart(rows: list[OrderStatsMinute], incidents: list[tuple[datetime, datetime]]) -> str:
    per_minute: Counter[datetime] = Counter()
    for row in rows:
        per_minute[row.window_start] += row.orders_created
    if not per_minute:
        return "(no windows)"
    peak = max(per_minute.values()) or 1
    lines = []
    for start in sorted(per_minute):
        count = per_minute[start]
        bar = "█" * round(BAR_WIDTH * count / peak)
        mark = "  ◄ injected order drop" if any(a <= start < b for a, b in incidents) else ""
        lines.append(f"  {start:%H:%M}  {bar:<{BAR_WIDTH}} {count:>6}{mark}")
    return "\n".join(lines)


def report(result: DemoResult, out: TextIO = sys.stdout) -> None:
    sim = result.simulator
    assert sim is not None
    rows = sorted(result.rows, key=lambda r: (r.window_start, r.currency))
    table = pl.DataFrame(
        [
            {
                "minute": f"{r.window_start:%Y-%m-%d %H:%M}",
                "currency": r.currency,
                "created": r.orders_created,
                "paid": r.orders_paid,
                "cancelled": r.orders_cancelled,
                "revenue": r.revenue,
                "avg_order": r.avg_order_value,
                "dupes_ignored": r.duplicates_ignored,
            }
            for r in rows
        ]
    )
    drops = [(i.start, i.end) for i in sim.incidents if i.kind == "order_drop"]
    reasons = Counter(d.reason.split(":")[0] for d in result.dead_letters)
    with pl.Config(
        tbl_rows=len(rows) + 1,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
        float_precision=2,
    ):
        print(
            "\nOrders per minute and currency (order_stats, 1-minute event-time windows)\n",
            file=out,
        )
        print(table, file=out)
    print("\nOrders created per minute, all currencies\n", file=out)
    print(_minute_chart(rows, drops), file=out)
    counted = sum(r.orders_created + r.orders_paid + r.orders_cancelled for r in rows)
    dupes = sum(r.duplicates_ignored for r in rows)
    print(
        f"\nSimulated {result.records:,} records on {len(INPUT_TOPICS)} topics; "
        f"order_stats counted {counted:,} order events, ignored {dupes:,} duplicates, "
        f"recorded {len(result.late):,} late events and {len(result.dead_letters):,} dead letters"
        + (
            " (" + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common()) + ")"
            if reasons
            else ""
        )
        + ".",
        file=out,
    )
