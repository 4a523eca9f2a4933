"""Settlements by event time: however the topics interleave, the core equals the plain
model, which keeps every event and recomputes."""

from __future__ import annotations

import math
from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.ccp import Ccp
from risk.model import Prices, Trades
from risk.plain import PlainCcp, plain_results
from risk.settlement import Outcome
from tests.property import strategies as s
from tests.property.test_ccp_matches_plain import apply_hot, apply_reference, assert_same
from tests.tolerances import MONEY_ATOL, MONEY_RTOL

settlements = st.builds(s.Settle, st.none() | st.sampled_from(s.MEMBERS), s.times)
topics = st.fixed_dictionaries({
    "trades": st.lists(s.trades, max_size=16),
    "prices": st.lists(s.marks, max_size=10),
    "settlements": st.lists(settlements, max_size=5),
})
reference = st.lists(st.one_of(s.members, s.instruments, s.scenarios), max_size=8)


def delivered(data: st.DataObject, by_topic: dict[str, list[object]]) -> list[object]:
    """One delivery order: the topics interleaved at random, each in its own order."""
    labels = data.draw(st.permutations([topic for topic, events in by_topic.items()
                                        for _ in events]))
    queues = {topic: iter(events) for topic, events in by_topic.items()}
    return [next(queues[topic]) for topic in labels]


def replay(data: st.DataObject, setup: list[object], order: list[object],
           prune: bool) -> Ccp:
    """The core fed ``order`` in random batches, each settlement placed a few members at a
    time between them; with ``prune``, the horizon moves on as far as the settlements still
    to come allow."""
    ccp = Ccp()
    for event in setup:
        apply_reference(ccp, PlainCcp(), event)
    batch: list[object] = []
    for i, event in enumerate(order):
        if isinstance(event, s.Settle):
            apply_hot(ccp, PlainCcp(), batch)
            batch = []
            assert ccp.settle(event.member, event.ts) is not Outcome.LATE
        else:
            batch.append(event)
            if data.draw(st.booleans()):
                apply_hot(ccp, PlainCcp(), batch)
                batch = []
        ccp.place(data.draw(st.integers(0, 2)))  # a settlement placed a slice at a time
        if prune:
            coming = [e.ts for e in order[i + 1:] if isinstance(e, s.Settle)]
            seen = [e.ts for e in order[:i + 1]]  # type: ignore[attr-defined]
            ccp.advance(min(coming, default=max(seen)))
    apply_hot(ccp, PlainCcp(), batch)
    return ccp


@settings(max_examples=300, deadline=None)
@given(reference, topics, st.booleans(), st.data())
def test_every_delivery_order_equals_the_plain_model(setup: list[object],
                                                     by_topic: dict[str, list[object]],
                                                     prune: bool,
                                                     data: st.DataObject) -> None:
    plain = PlainCcp()
    for event in setup:
        apply_reference(Ccp(), plain, event)
    for event in delivered(data, by_topic):
        if isinstance(event, s.Settle):
            plain.settle(event.member, event.ts)
        else:
            apply_hot(Ccp(), plain, [event])
    want = plain_results(plain)
    for _ in range(2):
        # The floor may take in the marks that leave one batch at a time, the rest later.
        with patch("risk.settlement.PRUNE_BATCHES", data.draw(st.sampled_from([1, 32]))):
            ccp = replay(data, setup, delivered(data, by_topic), prune)
        assert_same(ccp.publish(now=0.0)[0], want)
        for m in plain.known_members:
            got = ccp.book.variation_margin[ccp.members.get(m)]
            vm = plain.variation_margin(m)
            assert abs(got - vm) <= MONEY_ATOL + MONEY_RTOL * abs(vm)


def book(ccp: Ccp, member: str, instrument: str, quantity: float, price: float,
         ts: float) -> None:
    ccp.apply_trades(Trades([member], [instrument], np.array([quantity]), np.array([price]),
                            np.array([ts])))


def mark(ccp: Ccp, instrument: str, price: float, ts: float) -> None:
    ccp.apply_prices(Prices([instrument], np.array([price]), np.array([ts])))


def vm(ccp: Ccp, member: str) -> float:
    ccp.place()
    return float(ccp.book.variation_margin[ccp.members.get(member)])


def test_a_settlement_placed_after_newer_events_settles_only_what_came_before_it() -> None:
    """10 bought at 100, marked 110 at t=5, settled at t=6 (arriving after a mark of 120
    at t=7 and a trade of 5 at 115 at t=8): 10 x (120 - 110) + 5 x (120 - 115) unsettled."""
    ccp = Ccp()
    mark(ccp, "I", 100.0, 0.0)
    book(ccp, "A", "I", 10.0, 100.0, 1.0)
    mark(ccp, "I", 110.0, 5.0)
    mark(ccp, "I", 120.0, 7.0)
    book(ccp, "A", "I", 5.0, 115.0, 8.0)
    assert ccp.settle("A", 6.0) is Outcome.APPLIED
    assert vm(ccp, "A") == 10 * (120 - 110) + 5 * (120 - 115)
    # A late trade at t=4 is settled up to the mark at t=6; a late price at t=5.5 moves it.
    book(ccp, "A", "I", 2.0, 90.0, 4.0)
    assert vm(ccp, "A") == 12 * (120 - 110) + 5 * (120 - 115)
    mark(ccp, "I", 108.0, 5.5)
    assert vm(ccp, "A") == 12 * (120 - 108) + 5 * (120 - 115)


def test_a_settlement_older_than_the_horizon_is_refused_and_changes_nothing() -> None:
    ccp = Ccp()
    mark(ccp, "I", 100.0, 0.0)
    book(ccp, "A", "I", 10.0, 100.0, 1.0)
    mark(ccp, "I", 110.0, 50.0)
    ccp.advance(10.0)
    before = vm(ccp, "A")
    assert ccp.settle("A", 9.0) is Outcome.LATE
    assert ccp.settle(None, 9.0) is Outcome.LATE
    assert vm(ccp, "A") == before == 100.0
    # Just inside the horizon it is placed exactly: the mark at t=10 is still 100.
    assert ccp.settle(None, 10.0) is Outcome.APPLIED
    assert vm(ccp, "A") == 100.0
    # Older than a settlement already applied, it changes nothing: stale, not refused.
    assert ccp.settle("A", 9.0) is Outcome.STALE
    assert ccp.settlements.horizon == 10.0 and not math.isinf(ccp.settlements.everyone)
