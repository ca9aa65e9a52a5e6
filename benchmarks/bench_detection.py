"""Detection quality: the alerting flows on simulated traffic with injected incidents.

For each seed the simulator makes an hour of traffic with four incidents (a route's
latency x6, a service's errors, orders down to 15 %, a business metric x4: its
labels). api_metrics, log_alerts, order_stats and anomalies run on it with their
default rules and detectors, and their alerts are scored against the labels
(models/incidents.py): recall, precision, median detection delay in windows, and
the most alerts one incident raised under one rule. Alerts about windows past the
end of the simulated hour are left out and counted: the input stops there, so the
last windows are cut short, which a live stream never does.

Targets: recall >= 0.95, precision >= 0.9, median delay <= 2 windows, 1 alert per
incident and rule.

Usage: python benchmarks/bench_detection.py [--seeds 10] [--duration 3600] [--rate 200]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from bytewax.testing import run_main

from dataflows import anomalies, api_metrics, log_alerts, order_stats
from dataflows.inputs import MemorySource, simulated_messages
from dataflows.outputs import Outputs
from dataflows.windowing import EPOCH, Clock
from models.incidents import GRACE, firing_alerts, matches, merge, quality
from models.simulator import SimConfig, Simulator

FLOWS = (api_metrics, log_alerts, order_stats, anomalies)
FROZEN = Clock(timedelta(seconds=10), now=lambda: EPOCH)
"""Event time only: a replay must not let the wall clock close windows."""


def alerts_of_run(config: SimConfig) -> tuple[list[dict], list[dict], float]:
    """(firing alerts, incident labels, seconds the flows took) for one simulated run."""
    messages = list(simulated_messages(config))
    labels = [i.as_label() for i in Simulator(config).incidents]
    rows: list[dict] = []
    began = time.perf_counter()
    for module in FLOWS:
        mine = [m for m in messages if m.topic in module.INPUT_TOPICS]
        captured: dict[str, list] = {}
        source = MemorySource(mine, batch_size=5_000)
        if module is anomalies:
            flow = module.build(source, Outputs(captured=captured))
        else:
            flow = module.build(source, Outputs(captured=captured), FROZEN)
        run_main(flow)
        rows += [r for t in captured.get("alerts", []) for r in t.to_pylist()]
    return firing_alerts(rows), labels, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=3600)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()

    parts = []
    print(f"{args.seeds} seeds x {args.duration} s of simulated traffic at {args.rate:g} events/s")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        config = SimConfig(seed=seed, events_per_s=args.rate, duration_s=args.duration)
        alerts, labels, seconds = alerts_of_run(config)
        end = config.start + timedelta(seconds=config.duration_s)
        edge = [a for a in alerts if a["window_end"] > end]
        alerts = [a for a in alerts if a["window_end"] <= end]
        part = quality(alerts, labels)
        parts.append(part)
        missed = [k for k, q in part.items() if q.detected < q.incidents]
        false = sum(q.alerts - q.matching for q in part.values())
        print(
            f"  seed {seed:>3}: {len(alerts):>3} alerts, {false} false, "
            f"missed {', '.join(missed) or 'none'}, {len(edge)} past the end of the input "
            f"({seconds:.1f} s in the flows)",
            flush=True,
        )
        for a in alerts:
            if not any(matches(a, i, GRACE) for i in labels):
                print(f"      unmatched: {a['rule']} {a['subject']} at {a['first_seen']:%H:%M:%S}")

    total = merge(parts)
    print()
    header = (
        f"{'incident kind':<14} {'incidents':>9} {'recall':>7} {'precision':>9} "
        f"{'median delay':>12} {'max alerts/rule':>15}"
    )
    print(header)
    print("-" * len(header))
    for q in total.values():
        print(
            f"{q.kind:<14} {q.incidents:>9} {q.recall:>7.2f} {q.precision:>9.2f} "
            f"{q.median_delay:>10.2f} w {q.most_per_rule:>15}"
        )
    met = all(
        q.recall >= 0.95 and q.precision >= 0.9 and q.median_delay <= 2 and q.most_per_rule <= 1
        for q in total.values()
    )
    print(
        "\ntargets: recall >= 0.95, precision >= 0.9, median delay <= 2 windows, "
        f"1 alert per incident and rule: {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
