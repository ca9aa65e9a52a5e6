"""Crash soak: every simulator-fed flow SIGKILLed --kills times at random moments and
restarted from recovery; prints, per flow, the kills survived, the tables, rows and output
messages compared with an uninterrupted run, and the differences found (there must be
none). Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set.

Usage: python tests/soak_crash.py [--kills 10] [--duration 1800] [--flows order_stats,anomalies]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from torture import FLOWS, summary, torture

from streamhouse.broker import kafka_bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--flows", default=",".join(FLOWS))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=int, default=1800, help="simulated seconds of input")
    args = parser.parse_args()
    outcomes = []
    with kafka_bootstrap() as (bootstrap, _local):
        for flow in args.flows.split(","):
            began = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                outcome = torture(flow, Path(tmp), args.kills, args.seed, args.duration, bootstrap)
            outcomes.append(outcome)
            print(f"{flow}: {outcome.kills} kills, {len(outcome.differences)} differences "
                  f"({time.monotonic() - began:.0f} s)", flush=True)  # fmt: skip
    print()
    print(summary(outcomes))
    sys.exit(1 if any(o.differences for o in outcomes) else 0)


if __name__ == "__main__":
    main()
