"""The latency histograms: the worker's own, and that of views merged from other workers."""

from __future__ import annotations

import json

import numpy as np

from risk.calls import CallPolicy
from streams import topics as t
from streams.homes import HomePartition
from streams.monitor import Monitor
from streams.records import EventTimes
from streams.tally import LATENCY_BUCKETS, Latency
from tests.fixtures import Received

TOPICS = t.Topics("ccp.")
NOW = 1_800_000_000.0


def test_a_weighted_observation_counts_as_that_many() -> None:
    once, weighted = Latency(), Latency()
    latencies = np.array([0.0005, 0.02, 0.02, 0.3, 20.0])
    once.observe(latencies)
    weighted.observe(np.array([0.0005, 0.02, 0.3, 20.0]), np.array([1.0, 2.0, 1.0, 1.0]))
    np.testing.assert_array_equal(once.counts, weighted.counts)
    assert once.total == weighted.total
    assert once.counts.sum() == 5 and once.counts[-1] == 1  # 20 s is above every bucket
    assert len(once.counts) == len(LATENCY_BUCKETS) + 1


def trade(member: str, partition: int, offset: int, ts: float) -> Received:
    value = {"trade_id": f"t{offset}", "member": member, "instrument": "X", "quantity": 1.0,
             "price": 10.0, "ts": ts}
    return Received(TOPICS.name(t.TRADES), partition, offset, member.encode(),
                    json.dumps(value).encode(), int(ts * 1000))


def home_member(partition: int, of: int) -> str:
    home = HomePartition(of)
    return next(m for m in (f"M{i}" for i in range(100)) if home(m) == partition)


def test_a_view_carries_its_event_times_to_the_worker_that_merges_it() -> None:
    sender = Monitor(TOPICS, CallPolicy(), clock=lambda: NOW)
    sender.own({0}, 2, group_size=2)
    member = home_member(0, 2)
    sender.ingest([[trade(member, 0, i, NOW - 1.0 + i / 1000) for i in range(3)]])
    times = sender.view_times(0)
    assert sum(times.counts) == 3 and sender.view_times(0) == EventTimes()
    view = sender.state.ccp.holdings.views[0]

    clock = [NOW + 0.5]
    receiver = Monitor(TOPICS, CallPolicy(), clock=lambda: clock[0])
    receiver.own({1}, 2, group_size=2)
    receiver.offer(view, times)
    receiver.refresh()
    merged = receiver.tally.merged_latency
    assert merged.counts.sum() == 3
    assert np.isclose(merged.total, sum(NOW + 0.5 - (NOW - 1.0 + i / 1000) for i in range(3)))
    assert receiver.tally.latency.counts.sum() == 0


def test_a_worker_alone_keeps_no_event_times_for_views() -> None:
    alone = Monitor(TOPICS, CallPolicy(), clock=lambda: NOW)
    alone.own({0, 1}, 2, group_size=1)
    alone.ingest([[trade(home_member(0, 2), 0, 0, NOW - 1.0)]])
    assert alone.view_times(0) == EventTimes()
    assert alone.tally.latency.counts.sum() == 1
