"""Per-user summaries and item recommendations, updated one event at a time, in order.

Fed events in event-time order (dataflows/ordering.py), every update here is
deterministic: the same events give the same summaries, versions and
recommendations on every run.

Recommendations: items most bought by users who viewed the items this user viewed
last (co-views: a purchase counts once for each item its buyer had viewed before),
minus what the user already bought; with no co-view signal yet, the items bought
most in this event-time hour and the last ("trending").

Memory: per user a summary, the last VIEWED_KEPT items viewed and BOUGHT_KEPT items
bought; per viewed item its co-bought counts (at most the catalog squared).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TOP = 3
VIEWED_KEPT = 5
BOUGHT_KEPT = 50
RECENT_ITEMS = 10
TRENDING_KEPT = 20


@dataclass
class Summary:
    user_id: str
    first_seen: datetime
    last_seen: datetime
    version: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    total_spend: float = 0.0
    spend_currency: str | None = None
    recent_items: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "version": self.version,
            "signups": self.counts["signup"],
            "logins": self.counts["login"],
            "profile_updates": self.counts["profile_update"],
            "page_views": self.counts["page_view"],
            "purchases": self.counts["purchase"],
            "total_spend": round(self.total_spend, 2),
            "spend_currency": self.spend_currency,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "recent_items": list(self.recent_items),
        }


@dataclass
class Trending:
    """Purchases per item in the current event-time hour and the one before it."""

    hour: int = -1
    previous: Counter[str] = field(default_factory=Counter)
    current: Counter[str] = field(default_factory=Counter)

    def add(self, ts: datetime, items: list[str]) -> None:
        hour = int(ts.timestamp() // 3600)
        if hour != self.hour:
            self.previous = self.current if hour == self.hour + 1 else Counter()
            self.current = Counter()
            self.hour = hour
        self.current.update(items)

    def top(self, exclude: set[str], n: int) -> list[str]:
        scores = self.previous + self.current
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [item for item, _ in ranked if item not in exclude][:n]


@dataclass
class Recommender:
    summaries: dict[str, Summary] = field(default_factory=dict)
    viewed: dict[str, list[str]] = field(default_factory=dict)
    bought: dict[str, list[str]] = field(default_factory=dict)
    co_bought: dict[str, Counter[str]] = field(default_factory=dict)
    trending: Trending = field(default_factory=Trending)
    current: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    """user -> (version, items) of the last recommendation emitted."""

    def apply(
        self,
        user: str,
        kind: str,
        ts: datetime,
        items: list[str],
        amount: float | None,
        currency: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """One event -> the user's new summary row, and a recommendation row if it changed."""
        summary = self.summaries.get(user)
        if summary is None:
            summary = self.summaries[user] = Summary(user, ts, ts)
        summary.version += 1
        summary.counts[kind] += 1
        summary.last_seen = max(summary.last_seen, ts)
        if items:
            summary.recent_items = (items + summary.recent_items)[:RECENT_ITEMS]
        if kind == "purchase" and amount is not None:
            summary.total_spend += amount
            if summary.spend_currency is None:
                summary.spend_currency = currency
            elif summary.spend_currency != currency:
                summary.spend_currency = "mixed"
        if kind == "page_view" and items:
            seen = [i for i in self.viewed.get(user, []) if i not in items]
            self.viewed[user] = (items + seen)[:VIEWED_KEPT]
        elif kind == "purchase" and items:
            for viewed in self.viewed.get(user, []):
                counts = self.co_bought.setdefault(viewed, Counter())
                counts.update(i for i in items if i != viewed)
            self.bought[user] = (items + self.bought.get(user, []))[:BOUGHT_KEPT]
            self.trending.add(ts, items)
        else:
            return summary.row(), None
        return summary.row(), self._recommend(user, ts)

    def _recommend(self, user: str, ts: datetime) -> dict[str, Any] | None:
        exclude = set(self.bought.get(user, []))
        scores: Counter[str] = Counter()
        for viewed in self.viewed.get(user, []):
            scores.update(self.co_bought.get(viewed, Counter()))
        ranked = sorted(
            ((item, n) for item, n in scores.items() if item not in exclude),
            key=lambda kv: (-kv[1], kv[0]),
        )
        items = tuple(item for item, _ in ranked[:TOP])
        basis = "co_views"
        if not items:
            items, basis = tuple(self.trending.top(exclude, TOP)), "trending"
        if not items:
            return None
        version, previous = self.current.get(user, (0, ()))
        if items == previous:
            return None
        self.current[user] = (version + 1, items)
        return {
            "user_id": user,
            "version": version + 1,
            "ts": ts,
            "items": list(items),
            "basis": basis,
        }
