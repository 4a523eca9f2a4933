"""Input messages applied to the plain model (:class:`risk.plain.PlainCcp`), by its rules:
what the benchmark's soak and the tests check the worker against."""

from __future__ import annotations

import math
from typing import Any

from risk.plain import PlainCcp
from streams import topics as t
from streams.codec import (
    CollateralMessage,
    InstrumentMessage,
    MemberMessage,
    PriceMessage,
    ResourcesMessage,
    ScenarioMessage,
    SettlementMessage,
    Tombstone,
    TradeMessage,
)


def apply_to_plain(plain: PlainCcp, topic: str, message: Any,
                   received_ts: float = math.nan) -> None:
    """One decoded input message of ``topic`` (its short name); ``received_ts`` is its
    record's timestamp in seconds, the event time of a message without ``ts``."""
    ts = received_ts if getattr(message, "ts", None) is None else message.ts
    if isinstance(message, TradeMessage):
        plain.trade(message.member, message.instrument, message.quantity, message.price, ts)
    elif isinstance(message, PriceMessage):
        plain.price(message.instrument, message.price, ts)
    elif isinstance(message, CollateralMessage):
        plain.post_collateral(message.member, message.initial_margin, message.cash, ts)
    elif isinstance(message, SettlementMessage):
        plain.settle(None if message.member == "*" else message.member, ts)
    elif isinstance(message, MemberMessage):
        plain.upsert_member(message.to_model())
    elif isinstance(message, InstrumentMessage):
        plain.upsert_instrument(message.to_model())
    elif isinstance(message, ScenarioMessage):
        plain.upsert_scenario(message.to_model())
    elif isinstance(message, ResourcesMessage):
        plain.set_resources(message.to_model())
    elif isinstance(message, Tombstone):
        (plain.remove_member if topic == t.MEMBERS else plain.remove_scenario)(message.key)
    else:
        raise ValueError(f"not an input message of {topic}: {message!r}")
