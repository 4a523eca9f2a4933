"""Every metric name, and the collector that reads the latest snapshot at scrape time.

Counters and the latency histogram are kept in plain arrays by :class:`Tally`
and exposed by the same collector: updating them costs one addition per batch,
not a call per event.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from risk.calls import KIND_NAMES
from risk.snapshot import Snapshot

CREDIT_COVER2 = "ccp_credit_cover2"
CREDIT_COVER1 = "ccp_credit_cover1"
CREDIT_PREFUNDED = "ccp_credit_prefunded"
CREDIT_HEADROOM = "ccp_credit_headroom"
CREDIT_COVERAGE_RATIO = "ccp_credit_coverage_ratio"
CREDIT_TOP_EXPOSURE = "ccp_credit_top_exposure"
CREDIT_GROUP_EXPOSURE = "ccp_credit_group_exposure"
CREDIT_WORST_GROUP_MODE = "ccp_credit_worst_group_mode_cover2"
CREDIT_DEFAULT_FUND_MINIMUM = "ccp_credit_default_fund_minimum"
CREDIT_SCENARIO = "ccp_credit_cover2_scenario"
LIQUIDITY_COVER2 = "ccp_liquidity_cover2"
LIQUIDITY_QUALIFYING = "ccp_liquidity_qualifying"
LIQUIDITY_QUALIFYING_BY_TYPE = "ccp_liquidity_qualifying_by_type"
LIQUIDITY_HEADROOM = "ccp_liquidity_headroom"
LIQUIDITY_COVERAGE_RATIO = "ccp_liquidity_coverage_ratio"
LIQUIDITY_TOP_DRAIN = "ccp_liquidity_top_drain"
LIQUIDITY_GROUP_DRAIN = "ccp_liquidity_group_drain"
LIQUIDITY_SCENARIO = "ccp_liquidity_cover2_scenario"
EVENTS = "ccp_events"  # exposed as ccp_events_total
EVENT_LATENCY = "ccp_event_latency_seconds"
LAST_EVENT_TIMESTAMP = "ccp_last_event_timestamp_seconds"
MARGIN_CALLS = "ccp_margin_calls"  # exposed as ccp_margin_calls_total
GROUP_MARGIN_CALLS = "ccp_group_margin_calls"  # exposed as ccp_group_margin_calls_total
GROUP_MARGIN_LEVEL = "ccp_group_margin_level"
SNAPSHOT_AGE = "ccp_snapshot_age_seconds"

APPLIED, DUPLICATE, STALE, REJECTED = "applied", "duplicate", "stale", "rejected"
# Read outside its member's home partition and sent there, where it is applied.
FORWARDED = "forwarded"
OUTCOMES = (APPLIED, DUPLICATE, STALE, REJECTED, FORWARDED)
KINDS = tuple(KIND_NAMES.values())  # of margin calls: warning, call
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Tally:
    """What the worker counted: events by topic and outcome, calls, latency."""

    events: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    margin_calls: dict[tuple[str, str], int] = field(  # by (group, kind)
        default_factory=lambda: defaultdict(int))
    last_event_ts: dict[str, float] = field(default_factory=dict)
    latency_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64))
    latency_sum: float = 0.0

    def count(self, topic: str, outcome: str, n: int) -> None:
        """Add ``n`` events of ``topic`` with ``outcome``."""
        if n:
            self.events[topic, outcome] += n

    def seen(self, topic: str, newest_ts: float) -> None:
        """The newest event time applied on ``topic``."""
        if newest_ts > self.last_event_ts.get(topic, -math.inf):
            self.last_event_ts[topic] = newest_ts

    def observe_latency(self, latencies: np.ndarray) -> None:
        """Event-to-metric latencies of a batch, in seconds."""
        if len(latencies):
            self.latency_counts += np.bincount(
                np.searchsorted(LATENCY_BUCKETS, latencies, side="left"),
                minlength=len(LATENCY_BUCKETS) + 1)
            self.latency_sum += float(latencies.sum())


class SnapshotCollector(Collector):
    """Exposes the latest snapshot and the tally; read at scrape time, nothing copied."""

    def __init__(self, currency: str, snapshot: Callable[[], Snapshot | None],
                 tally: Callable[[], Tally], snapshot_age: Callable[[], float]) -> None:
        self.currency = currency
        self.snapshot = snapshot
        self.tally = tally
        self.snapshot_age = snapshot_age

    def _gauge(self, name: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, f"{text}, in {self.currency}", value=value)

    def collect(self) -> Iterator[Metric]:
        yield from self._tally(self.tally())
        snap = self.snapshot()
        if snap is None:
            return
        credit, liquidity = snap.credit, snap.liquidity
        yield self._gauge(CREDIT_COVER2, "Cover-2 credit exposure, same scenario", credit.cover2)
        yield self._gauge(CREDIT_COVER1, "Cover-1 credit exposure", credit.cover.cover1)
        yield self._gauge(CREDIT_PREFUNDED, "Prefunded default resources", credit.prefunded)
        yield self._gauge(CREDIT_HEADROOM, "Prefunded resources minus cover-2", credit.headroom)
        yield GaugeMetricFamily(CREDIT_COVERAGE_RATIO, "Prefunded resources over cover-2",
                                value=credit.coverage_ratio)
        yield self._gauge(CREDIT_WORST_GROUP_MODE,
                          "Conservative mode: two largest groups each at its own worst scenario",
                          credit.worst_group_mode)
        yield self._gauge(CREDIT_DEFAULT_FUND_MINIMUM,
                          "EMIR Art. 42(3) minimum default fund", credit.default_fund_minimum)
        yield self._scenario(CREDIT_SCENARIO, "Scenario that sets credit cover-2",
                             credit.cover.scenario)
        yield self._top(CREDIT_TOP_EXPOSURE, "Two largest group exposures in the cover-2 scenario",
                        [(t.group, t.amount) for t in credit.cover.top])
        yield self._by_group(CREDIT_GROUP_EXPOSURE, "Each group's worst-scenario credit exposure",
                             snap.groups, snap.worst_exposure_by_group)
        yield self._gauge(LIQUIDITY_COVER2, "Cover-2 liquidity drain, same scenario",
                          liquidity.cover2)
        yield self._gauge(LIQUIDITY_QUALIFYING, "Qualifying liquid resources",
                          liquidity.qualifying)
        by_type = GaugeMetricFamily(LIQUIDITY_QUALIFYING_BY_TYPE,
                                    f"Qualifying liquid resources by type, in {self.currency}",
                                    labels=["type"])
        for kind, amount in sorted(liquidity.qualifying_by_type.items()):
            by_type.add_metric([kind], amount)
        yield by_type
        yield self._gauge(LIQUIDITY_HEADROOM, "Qualifying liquid resources minus cover-2 drain",
                          liquidity.headroom)
        yield GaugeMetricFamily(LIQUIDITY_COVERAGE_RATIO,
                                "Qualifying liquid resources over the cover-2 drain",
                                value=liquidity.coverage_ratio)
        yield self._scenario(LIQUIDITY_SCENARIO, "Scenario that sets the liquidity cover-2",
                             liquidity.cover.scenario)
        yield self._top(LIQUIDITY_TOP_DRAIN, "Two largest group drains in the cover-2 scenario",
                        [(t.group, t.amount) for t in liquidity.cover.top])
        yield self._by_group(LIQUIDITY_GROUP_DRAIN, "Each group's worst-scenario liquidity drain",
                             snap.groups, snap.worst_drain_by_group)
        yield self._by_group(GROUP_MARGIN_LEVEL, "Highest margin-call level any member of the "
                             "group is over now: 0 none, 1 warning, 2 call", snap.groups,
                             snap.margin_level_by_group, money=False)
        yield GaugeMetricFamily(SNAPSHOT_AGE, "Seconds since the results were last refreshed",
                                value=self.snapshot_age())

    def _scenario(self, name: str, text: str, scenario: str | None) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, f"{text} (1 on its label)", labels=["scenario"])
        family.add_metric([scenario or "none"], 1.0)
        return family

    def _top(self, name: str, text: str, top: list[tuple[str, float]]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, f"{text}, in {self.currency}", labels=["rank", "group"])
        for rank in range(2):  # exactly two series, a missing group as "none"
            group, amount = top[rank] if rank < len(top) else ("none", 0.0)
            family.add_metric([str(rank + 1), group], amount)
        return family

    def _by_group(self, name: str, text: str, groups: tuple[str, ...], amounts: np.ndarray,
                  money: bool = True) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, f"{text}, in {self.currency}" if money else text,
                                   labels=["group"])
        for group, amount in zip(groups, amounts.tolist(), strict=True):
            family.add_metric([group], amount)
        return family

    def _tally(self, tally: Tally) -> Iterator[Metric]:
        events = CounterMetricFamily(EVENTS, "Input messages by topic and outcome",
                                     labels=["topic", "outcome"])
        for (topic, outcome), n in sorted(tally.events.items()):
            events.add_metric([topic, outcome], n)
        yield events
        calls = CounterMetricFamily(MARGIN_CALLS, "Margin warnings and calls issued",
                                    labels=["kind"])
        by_group = CounterMetricFamily(GROUP_MARGIN_CALLS,
                                       "Margin warnings and calls issued, by member group",
                                       labels=["group", "kind"])
        for kind in KINDS:
            calls.add_metric([kind], sum(n for (_, k), n in tally.margin_calls.items()
                                         if k == kind))
        for (group, kind), n in sorted(tally.margin_calls.items()):
            by_group.add_metric([group, kind], n)
        yield calls
        yield by_group
        last = GaugeMetricFamily(LAST_EVENT_TIMESTAMP, "Event time of the newest applied message",
                                 labels=["topic"])
        for topic, ts in sorted(tally.last_event_ts.items()):
            last.add_metric([topic], ts)
        yield last
        cumulative = np.cumsum(tally.latency_counts).tolist()
        buckets = [(repr(bound), count) for bound, count in zip(
            LATENCY_BUCKETS, cumulative, strict=False)] + [("+Inf", cumulative[-1])]
        yield HistogramMetricFamily(
            EVENT_LATENCY, "Event time to the moment its effect is visible in these metrics",
            buckets=buckets, sum_value=tally.latency_sum)
