"""The simulated business: services and their routes, products, pages, business series.

Fixed tables rather than random ones, so that a route named in an incident label
or a README example means the same thing in every run.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    route: str
    median_ms: float
    sigma: float = 0.45
    """Log-normal shape of latency: p99 is about median * exp(2.33 * sigma)."""


@dataclass(frozen=True)
class Service:
    name: str
    error_types: tuple[str, ...]
    error_rate: float
    """Share of 5xx responses when healthy."""


SERVICES: tuple[Service, ...] = (
    Service("api-gateway", ("UpstreamTimeout", "RateLimitError"), 0.002),
    Service(
        "order-service", ("OrderValidationError", "DatabaseTimeout", "ConcurrencyError"), 0.004
    ),
    Service("payment-service", ("PaymentTimeout", "CardDeclinedError", "GatewayFailure"), 0.006),
    Service("catalog-service", ("CacheMissError", "SearchBackendTimeout"), 0.003),
    Service("user-service", ("AuthError", "SessionStoreTimeout"), 0.003),
)

ROUTES: tuple[Route, ...] = (
    Route("api-gateway", "GET", "/healthz", 1.5, 0.3),
    Route("order-service", "POST", "/orders", 45.0),
    Route("order-service", "GET", "/orders/{id}", 12.0),
    Route("order-service", "POST", "/orders/{id}/pay", 80.0),
    Route("payment-service", "POST", "/payments", 120.0, 0.5),
    Route("payment-service", "GET", "/payments/{id}", 15.0),
    Route("catalog-service", "GET", "/products", 25.0),
    Route("catalog-service", "GET", "/products/{id}", 8.0),
    Route("catalog-service", "GET", "/search", 60.0, 0.6),
    Route("user-service", "POST", "/login", 35.0),
    Route("user-service", "GET", "/users/{id}", 10.0),
)

PAGES: tuple[str, ...] = (
    "/",
    "/search",
    "/product/{sku}",
    "/cart",
    "/checkout",
    "/account",
    "/orders",
    "/help",
)
REFERRERS: tuple[str | None, ...] = (
    None,
    "https://www.google.com/",
    "https://news.example.org/",
    "https://social.example.com/",
)
CURRENCIES: tuple[str, ...] = ("EUR", "USD", "GBP")
CURRENCY_WEIGHTS: tuple[float, ...] = (0.6, 0.3, 0.1)
SEARCH_TERMS: tuple[str, ...] = (
    "shoes",
    "jacket",
    "coffee",
    "headphones",
    "lamp",
    "backpack",
    "gift",
    "sale",
)

BUSINESS_METRICS: dict[str, float] = {
    # metric -> typical level
    "revenue_eur": 5000.0,
    "signups": 40.0,
    "cart_abandonment_pct": 65.0,
    "inventory_level": 1200.0,
}
BUSINESS_ENTITIES: tuple[str, ...] = ("store-berlin", "store-paris", "store-london", "store-madrid")

LOG_MESSAGES: dict[str, tuple[str, ...]] = {
    "INFO": ("request served", "cache refreshed", "connection pool resized", "job finished"),
    "WARN": ("slow query took {ms} ms", "retrying upstream call", "queue depth {n} above target"),
    "ERROR": ("upstream did not answer in {ms} ms", "transaction rolled back", "request failed"),
}


class Zipf:
    """Draws indexes 0..n-1 with probability proportional to 1 / (rank + 1) ** s.

    Popular products and heavy users are the norm in real traffic; a uniform
    choice would hide skew bugs (hot keys, uneven partitions).
    """

    def __init__(self, n: int, s: float = 1.1) -> None:
        weights = (1.0 / (rank + 1) ** s for rank in range(n))
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cumulative, rng.random() * self._total)


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def weighted(rng: random.Random, options: Sequence[str], weights: Sequence[float]) -> str:
    return rng.choices(options, weights)[0]


def product_price(sku_index: int) -> float:
    """A stable price per product, from 2.99 up, so revenue is reproducible."""
    return round(2.99 + (sku_index * 7919 % 20000) / 100.0, 2)
