"""A seeded, deterministic generator of realistic, deliberately messy microservice traffic.

The same `SimConfig` gives byte-identical records in the same order, every run:
all randomness comes from one `random.Random(seed)`, and simulated time is a
counter, never the wall clock. Records come out in *emission* order: an event's
emission time is its event time plus a delivery delay, so bounded jitter
reorders neighbours, late events arrive after the watermark has passed them,
and duplicates re-arrive shortly after the original.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from models.base import Event
from models.behavior import Action, Login, PageView, ProfileUpdate, Purchase, Signup, UserAction
from models.business import AnomalyModel, BusinessMetric, DetectorMethod
from models.codec import encode
from models.http import HttpRequest
from models.logs import Level, LogRecord, format_plain, plain_event_id
from models.orders import (
    CancelOrder,
    CreateOrder,
    DeliverOrder,
    OrderCancelled,
    OrderCreated,
    OrderDelivered,
    OrderItem,
    OrderPaid,
    OrderShipped,
    PayOrder,
    ShipOrder,
    order_total,
)
from models.simulator import world
from models.simulator.mess import malform
from models.topics import (
    ANOMALY_MODELS,
    BUSINESS_EVENTS,
    LOG_EVENTS,
    METRICS_EVENTS,
    ORDER_COMMANDS,
    ORDER_EVENTS,
    PAGE_VIEWS,
    PURCHASES,
    USER_BEHAVIOR,
    USER_EVENTS,
)

DEFAULT_START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

TOPIC_SHARES: dict[str, float] = {
    USER_BEHAVIOR: 0.34,
    METRICS_EVENTS: 0.24,
    PAGE_VIEWS: 0.14,
    LOG_EVENTS: 0.10,
    BUSINESS_EVENTS: 0.03,
    USER_EVENTS: 0.03,
}
"""Share of `events_per_s` per directly generated topic; orders take the remaining 12 %."""
ORDER_SHARE = 0.12
MESSAGES_PER_ORDER = 6.0
"""Commands, events and purchases an order produces on average, to turn a share into orders/s."""


@dataclass(frozen=True)
class SimConfig:
    seed: int = 42
    events_per_s: float = 200.0
    """Event-time rate over all topics (before duplicates)."""
    duration_s: int = 600
    start: datetime = DEFAULT_START
    users: int = 5_000
    products: int = 2_000
    sessions: int = 200
    """Concurrently active user sessions."""
    jitter_s: float = 2.0
    """Delivery delays are uniform in [0, jitter_s]: the bound on ordinary disorder."""
    allowed_lateness_s: float = 10.0
    late_fraction: float = 0.005
    """Share of events delivered 5-60 s *beyond* the allowed lateness."""
    duplicate_fraction: float = 0.01
    malformed_fraction: float = 0.002
    invalid_command_fraction: float = 0.01
    """Share of orders that also get a command the state machine must reject."""
    incidents: bool = True
    order_events: bool = True
    """Emit order-events as the write side would; turn off when order_commands runs."""

    def __post_init__(self) -> None:
        checks = {
            "events_per_s": self.events_per_s > 0,
            "duration_s": self.duration_s > 0,
            "users": self.users > 0,
            "products": self.products > 0,
            "sessions": self.sessions > 0,
            "jitter_s": 0 <= self.jitter_s < self.allowed_lateness_s
            or self.allowed_lateness_s == 0,
            "late_fraction": 0 <= self.late_fraction <= 1,
            "duplicate_fraction": 0 <= self.duplicate_fraction <= 1,
            "malformed_fraction": 0 <= self.malformed_fraction <= 1,
            "invalid_command_fraction": 0 <= self.invalid_command_fraction <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"simulator setting {name}={getattr(self, name)!r} is out of range"
                )
        if self.start.tzinfo is None:
            raise ValueError("simulator setting start must be timezone-aware (UTC)")


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One message as a producer would send it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    emit_s: float
    """Seconds after the simulation start at which the record is delivered."""


@dataclass(frozen=True)
class Incident:
    """Ground truth for a detector: what was injected, where, and when."""

    kind: str
    subject: str
    start: datetime
    end: datetime
    factor: float

    def as_label(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
            "factor": self.factor,
        }


@dataclass
class SimStats:
    records: Counter[str] = field(default_factory=Counter)
    """Records delivered per topic, duplicates and broken ones included."""
    events: int = 0
    """Distinct events generated (a malformed one counts: it replaced an event)."""
    duplicates: int = 0
    late: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    invalid_commands: int = 0

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def plan_incidents(config: SimConfig, rng: random.Random) -> list[Incident]:
    """Four incidents at fixed fractions of the run, so they never overlap one another."""
    if not config.incidents or config.duration_s < 120:
        return []

    def window(begin: float, end: float) -> tuple[datetime, datetime]:
        return (
            config.start + timedelta(seconds=int(config.duration_s * begin)),
            config.start + timedelta(seconds=int(config.duration_s * end)),
        )

    slow_route = rng.choice([r for r in world.ROUTES if r.route != "/healthz"])
    failing = rng.choice(world.SERVICES)
    metric = rng.choice(list(world.BUSINESS_METRICS))
    entity = rng.choice(world.BUSINESS_ENTITIES)
    return [
        Incident(
            "latency_spike",
            f"{slow_route.service} {slow_route.method} {slow_route.route}",
            *window(0.20, 0.30),
            6.0,
        ),
        Incident("error_burst", failing.name, *window(0.40, 0.50), 0.3),
        Incident("order_drop", "orders", *window(0.60, 0.70), 0.15),
        Incident("metric_spike", f"{metric}:{entity}", *window(0.80, 0.85), 4.0),
    ]


@dataclass
class _Session:
    user: str
    session_id: str


@dataclass
class _Order:
    order_id: str
    customer_id: str
    items: tuple[OrderItem, ...]
    currency: str
    version: int = 1


class Simulator:
    """Iterate `records()` for the traffic; `incidents` and `stats` describe what was made."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.incidents = plan_incidents(self.config, random.Random(self.config.seed ^ 0x5EED))
        self.stats = SimStats()

    def expected_records(self) -> int:
        """About how many records `records()` yields: for progress bars."""
        c = self.config
        return int(c.events_per_s * c.duration_s * (1 + c.duplicate_fraction))

    def records(self) -> Iterator[SimRecord]:
        """A fresh, deterministic pass over the whole simulation."""
        self.stats = SimStats()
        return _Run(self.config, self.incidents, self.stats).run()


