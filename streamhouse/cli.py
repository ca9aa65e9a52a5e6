"""The `streamhouse` command. Thin: parse flags, read settings, call the module that does the work.

Every subcommand fails with one line naming the bad setting and exit code 2 on
a configuration error, instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from confluent_kafka import KafkaException

from sinks.kafka import KafkaDeliveryError
from streamhouse import telemetry
from streamhouse.broker import BrokerError, free_port
from streamhouse.config import ConfigError, Settings, check_broker, check_kafka_config, from_env
from streamhouse.render import FORMATS
from warehouse.lake import Lake, LakeError

FLOWS: dict[str, str] = {
    name: f"dataflows.{name}"
    for name in (
        "order_stats",
        "user_activity",
        "log_alerts",
        "api_metrics",
        "behavior_etl",
        "land_events",
        "order_commands",
        "order_projection",
        "anomalies",
    )
}
"""Dataflows `streamhouse run` knows, by name -> module holding `flow`."""


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _timestamp(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time or 'now'") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _add_simulation_flags(parser: argparse.ArgumentParser, *, rate: float, duration: int) -> None:
    g = parser.add_argument_group("simulation")
    g.add_argument("--seed", type=int, default=42, help="same seed, same bytes (default 42)")
    g.add_argument(
        "--rate",
        type=_positive(float),
        default=rate,
        help=f"events per simulated second, all topics (default {rate:g})",
    )
    g.add_argument(
        "--duration",
        type=_positive(int),
        default=duration,
        help=f"simulated seconds (default {duration})",
    )
    g.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="event time of the first second, ISO 8601 or 'now' (default 2026-01-05T10:00:00Z)",
    )
    g.add_argument("--users", type=_positive(int), default=5_000, help="distinct users")
    g.add_argument("--products", type=_positive(int), default=2_000, help="distinct products")
    g.add_argument("--late-fraction", type=_fraction, default=0.005)
    g.add_argument("--duplicate-fraction", type=_fraction, default=0.01)
    g.add_argument("--malformed-fraction", type=_fraction, default=0.002)
    g.add_argument("--no-incidents", action="store_true", help="inject no incidents")
    g.add_argument(
        "--no-order-events",
        action="store_true",
        help="emit order commands only (when order_commands produces the events)",
    )


def _sim_config(args: argparse.Namespace, settings: Settings) -> object:
    from models.simulator import SimConfig

    extra = {"start": args.start} if args.start else {}
    try:
        return SimConfig(
            seed=args.seed,
            events_per_s=args.rate,
            duration_s=args.duration,
            users=args.users,
            products=args.products,
            late_fraction=args.late_fraction,
            duplicate_fraction=args.duplicate_fraction,
            malformed_fraction=args.malformed_fraction,
            incidents=not args.no_incidents,
            order_events=not args.no_order_events,
            allowed_lateness_s=settings.allowed_lateness_s,
            **extra,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _kafka_settings(args: argparse.Namespace) -> Settings:
    settings = from_env()
    if getattr(args, "bootstrap_servers", None):
        settings = settings.with_(bootstrap_servers=args.bootstrap_servers)
    check_kafka_config(settings.kafka_config())
    return settings


# --- commands -------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from models.simulator import Simulator
    from streamhouse import simulate

    settings = _kafka_settings(args) if args.to == "kafka" else from_env()
    sim = Simulator(_sim_config(args, settings))  # type: ignore[arg-type]
    if args.to == "kafka":
        report = simulate.to_kafka(
            sim,
            settings.kafka_config(),
            speed=args.speed,
            show_progress=not args.quiet,
            topic_prefix=settings.topic_prefix,
        )
        where = f"Kafka at {settings.bootstrap_servers}"
    else:
        if args.out is None:
            raise ConfigError("--out DIR is required with --to files")
        report = simulate.to_files(sim, args.out, show_progress=not args.quiet)
        where = f"{args.out}/<topic>.jsonl"
    if args.labels:
        simulate.write_labels(sim, args.labels)
    stats = sim.stats
    print(
        f"{report.records:,} records to {where} in {report.seconds:.2f} s "
        f"({report.per_second:,.0f}/s): {stats.duplicates:,} duplicates, {stats.late:,} late, "
        f"{sum(stats.malformed.values()):,} malformed, {len(sim.incidents)} incidents"
        + (f" (labels: {args.labels})" if args.labels else "")
    )
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streamhouse.topics import create_topics

    settings = _kafka_settings(args)
    partitions = args.partitions or settings.topic_partitions
    rf = args.replication_factor or settings.replication_factor
    for result in create_topics(settings.kafka_config(), partitions, rf, settings.topic_prefix):
        print(f"{result.outcome:8} {result.name}")
    return 0


def run_command(args: argparse.Namespace) -> list[str]:
    """The `python -m bytewax.run` command line for `streamhouse run` (one process)."""
    cmd = [sys.executable, "-m", "bytewax.run", f"{FLOWS[args.flow]}:flow", "-w", str(args.workers)]
    # Without recovery the interval is still the epoch length: how often sinks write.
    cmd += ["-s", str(args.snapshot_interval)]
    if args.recovery_dir is not None:
        cmd += ["-r", str(args.recovery_dir), "-b", str(args.backup_interval)]
    return cmd


def cluster_commands(args: argparse.Namespace) -> list[list[str]]:
    """One command per process: with `--processes N`, N bytewax processes on loopback ports,
    each told its id (`-i`) and every address (`-a`), which together run one dataflow."""
    cmd = run_command(args)
    if args.processes == 1:
        return [cmd]
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(args.processes))
    return [[*cmd, "-i", str(i), "-a", addresses] for i in range(args.processes)]


def process_env(env: dict[str, str], args: argparse.Namespace, i: int) -> dict[str, str]:
    """Process `i`'s environment: with `--metrics-port P`, bytewax's /metrics (ours beside
    its own) on port P + i."""
    if args.metrics_port is None:
        return env
    return {
        **env,
        "BYTEWAX_DATAFLOW_API_ENABLED": "true",
        "BYTEWAX_DATAFLOW_API_PORT": str(args.metrics_port + i),
    }


def supervise(procs: list[subprocess.Popen[bytes]]) -> int:
    """Wait for every process of a run. One that fails stops the others (its peers would
    wait for it forever); the first failure's code is the run's."""

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    # A stop request to this command is one to the flow: forwarded, never leaving it orphaned.
    signal.signal(signal.SIGTERM, forward)
    code = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.returncode not in (None, 0)]
            if failed and code == 0:
                code = failed[0].returncode
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
            time.sleep(0.1)
    except KeyboardInterrupt:
        forward(signal.SIGINT, None)
        for p in procs:
            p.wait()
    code = code or next((p.returncode for p in procs if p.returncode), 0)
    return 128 - code if code < 0 else code  # ended by a signal: the shell's 128 + N


def recovery_dir(args: argparse.Namespace, settings: Settings) -> Path | None:
    """Where `run` keeps the flow's recovery store: --recovery-dir, else one store per flow
    and topic prefix under STREAMHOUSE_RECOVERY_DIR (two deployments on one broker, or two
    flows, never share one); None with --no-recovery."""
    if args.no_recovery:
        return None
    if args.recovery_dir is not None:
        return args.recovery_dir
    return settings.recovery_dir / f"{settings.topic_prefix}{args.flow}"


def _init_recovery(directory: Path, partitions: int) -> None:
    """Create recovery partitions on first start; an existing store is resumed, not replaced."""
    if any(directory.glob("part-*.sqlite3")):
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--recovery-dir {directory}: cannot create it ({e.strerror})") from None
    if not os.access(directory, os.W_OK):
        raise ConfigError(f"--recovery-dir {directory}: not writable")
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(directory), str(partitions)], check=True
    )


def cmd_run(args: argparse.Namespace) -> int:
    from dataflows.runtime import (
        INPUTS,
        alert_policy_from_env,
        anomaly_default_from_env,
        api_thresholds_from_env,
        error_thresholds_from_env,
        order_rate_detector_from_env,
        simulator_config_from_env,
        webhook_from_env,
    )

    env = dict(os.environ)
    if args.flow is None:
        args.flow = env.get("STREAMHOUSE_FLOW", "").strip()
        if args.flow not in FLOWS:
            raise ConfigError(
                f"STREAMHOUSE_FLOW={args.flow!r}: name a flow (one of {', '.join(sorted(FLOWS))}) "
                "as the argument or in STREAMHOUSE_FLOW"
            )
    if args.input:
        env["STREAMHOUSE_INPUT"] = args.input
    if args.until_eof:
        env["STREAMHOUSE_UNTIL_EOF"] = "1"
    if args.bootstrap_servers:
        env["STREAMHOUSE_BOOTSTRAP_SERVERS"] = args.bootstrap_servers
    # Check here what the flow will read from the same environment, so a bad setting is
    # one line from this command rather than a traceback from bytewax's child process.
    settings = from_env(env)
    kind = env.get("STREAMHOUSE_INPUT", "kafka")
    if kind not in INPUTS:
        raise ConfigError(f"STREAMHOUSE_INPUT={kind!r} is not one of {', '.join(INPUTS)}")
    if kind == "kafka":
        check_kafka_config(settings.kafka_config())
        check_broker(settings, importlib.import_module(FLOWS[args.flow]).INPUT_TOPICS)
    else:
        simulator_config_from_env(settings, env)
    # Every flow's settings are checked here, before the flow starts: one line, exit 2.
    api_thresholds_from_env(env)
    error_thresholds_from_env(env)
    alert_policy_from_env(env)
    webhook_from_env(env)
    order_rate_detector_from_env(env)
    anomaly_default_from_env(env)
    telemetry.check(env)
    args.recovery_dir = recovery_dir(args, settings)
    if args.recovery_dir is not None:
        partitions = args.recovery_partitions or args.processes * args.workers
        _init_recovery(args.recovery_dir, partitions)
    procs = []
    for i, cmd in enumerate(cluster_commands(args)):
        print("+ " + " ".join(cmd), file=sys.stderr)
        procs.append(subprocess.Popen(cmd, env=process_env(env, args, i)))
    return supervise(procs)


def cmd_api(args: argparse.Namespace) -> int:
    from streamhouse.api.app import config_from_env
    from streamhouse.api.server import serve

    settings = _kafka_settings(args)
    if args.lake is not None:
        settings = settings.with_(lake_dir=args.lake)
    config = config_from_env()
    where = (
        "with a bearer token" if config.token else "without a token (STREAMHOUSE_API_TOKEN unset)"
    )
    print(
        f"order API on http://{args.host}:{args.port} {where}; commands to Kafka at "
        f"{settings.bootstrap_servers}, views from {settings.lake_dir}",
        file=sys.stderr,
    )
    serve(settings, config, args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streamhouse import demo, demo_cqrs

    config = _sim_config(args, from_env())
    result = demo.run(config, args.lake, show_progress=not args.quiet)  # type: ignore[arg-type]
    demo.report(result)
    demo_cqrs.run(result.lake)
    return 0


def _lake(args: argparse.Namespace) -> Lake:
    return Lake(args.lake if args.lake is not None else from_env().lake_dir)


def cmd_sql(args: argparse.Namespace) -> int:
    from streamhouse.render import write_result
    from warehouse.query import Warehouse

    with Warehouse(_lake(args)) as wh:
        write_result(wh.sql(args.query), args.format, args.out)
    return 0


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {pair!r} is not name=value")
        params[name] = value
    return params


def cmd_query(args: argparse.Namespace) -> int:
    from streamhouse.render import write_result
    from warehouse.query import QueryError, Warehouse, named_queries, named_query

    if args.name is None:
        for query in named_queries().values():
            params = ", ".join(f"{p.name} ({p.kind}, default {p.default})" for p in query.params)
            print(f"{query.name:28} {query.description}\n{'':28} params: {params or 'none'}")
        return 0
    try:
        query = named_query(args.name)
        values = query.bind(_params(args.param))
    except QueryError as e:
        raise ConfigError(str(e)) from None
    with Warehouse(_lake(args)) as wh:
        write_result(wh.sql(query.sql, values), args.format, args.out)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """Open alerts, then the newest in their latest state: two named queries."""
    from streamhouse.render import write_result
    from warehouse.query import Warehouse, named_query

    with Warehouse(_lake(args)) as wh:
        for name, params, title in (
            ("open_alerts", {"severity": args.severity}, "Open alerts"),
            ("recent_alerts", {"limit": str(args.limit)}, f"Newest {args.limit} alerts"),
        ):
            query = named_query(name)
            result = wh.sql(query.sql, query.bind(params))
            if args.format == "table":
                print(f"{title} ({result.num_rows}):")
            write_result(result, args.format, None)
            if args.open_only:
                break
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from streamhouse.render import write_result
    from warehouse.query import Warehouse
    from warehouse.tables import TABLES

    rows = []
    with Warehouse(_lake(args)) as wh:
        for tbl in TABLES.values():
            column = f'"{tbl.partition_by}"'
            count, first, last = (
                wh.sql(f'SELECT count(*), min({column}), max({column}) FROM "{tbl.name}"')
                .to_pylist()[0]
                .values()
            )
            files = wh.files[tbl.name]
            rows.append(
                {
                    "table": tbl.name,
                    "rows": count,
                    "files": len(files),
                    "mb": round(sum(f.stat().st_size for f in files) / 1e6, 2),
                    "from": first,
                    "to": last,
                }
            )
    write_result(pa.Table.from_pylist(rows), args.format, args.out)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from warehouse.compaction import compact
    from warehouse.tables import TABLES, UnknownTableError

    lake = _lake(args)
    try:
        names = [args.table] if args.table else list(TABLES)
        for name in names:
            r = compact(
                lake, name, min_files=args.min_files, settle_s=args.settle_s, grace_s=args.grace_s
            )
            print(
                f"{r.table:20} merged {r.files_merged} files into {r.merged_partitions} "
                f"({r.rows:,} rows); deleted {r.sources_deleted} superseded files; "
                f"left {r.skipped_unsettled} unsettled files"
            )
    except UnknownTableError as e:
        raise ConfigError(str(e)) from None
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    port = os.environ.get("BYTEWAX_DATAFLOW_API_PORT", "3030")
    url = args.url or os.environ.get("STREAMHOUSE_HEALTH_URL") or f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as e:
        print(f"unhealthy: {url}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return 1
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from streamhouse.broker import LocalBroker

    broker = LocalBroker(workdir=args.data_dir)
    print("starting Apache Kafka (first start fetches its jars with Maven) ...", file=sys.stderr)
    broker.start()
    print(
        f"Kafka {broker.version} ready at {broker.bootstrap} "
        f"(started in {broker.start_seconds:.1f} s; log: {broker.log_path})"
    )
    print(
        f"export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}    # Ctrl-C stops the broker",
        flush=True,
    )
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop and broker._proc is not None and broker._proc.poll() is None:
            time.sleep(0.5)
    finally:
        broker.stop()
        print("broker stopped", file=sys.stderr)
    return 0


# --- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamhouse",
        description="Real-time stream processing of microservice events.",
        epilog="Settings also come from STREAMHOUSE_* environment variables; see README.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "simulate",
        help="generate traffic into Kafka or JSON-lines files",
        description="Generate seeded, realistic, messy traffic.",
    )
    p.add_argument("--to", choices=("kafka", "files"), default="kafka")
    p.add_argument("--out", type=Path, help="directory for --to files")
    p.add_argument("--labels", type=Path, help="write the injected incidents here (JSON lines)")
    p.add_argument(
        "--speed",
        type=_positive(float),
        default=None,
        help="simulated seconds per wall second (default: as fast as possible)",
    )
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides the env)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_simulation_flags(p, rate=1000.0, duration=60)
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("topics", help="manage Kafka topics")
    topics = p.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    c = topics.add_parser(
        "create",
        help="create every topic (idempotent)",
        description="Create all input, dead-letter and output topics; "
        "anomaly-models is compacted. Existing topics are kept.",
    )
    c.add_argument(
        "--partitions",
        type=_positive(int),
        default=None,
        help="default: STREAMHOUSE_TOPIC_PARTITIONS or 3",
    )
    c.add_argument(
        "--replication-factor",
        type=_positive(int),
        default=None,
        help="default: STREAMHOUSE_REPLICATION_FACTOR or 1",
    )
    c.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides the env)")
    c.set_defaults(handler=cmd_topics_create)

    p = sub.add_parser(
        "run",
        help="run a dataflow (wraps python -m bytewax.run)",
        description="Run one dataflow. Results go to stdout as JSON lines; "
        "dead letters and late events to stderr.",
    )
    p.add_argument(
        "flow",
        nargs="?",
        choices=sorted(FLOWS),
        help="the dataflow; default: STREAMHOUSE_FLOW (how the container picks it)",
    )
    p.add_argument(
        "-w", "--workers", type=_positive(int), default=1, help="worker threads per process"
    )
    p.add_argument(
        "--processes",
        type=_positive(int),
        default=1,
        help="processes on this machine that run the flow together (a bytewax cluster on "
        "loopback); partitions are spread over processes x workers",
    )
    p.add_argument(
        "--metrics-port",
        type=_positive(int),
        default=None,
        help="serve Prometheus /metrics (bytewax's and streamhouse's) on this port, "
        "process i on PORT+i; default: off",
    )
    p.add_argument(
        "--recovery-dir",
        type=Path,
        default=None,
        help="recovery snapshots here (created on first start); default: "
        "STREAMHOUSE_RECOVERY_DIR/<topic prefix><flow>, STREAMHOUSE_RECOVERY_DIR being ./recovery",
    )
    p.add_argument(
        "--no-recovery",
        action="store_true",
        help="no snapshots: a restart reads its input from the start again",
    )
    p.add_argument(
        "--recovery-partitions",
        type=_positive(int),
        default=None,
        help="partitions to create in a new recovery dir (default: processes x workers; "
        "keep it >= the most workers you will run)",
    )
    p.add_argument(
        "--snapshot-interval",
        type=_positive(int),
        default=10,
        help="whole seconds per epoch: between recovery snapshots, and between lake writes "
        "(order_projection's rows become visible when one ends)",
    )
    p.add_argument(
        "--backup-interval", type=int, default=0, help="seconds of older snapshots to keep"
    )
    p.add_argument(
        "--input",
        choices=("kafka", "simulator"),
        default=None,
        help="default: STREAMHOUSE_INPUT or kafka",
    )
    p.add_argument(
        "--until-eof",
        action="store_true",
        help="stop at the end offsets seen at start instead of waiting for more",
    )
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides the env)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "api",
        help="serve the order API (commands to Kafka, views from the lake)",
        description="POST /orders and /orders/{id}/pay|ship|deliver|cancel produce commands "
        "to order-commands; GET /orders/{id} and /orders read order_view from the lake.",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=_positive(int), default=8080, help="listen port (default 8080)")
    p.add_argument(
        "--lake", type=Path, default=None, help="default: STREAMHOUSE_LAKE_DIR or ./lake"
    )
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides the env)")
    p.set_defaults(handler=cmd_api)

    p = sub.add_parser(
        "demo",
        help="simulator -> every analytics flow -> lake -> printed report, no broker",
        description="Run the main job end to end on embedded defaults.",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--lake",
        type=Path,
        default=Path("demo-lake"),
        help="lake folder; its tables are replaced (default ./demo-lake)",
    )
    # Half an hour: the per-minute detectors learn for 10 minutes before the first incident.
    _add_simulation_flags(p, rate=150.0, duration=1800)
    p.set_defaults(handler=cmd_demo)

    def lake_flags(p: argparse.ArgumentParser, formats: bool = True) -> None:
        p.add_argument(
            "--lake",
            type=Path,
            default=None,
            help="lake folder (default: STREAMHOUSE_LAKE_DIR or ./lake)",
        )
        if formats:
            p.add_argument("--format", choices=FORMATS, default="table")
            p.add_argument("--out", type=Path, default=None, help="write here, not stdout")

    p = sub.add_parser(
        "sql",
        help="run SQL over the lake's tables (DuckDB)",
        description="Run one SQL statement over the lake's views. Only the lake "
        "can be read; settings are locked.",
    )
    p.add_argument(
        "query", help='e.g. "SELECT currency, sum(revenue) FROM order_stats_minute GROUP BY ALL"'
    )
    lake_flags(p)
    p.set_defaults(handler=cmd_sql)

    p = sub.add_parser(
        "query",
        help="run a named query; without a name, list them",
        description="Run a named query from warehouse/queries with parameters "
        "bound by DuckDB (never pasted into the SQL).",
    )
    p.add_argument("name", nargs="?", help="query name; omit to list the queries")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    lake_flags(p)
    p.set_defaults(handler=cmd_query)

    p = sub.add_parser(
        "alerts",
        help="list open alerts and the newest ones (lake table alerts)",
        description="Open alerts (view alerts_open), most severe first, then the newest "
        "alerts in their latest state.",
    )
    p.add_argument("--severity", default="%", help="only this severity (critical, warning)")
    p.add_argument("--limit", type=_positive(int), default=20, help="newest alerts shown")
    p.add_argument("--open-only", action="store_true", help="only the open alerts")
    lake_flags(p)
    p.set_defaults(handler=cmd_alerts)

    p = sub.add_parser("tables", help="list the lake's tables: rows, files, date range")
    lake_flags(p)
    p.set_defaults(handler=cmd_tables)

    p = sub.add_parser("warehouse", help="lake maintenance")
    wsub = p.add_subparsers(dest="warehouse_command", required=True, metavar="ACTION")
    c = wsub.add_parser(
        "compact",
        help="merge small files of each partition (safe while flows run)",
        description="Merge each partition's settled files into one; queries "
        "answer the same before and after.",
    )
    c.add_argument("--table", default=None, help="one table (default: all)")
    c.add_argument(
        "--min-files",
        type=_positive(int),
        default=2,
        help="merge a partition only if it has at least this many files",
    )
    c.add_argument(
        "--settle-s",
        type=float,
        default=600.0,
        help="only merge writer files snapshotted at least this long ago "
        "(> snapshot + backup interval)",
    )
    c.add_argument(
        "--grace-s",
        type=float,
        default=300.0,
        help="delete merged sources only this long after the merge (> longest query)",
    )
    lake_flags(c, formats=False)
    c.set_defaults(handler=cmd_compact)

    p = sub.add_parser(
        "broker",
        help="start a local Apache Kafka broker until Ctrl-C",
        description="Fetch (once) and start a single-node KRaft broker on a free loopback port.",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="broker data directory (default: a fresh temporary one)",
    )
    p.set_defaults(handler=cmd_broker)

    p = sub.add_parser(
        "health",
        help="exit 0 if a streamhouse process answers on its health URL (container healthcheck)",
        description="GET a URL: a flow's /metrics (bytewax's dataflow API) or the API's /healthz.",
    )
    p.add_argument(
        "--url",
        default=None,
        help="default: STREAMHOUSE_HEALTH_URL, else http://127.0.0.1:"
        "$BYTEWAX_DATAFLOW_API_PORT/metrics (port 3030 unless set)",
    )
    p.add_argument("--timeout", type=_positive(float), default=5.0, help="seconds")
    p.set_defaults(handler=cmd_health)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as e:
        print(f"streamhouse: configuration error: {e}", file=sys.stderr)
        return 2
    except BrokerError as e:
        print(f"streamhouse: broker error: {e}", file=sys.stderr)
        return 1
    except KafkaException as e:
        print(f"streamhouse: Kafka error: {e}", file=sys.stderr)
        return 1
    except KafkaDeliveryError as e:
        print(f"streamhouse: Kafka delivery failed: {e}", file=sys.stderr)
        return 1
    except duckdb.Error as e:
        print(f"streamhouse: SQL error: {e}", file=sys.stderr)
        return 1
    except (LakeError, ValueError) as e:
        print(f"streamhouse: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
