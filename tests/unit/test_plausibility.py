"""Well-formed but implausible messages are refused with their reason and change nothing:
an event time far ahead of the clock (milliseconds for seconds), a wild scenario shock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest

from risk.calls import CallPolicy
from streams.codec import Plausibility
from streams.monitor import Monitor
from streams.topics import Topics
from tests.fixtures import Received

NOW = 1_764_000_000.0  # the worker's clock in these tests
SKEW = 300.0
TOPICS = Topics("ccp.")


def monitor() -> Monitor:
    return Monitor(TOPICS, CallPolicy(), clock=lambda: NOW,
                   plausibility=Plausibility(SKEW, -1.0, 10.0))


def record(topic: str, value: object, offset: int = 0, key: str = "k") -> Received:
    return Received(TOPICS.name(topic), 0, offset, key.encode(), json.dumps(value).encode(),
                    int(NOW * 1000))


def reasons(letters: Sequence[object]) -> list[str]:
    return [json.loads(letter.value)["error"] for letter in letters]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("ts", "refused"), [(NOW * 1000.0, True), (NOW + SKEW + 1, True),
                                             (NOW + SKEW - 1, False), (NOW - 86_400, False)])
def test_an_event_time_far_ahead_is_refused(ts: float, refused: bool) -> None:
    m = monitor()
    effects = m.ingest([[record("prices", {"instrument": "X", "price": 10.0, "ts": ts})]])
    assert bool(effects.dead_letters) is refused
    assert m.counts()["prices"] == (0 if refused else 1)
    assert m.state.event_clock == (float("-inf") if refused else ts)
    if refused:
        assert "not milliseconds" in reasons(effects.dead_letters)[0]
        # The next correct price is not stale: a refused one left nothing behind.
        m.ingest([[record("prices", {"instrument": "X", "price": 11.0, "ts": NOW - 10}, 1)]])
        assert (m.counts()["prices"], m.counts()["stale"]) == (1, 0)


def test_reference_data_stamped_far_ahead_is_refused_too() -> None:
    m = monitor()
    member = replace(record("members", {"member": "M1", "default_fund": 5.0}),
                     timestamp=int(NOW * 1000 * 1000))  # a producer clock in milliseconds
    effects = m.apply_reference(member)
    assert effects.dead_letters and "M1" not in m.state.ccp.reference
    settled = m.apply_reference(record("settlements", {"member": "*", "ts": NOW * 1000}))
    assert settled.dead_letters and m.state.ccp.settlements.everyone == float("-inf")


def test_a_settlement_older_than_the_settlement_window_is_refused() -> None:
    """A window of 1 day: with a trade at NOW, a settlement 1 day and 1 s old is refused,
    one just inside is placed, one older than a settlement already placed is stale."""
    m = Monitor(TOPICS, CallPolicy(), clock=lambda: NOW,
                plausibility=Plausibility(SKEW, -1.0, 10.0, settlement_window_s=86_400.0))
    m.ingest([[record("trades", {"trade_id": "T1", "member": "A", "instrument": "X",
                                 "quantity": 1.0, "price": 10.0, "ts": NOW})]])
    late = m.apply_reference(record("settlements", {"member": "*", "ts": NOW - 86_401}))
    assert "COVER2_SETTLEMENT_WINDOW" in reasons(late.dead_letters)[0]
    assert m.state.ccp.settlements.everyone == float("-inf")
    placed = m.apply_reference(record("settlements", {"member": "*", "ts": NOW - 86_399}, 1))
    assert not placed.dead_letters and m.state.ccp.settlements.everyone == NOW - 86_399
    stale = m.apply_reference(record("settlements", {"member": "A", "ts": NOW - 86_399.5}, 2))
    assert not stale.dead_letters
    assert (m.counts()["rejected"], m.counts()["stale"]) == (1, 1)


@pytest.mark.parametrize(("shocks", "default", "refused"), [
    ({"X": -10.0}, 0.0, True), ({"X": 10.5}, 0.0, True), ({"X": -0.5}, -1.5, True),
    ({"X": -1.0, "Y": 10.0}, 0.0, False), ({"X": -0.12}, -0.05, False)])
def test_a_scenario_shock_outside_the_bounds_is_refused(shocks: dict[str, float],
                                                        default: float, refused: bool) -> None:
    m = monitor()
    effects = m.apply_reference(record("scenarios", {"scenario": "S", "shocks": shocks,
                                                     "default_shock": default}))
    assert bool(effects.dead_letters) is refused
    assert ("S" in m.state.ccp.scenarios) is not refused
    if refused:
        assert "COVER2_SHOCK_MIN" in reasons(effects.dead_letters)[0]
