"""`cover2 simulate --start` writes a history of past business days and exits: the
reference data stamped before it, and a breach day that the worker's own code, rebuilding
the state as of a time from the topics, sees breach and recover."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from risk.calls import CallPolicy
from risk.results import CreditResult
from streams import topics as t
from streams.codec import Plausibility
from streams.kafka.clients import Connection
from streams.kafka.history import read_inputs
from streams.tools.replay import event_time, state_as_of
from streams.tools.trading_days import (
    CALLS_MET_AT,
    GAP_AT,
    REFERENCE_AT,
    SETTLEMENT_AT,
    at,
    business_days,
)

pytestmark = pytest.mark.integration

SATURDAY = dt.date(2026, 1, 3)
DAYS, EVENTS_PER_DAY = 5, 1_000


async def test_a_history_is_written_before_now_and_breaches_on_its_breach_day(
        broker: str, prefix: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--broker", f"kafka://{broker}",
         "--topic-prefix", prefix, "--start", str(SATURDAY), "--days", str(DAYS),
         "--events-per-day", str(EVENTS_PER_DAY)],
        capture_output=True, text=True, timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    days = business_days(SATURDAY, DAYS)
    breach_day = days[2]
    assert f"done, {days[0]} to {days[-1]} ({DAYS} business days)" in said
    assert f"breach day planned: {breach_day}" in said

    topics = t.Topics(prefix)
    records = (await read_inputs(Connection(broker), topics)).records
    by_topic: dict[str, list[float]] = {}
    for record in records:
        topic = topics.short(record.topic)
        by_topic.setdefault(topic, []).append(event_time(record, topic))
    reference_ts = at(days[0], REFERENCE_AT)
    for topic in (t.MEMBERS, t.INSTRUMENTS, t.SCENARIOS, t.RESOURCES):
        assert set(by_topic[topic]) == {reference_ts}, topic  # their record timestamps
    feed = [ts for topic in (t.TRADES, t.PRICES, t.COLLATERAL) for ts in by_topic[topic]]
    assert reference_ts < min(feed) and max(feed) < at(days[-1], SETTLEMENT_AT)
    assert sorted(by_topic[t.SETTLEMENTS]) == [at(day, SETTLEMENT_AT) for day in days]
    sent = len(feed) + len(by_topic[t.SETTLEMENTS])
    assert f"{sent:,} events" in said

    def credit(as_of: float) -> CreditResult:
        monitor, _ = state_as_of(records, topics, as_of, CallPolicy(), Plausibility())
        assert monitor.results is not None
        return monitor.results.credit

    assert credit(at(breach_day, GAP_AT) - 1.0).headroom >= 0
    assert credit(at(breach_day, GAP_AT)).headroom < 0
    assert credit(at(breach_day, CALLS_MET_AT[-1]) - 1.0).headroom < 0
    assert credit(at(breach_day, CALLS_MET_AT[-1])).headroom >= 0
    assert credit(at(days[-1], SETTLEMENT_AT)).headroom >= 0
