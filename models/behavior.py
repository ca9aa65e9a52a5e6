"""What users do: actions in sessions, account events, page views and purchases."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from models.base import Currency, DurationMs, Event, Id, Money, Text
from models.orders import OrderItem


class UserEvent(Event, frozen=True, kw_only=True):
    user_id: Id
    key_field: ClassVar[str] = "user_id"


# --- user-behavior ------------------------------------------------------------


class Action(StrEnum):
    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    SEARCH = "search"


class UserAction(UserEvent, frozen=True, kw_only=True, tag="user_action"):
    """One action in a session. `item_id` is absent for searches, `query` only for them."""

    action: Action
    session_id: Id
    item_id: Id | None = None
    query: Text | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action is Action.SEARCH:
            if self.query is None:
                raise ValueError("a search action needs `query`")
        elif self.item_id is None:
            raise ValueError(f"a {self.action.value} action needs `item_id`")


# --- user-events --------------------------------------------------------------


class Signup(UserEvent, frozen=True, kw_only=True, tag="signup"):
    country: Id = "DE"
    channel: Id = "web"


class Login(UserEvent, frozen=True, kw_only=True, tag="login"):
    method: Id = "password"
    success: bool = True


class ProfileUpdate(UserEvent, frozen=True, kw_only=True, tag="profile_update"):
    fields: tuple[Id, ...] = ()


UserLifecycleEvent = Signup | Login | ProfileUpdate


# --- page-views ---------------------------------------------------------------


class PageView(UserEvent, frozen=True, kw_only=True, tag="page_view"):
    url: Text
    referrer: Text | None = None
    duration_ms: DurationMs = 0.0


# --- purchases ----------------------------------------------------------------


class Purchase(UserEvent, frozen=True, kw_only=True, tag="purchase"):
    order_id: Id
    amount: Money
    currency: Currency
    items: tuple[OrderItem, ...] = ()