class _Run:
    """The mutable state of one pass. Kept apart so `records()` can be called again."""

    def __init__(self, config: SimConfig, incidents: list[Incident], stats: SimStats) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.stats = stats
        self.start_s = config.start.timestamp()
        self.incidents = [
            (i.kind, i.subject, i.start.timestamp(), i.end.timestamp(), i.factor) for i in incidents
        ]
        self.outbox: list[tuple[float, int, SimRecord]] = []
        self.seq = 0
        self.order_actions: list[tuple[float, int, str, _Order]] = []
        self.products = world.Zipf(config.products)
        self.users = world.Zipf(config.users)
        self.route_popularity = world.Zipf(len(world.ROUTES), 0.8)
        self.page_popularity = world.Zipf(len(world.PAGES), 1.0)
        self.sessions = [self._new_session() for _ in range(config.sessions)]
        self.next_signup = config.users
        self.next_order = 0
        self.series = [(m, e) for m in world.BUSINESS_METRICS for e in world.BUSINESS_ENTITIES]

    # --- ids and time -------------------------------------------------------

    def _id(self) -> str:
        """A random (version 4) UUID from the seeded generator; formatted by hand, which is
        3x faster than uuid.UUID and the simulator's hottest call."""
        h = f"{self.rng.getrandbits(128):032x}"
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def _traceparent(self) -> bytes:
        return f"00-{self.rng.getrandbits(128):032x}-{self.rng.getrandbits(64):016x}-01".encode()

    @staticmethod
    def _time(ts: float) -> datetime:
        return datetime.fromtimestamp(round(ts, 3), UTC)

    def _incident(self, kind: str, subject: str, ts: float) -> float | None:
        for k, s, begin, end, factor in self.incidents:
            if k == kind and s == subject and begin <= ts < end:
                return factor
        return None

    def _count(self, rate: float) -> int:
        """Events in one second at `rate`: the integer part plus a Bernoulli remainder."""
        whole = int(rate)
        return whole + (self.rng.random() < rate - whole)

    # --- delivery -----------------------------------------------------------

    def _emit(self, topic: str, event: Event, ts: float) -> None:
        self._deliver(topic, event.key().encode(), encode(event), ts)

    def _deliver(
        self, topic: str, key: bytes, raw: bytes, ts: float, json_raw: bytes = b""
    ) -> None:
        """Send `raw`, possibly broken, delayed, late or twice. `json_raw` is what to break."""
        c, rng, stats = self.c, self.rng, self.stats
        stats.events += 1
        if rng.random() < c.malformed_fraction:
            kind, raw = malform(json_raw or raw, rng)
            stats.malformed[kind] += 1
        delay = rng.uniform(0.0, c.jitter_s)
        if rng.random() < c.late_fraction:
            delay = c.allowed_lateness_s + rng.uniform(5.0, 60.0)
            stats.late += 1
        emit = ts - self.start_s + delay
        record = SimRecord(topic, key, raw, (("traceparent", self._traceparent()),), emit)
        self._push(record)
        if rng.random() < c.duplicate_fraction:
            stats.duplicates += 1
            self._push(SimRecord(topic, key, raw, record.headers, emit + rng.uniform(0.0, 3.0)))

    def _push(self, record: SimRecord) -> None:
        self.seq += 1
        heapq.heappush(self.outbox, (record.emit_s, self.seq, record))

    def run(self) -> Iterator[SimRecord]:
        self._publish_anomaly_models()
        for second in range(self.c.duration_s):
            self._tick(self.start_s + second)
            # Everything generated later has event time >= second + 1 and is emitted no earlier.
            while self.outbox and self.outbox[0][0] < second + 1:
                record = heapq.heappop(self.outbox)[2]
                self.stats.records[record.topic] += 1
                yield record
        while self.outbox:
            record = heapq.heappop(self.outbox)[2]
            self.stats.records[record.topic] += 1
            yield record

    # --- one simulated second -------------------------------------------------

    def _tick(self, base: float) -> None:
        rate, rng = self.c.events_per_s, self.rng
        makers = {
            USER_BEHAVIOR: self._user_action,
            METRICS_EVENTS: self._http_request,
            PAGE_VIEWS: self._page_view,
            LOG_EVENTS: self._log_line,
            BUSINESS_EVENTS: self._business_metric,
            USER_EVENTS: self._user_event,
        }
        for topic, make in makers.items():
            for _ in range(self._count(rate * TOPIC_SHARES[topic])):
                make(base + rng.random())
        orders_per_s = rate * ORDER_SHARE / MESSAGES_PER_ORDER
        if (drop := self._incident("order_drop", "orders", base)) is not None:
            orders_per_s *= drop
        for _ in range(self._count(orders_per_s)):
            self._create_order(base + rng.random())
        while self.order_actions and self.order_actions[0][0] < base + 1:
            due, _, action, order = heapq.heappop(self.order_actions)
            self._order_step(action, order, max(due, base))

    # --- user behaviour ---------------------------------------------------------

    def _user(self) -> str:
        return f"u-{self.users.draw(self.rng):06d}"

    def _sku(self) -> str:
        return f"p-{self.products.draw(self.rng):05d}"

    def _new_session(self) -> _Session:
        return _Session(self._user(), f"s-{self.rng.getrandbits(48):012x}")

    def _user_action(self, ts: float) -> None:
        rng = self.rng
        slot = rng.randrange(len(self.sessions))
        session = self.sessions[slot]
        action = rng.choices(
            (Action.VIEW, Action.CLICK, Action.SEARCH, Action.ADD_TO_CART, Action.PURCHASE),
            (0.50, 0.20, 0.12, 0.12, 0.06),
        )[0]
        search = action is Action.SEARCH
        self._emit(
            USER_BEHAVIOR,
            UserAction(
                event_id=self._id(),
                ts=self._time(ts),
                user_id=session.user,
                action=action,
                session_id=session.session_id,
                item_id=None if search else self._sku(),
                query=rng.choice(world.SEARCH_TERMS) if search else None,
            ),
            ts,
        )
        if rng.random() < 0.08:  # the session ends; another user starts one
            self.sessions[slot] = self._new_session()

    def _page_view(self, ts: float) -> None:
        rng = self.rng
        url = world.PAGES[self.page_popularity.draw(rng)].replace("{sku}", self._sku())
        self._emit(
            PAGE_VIEWS,
            PageView(
                event_id=self._id(),
                ts=self._time(ts),
                user_id=self._user(),
                url=url,
                referrer=rng.choice(world.REFERRERS),
                duration_ms=round(world.lognormal(rng, 8000.0, 0.9), 1),
            ),
            ts,
        )

    def _user_event(self, ts: float) -> None:
        rng, common = self.rng, {"event_id": self._id(), "ts": self._time(ts)}
        roll = rng.random()
        event: Event
        if roll < 0.05:
            user = f"u-{self.next_signup:06d}"
            self.next_signup += 1
            event = Signup(
                **common,
                user_id=user,
                country=rng.choice(("DE", "FR", "GB", "ES")),
                channel=rng.choice(("web", "ios", "android")),
            )
        elif roll < 0.85:
            event = Login(
                **common,
                user_id=self._user(),
                method=rng.choice(("password", "sso")),
                success=rng.random() > 0.03,
            )
        else:
            event = ProfileUpdate(
                **common,
                user_id=self._user(),
                fields=tuple(sorted(rng.sample(("email", "address", "name"), 1))),
            )
        self._emit(USER_EVENTS, event, ts)

    # --- service telemetry ------------------------------------------------------

    def _http_request(self, ts: float) -> None:
        rng = self.rng
        route = world.ROUTES[self.route_popularity.draw(rng)]
        service = next(s for s in world.SERVICES if s.name == route.service)
        error_rate = self._incident("error_burst", service.name, ts) or service.error_rate
        duration = world.lognormal(rng, route.median_ms, route.sigma)
        series = f"{route.service} {route.method} {route.route}"
        if (spike := self._incident("latency_spike", series, ts)) is not None:
            duration *= spike
        roll = rng.random()
        if roll < error_rate:
            status = rng.choice((500, 502, 503, 504))
        elif roll < error_rate + 0.02:
            status = rng.choice((400, 404, 409, 422))
        else:
            status = 201 if route.method == "POST" else 200
        self._emit(
            METRICS_EVENTS,
            HttpRequest(
                event_id=self._id(),
                ts=self._time(ts),
                service=route.service,
                method=route.method,
                route=route.route,
                status=status,
                duration_ms=round(min(duration, 600_000.0), 2),
            ),
            ts,
        )

    def _log_line(self, ts: float) -> None:
        rng = self.rng
        service = rng.choice(world.SERVICES)
        burst = self._incident("error_burst", service.name, ts) is not None
        error_share = 0.6 if burst else 0.03
        roll = rng.random()
        level = (
            Level.ERROR
            if roll < error_share
            else Level.WARN
            if roll < error_share + 0.1
            else Level.INFO
        )
        template = rng.choice(world.LOG_MESSAGES[level.value])
        message = template.format(ms=rng.randint(50, 5000), n=rng.randint(100, 10_000))
        record = LogRecord(
            event_id=self._id(),
            ts=self._time(ts),
            level=level,
            service=service.name,
            message=message,
            error_type=rng.choice(service.error_types) if level is Level.ERROR else None,
        )
        as_json = encode(record)
        if rng.random() < 0.5:  # half the services log plain text
            plain = format_plain(record).encode()
            record = LogRecord(**{**_fields(record), "event_id": plain_event_id(plain)})
            self._deliver(LOG_EVENTS, record.key().encode(), plain, ts, json_raw=as_json)
        else:
            self._deliver(LOG_EVENTS, record.key().encode(), as_json, ts)

    # --- business metrics ---------------------------------------------------------

    def _publish_anomaly_models(self) -> None:
        for metric, entity in self.series:
            self._emit(
                ANOMALY_MODELS,
                AnomalyModel(
                    event_id=self._id(),
                    ts=self._time(self.start_s),
                    model_key=f"{metric}:{entity}",
                    method=DetectorMethod.EWMA,
                    params={"alpha": 0.05, "z": 6.0, "warmup": 20.0},
                ),
                self.start_s,
            )

    def _business_metric(self, ts: float) -> None:
        rng = self.rng
        metric, entity = rng.choice(self.series)
        daily = 1.0 + 0.2 * math.sin(2 * math.pi * (ts % 86_400) / 86_400)
        value = world.BUSINESS_METRICS[metric] * daily * (1.0 + rng.gauss(0.0, 0.05))
        if (spike := self._incident("metric_spike", f"{metric}:{entity}", ts)) is not None:
            value *= spike
        self._emit(
            BUSINESS_EVENTS,
            BusinessMetric(
                event_id=self._id(),
                ts=self._time(ts),
                metric=metric,
                entity=entity,
                value=round(value, 3),
                dims={"region": entity.split("-")[1]},
            ),
            ts,
        )

    # --- orders -----------------------------------------------------------------

    def _schedule(self, after_s: float, action: str, order: _Order) -> None:
        self.seq += 1
        heapq.heappush(self.order_actions, (after_s, self.seq, action, order))

    def _create_order(self, ts: float) -> None:
        rng = self.rng
        self.next_order += 1
        items = tuple(
            OrderItem(
                sku=f"p-{sku:05d}", qty=rng.randint(1, 3), unit_price=world.product_price(sku)
            )
            for sku in sorted({self.products.draw(rng) for _ in range(rng.randint(1, 4))})
        )
        currency = world.weighted(rng, world.CURRENCIES, world.CURRENCY_WEIGHTS)
        order = _Order(f"o-{self.c.seed}-{self.next_order:08d}", self._user(), items, currency)
        command_id = self._id()
        self._emit(
            ORDER_COMMANDS,
            CreateOrder(
                event_id=self._id(),
                ts=self._time(ts),
                command_id=command_id,
                order_id=order.order_id,
                customer_id=order.customer_id,
                items=items,
                currency=currency,
            ),
            ts,
        )
        self._event(
            OrderCreated,
            order,
            ts + 0.05,
            command_id,
            customer_id=order.customer_id,
            items=items,
            currency=currency,
            total=order_total(items),
        )
        if rng.random() < self.c.invalid_command_fraction:
            self.stats.invalid_commands += 1
            self._schedule(ts + 1.0, "invalid_deliver", order)
        roll = rng.random()
        if roll < 0.88:
            self._schedule(ts + rng.expovariate(1 / 20), "pay", order)
        elif roll < 0.95:
            self._schedule(ts + rng.expovariate(1 / 30), "cancel", order)

    def _event(
        self, kind: type[Event], order: _Order, ts: float, command_id: str, **fields: object
    ) -> None:
        """The event the write side would publish for an accepted command."""
        if self.c.order_events:
            self._emit(
                ORDER_EVENTS,
                kind(  # type: ignore[call-arg]
                    event_id=self._id(),
                    ts=self._time(ts),
                    order_id=order.order_id,
                    version=order.version,
                    command_id=command_id,
                    **fields,
                ),
                ts,
            )
        order.version += 1

    def _order_step(self, action: str, order: _Order, ts: float) -> None:
        rng = self.rng
        command_id = self._id()
        common = {
            "event_id": self._id(),
            "ts": self._time(ts),
            "command_id": command_id,
            "order_id": order.order_id,
        }
        total = order_total(order.items)
        if action == "pay":
            self._emit(
                ORDER_COMMANDS, PayOrder(**common, amount=total, currency=order.currency), ts
            )
            self._event(
                OrderPaid, order, ts + 0.05, command_id, amount=total, currency=order.currency
            )
            self._emit(
                PURCHASES,
                Purchase(
                    event_id=self._id(),
                    ts=self._time(ts + 0.1),
                    user_id=order.customer_id,
                    order_id=order.order_id,
                    amount=total,
                    currency=order.currency,
                    items=order.items,
                ),
                ts + 0.1,
            )
            if rng.random() < 0.05:
                self._schedule(ts + rng.expovariate(1 / 30), "cancel", order)
            else:
                self._schedule(ts + rng.expovariate(1 / 60), "ship", order)
        elif action == "ship":
            carrier = rng.choice(("dhl", "ups"))
            self._emit(ORDER_COMMANDS, ShipOrder(**common, carrier=carrier), ts)
            self._event(OrderShipped, order, ts + 0.05, command_id, carrier=carrier)
            self._schedule(ts + rng.expovariate(1 / 120), "deliver", order)
        elif action == "deliver":
            self._emit(ORDER_COMMANDS, DeliverOrder(**common), ts)
            self._event(OrderDelivered, order, ts + 0.05, command_id)
        elif action == "cancel":
            self._emit(ORDER_COMMANDS, CancelOrder(**common, reason="customer request"), ts)
            self._event(
                OrderCancelled,
                order,
                ts + 0.05,
                command_id,
                total=total,
                currency=order.currency,
                reason="customer request",
            )
        elif action == "invalid_deliver":  # not shipped yet: the write side must reject it
            self._emit(ORDER_COMMANDS, DeliverOrder(**common), ts)


def _fields(struct: Event) -> dict[str, object]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}
