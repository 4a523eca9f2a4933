"""Small CCPs built from stated losses, for the worked examples, and records built by hand."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.ccp import Ccp
from risk.model import Collateral, Member, Prices, Resources, Scenario, Trades

# The mark of each member's book in the core's own fixture.
UNIT_PRICE = 1.0


def book_price(losses: Mapping[str, float]) -> float:
    """The mark of a member's one-contract book: the smallest power of two at least as large
    as every stated loss, so that each shock (-loss / price) is a plausible relative move
    within [-1, 1] and exact in binary floating point."""
    largest = max((abs(loss) for loss in losses.values()), default=1.0)
    return float(2.0 ** math.ceil(math.log2(max(largest, 1.0))))


def ccp_with_losses(losses: Mapping[str, Mapping[str, float]], *,
                    groups: Mapping[str, str] | None = None,
                    initial_margin: Mapping[str, float] | None = None,
                    cash: Mapping[str, float] | None = None,
                    default_fund: Mapping[str, float] | None = None,
                    settlement_obligation: Mapping[str, float] | None = None,
                    resources: Resources | None = None) -> Ccp:
    """A CCP whose members lose exactly ``losses[member][scenario]``.

    Each member holds one contract of its own instrument marked at 1, and each
    scenario shocks that instrument by minus the stated loss (the core takes any shock;
    the service's messages, :func:`messages_with_losses`, keep shocks plausible).
    """
    groups, initial_margin, cash = groups or {}, initial_margin or {}, cash or {}
    default_fund, settlement_obligation = default_fund or {}, settlement_obligation or {}
    ccp = Ccp()
    members = list(losses)
    for m in members:
        ccp.upsert_member(Member(m, groups.get(m), default_fund.get(m, 0.0),
                                 settlement_obligation.get(m, 0.0)))
    instruments = [f"book-{m}" for m in members]
    ccp.apply_prices(Prices(instruments, np.full(len(members), UNIT_PRICE),
                            np.zeros(len(members))))
    ccp.apply_trades(Trades(members, instruments, np.ones(len(members)),
                            np.full(len(members), UNIT_PRICE), np.zeros(len(members))))
    ccp.apply_collateral(Collateral(
        members, np.array([initial_margin.get(m, 0.0) for m in members]),
        np.array([cash.get(m, 0.0) for m in members]), np.zeros(len(members))))
    scenarios = sorted({s for by_scenario in losses.values() for s in by_scenario})
    for s in scenarios:
        ccp.upsert_scenario(Scenario(s, {f"book-{m}": -losses[m].get(s, 0.0) / UNIT_PRICE
                                         for m in members}))
    ccp.set_resources(resources or Resources())
    return ccp


Message = tuple[str, str | None, Any]


def messages_with_losses(losses: Mapping[str, Mapping[str, float]], *,
                         groups: Mapping[str, str] | None = None,
                         initial_margin: Mapping[str, float] | None = None,
                         cash: Mapping[str, float] | None = None,
                         default_fund: Mapping[str, float] | None = None,
                         settlement_obligation: Mapping[str, float] | None = None,
                         resources: Mapping[str, Any] | None = None) -> list[Message]:
    """The contract's messages for the book of :func:`ccp_with_losses`: (topic, key, value)."""
    groups, initial_margin, cash = groups or {}, initial_margin or {}, cash or {}
    default_fund, settlement_obligation = default_fund or {}, settlement_obligation or {}
    members = list(losses)
    out: list[Message] = []
    for m in members:
        member: dict[str, Any] = {"member": m, "default_fund": default_fund.get(m, 0.0),
                                  "settlement_obligation": settlement_obligation.get(m, 0.0)}
        if m in groups:
            member["group"] = groups[m]
        out.append(("members", m, member))
        out.append(("prices", f"book-{m}", {"instrument": f"book-{m}",
                                            "price": book_price(losses[m]),
                                            "ts": 1.0}))
        out.append(("trades", m, {"trade_id": f"open-{m}", "member": m,
                                  "instrument": f"book-{m}", "quantity": 1,
                                  "price": book_price(losses[m])}))
        out.append(("collateral", m, {"member": m, "initial_margin": initial_margin.get(m, 0.0),
                                      "cash": cash.get(m, 0.0), "ts": 1.0}))
    for s in sorted({s for by_scenario in losses.values() for s in by_scenario}):
        out.append(("scenarios", s, {"scenario": s, "shocks": {
            f"book-{m}": -losses[m].get(s, 0.0) / book_price(losses[m]) for m in members}}))
    out.append(("resources", "resources", dict(resources or {"skin_in_the_game": 0.0,
                                                             "liquid_resources": []})))
    return out


@dataclass(frozen=True)
class Received:
    """A record built by hand, as the monitor takes records from a consumer."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # milliseconds
