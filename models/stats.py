"""Records the analytics dataflows derive (the `order-statistics` topic and its lake table)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from models.base import Currency, Id


class OrderStatsMinute(msgspec.Struct, frozen=True, kw_only=True):
    """Orders in one 1-minute event-time window, per currency. Duplicates counted once."""

    stats_id: Id
    """Deterministic: the same window and currency always get the same id, so consumers dedupe."""
    window_start: datetime
    window_end: datetime
    currency: Currency
    orders_created: int
    orders_paid: int
    orders_cancelled: int
    revenue: float
    """Sum of payment amounts in the window."""
    avg_order_value: float | None
    """Mean total of the orders created in the window; None when none were."""
    duplicates_ignored: int
