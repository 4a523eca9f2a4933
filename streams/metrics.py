"""Every metric name, and the collector that reads the latest results at scrape time.

Counters and the latency histogram are those of :class:`streams.tally.Tally`,
exposed by the same collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from risk.calls import ISSUED_LEVELS
from risk.desk import StressDesk
from risk.results import Results
from risk.reverse import ReverseStress
from streams.ledger import Ledger
from streams.tally import LATENCY_BUCKETS, Latency, Tally

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
MERGED_EVENT_LATENCY = "ccp_merged_event_latency_seconds"
LOOP_LAG = "ccp_event_loop_lag_seconds"
CHECKPOINT_TIMESTAMP = "ccp_checkpoint_timestamp_seconds"
CHECKPOINT_CUT = "ccp_checkpoint_cut_seconds"
CHECKPOINT_WRITE = "ccp_checkpoint_write_seconds"
CHECKPOINT_BYTES = "ccp_checkpoint_bytes"
REMEMBERED_TRADES = "ccp_dedupe_remembered_trades"
REMEMBERED_BYTES = "ccp_dedupe_memory_bytes"
LAST_EVENT_TIMESTAMP = "ccp_last_event_timestamp_seconds"
MARGIN_CALLS = "ccp_margin_calls"  # exposed as ccp_margin_calls_total
GROUP_MARGIN_CALLS = "ccp_group_margin_calls"  # exposed as ccp_group_margin_calls_total
GROUP_MARGIN_LEVEL = "ccp_group_margin_level"
RESULTS_AGE = "ccp_snapshot_age_seconds"  # seconds since the results were refreshed
READY = "ccp_ready"
CREDIT_CONCENTRATION_TOP2_SHARE = "ccp_credit_concentration_top2_share"
CREDIT_CONCENTRATION_HHI = "ccp_credit_concentration_hhi"
LIQUIDITY_CONCENTRATION_TOP2_SHARE = "ccp_liquidity_concentration_top2_share"
CREDIT_DEFAULTS_TO_EXHAUSTION = "ccp_credit_defaults_to_exhaustion"
CREDIT_WATERFALL_USED = "ccp_credit_waterfall_used"
CREDIT_REVERSE_STRESS_MULTIPLIER = "ccp_credit_reverse_stress_multiplier"
LIQUIDITY_REVERSE_STRESS_MULTIPLIER = "ccp_liquidity_reverse_stress_multiplier"

# The levels margin calls are issued at: warning, call.
CALL_LEVELS = tuple(level.label for level in ISSUED_LEVELS)


def _histogram(name: str, text: str, latency: Latency) -> HistogramMetricFamily:
    cumulative = np.cumsum(latency.counts).tolist()
    buckets = [(repr(bound), count) for bound, count in zip(
        LATENCY_BUCKETS, cumulative, strict=False)] + [("+Inf", cumulative[-1])]
    return HistogramMetricFamily(name, text, buckets=buckets, sum_value=latency.total)


class ResultsCollector(Collector):
    """Exposes the latest results and the tally; read at scrape time, nothing copied."""

    def __init__(self, currency: str, results: Callable[[], Results | None],
                 tally: Callable[[], Tally], results_age: Callable[[], float],
                 ready: Callable[[], bool], desk: Callable[[], StressDesk],
                 reverse: Callable[[], ReverseStress | None],
                 ledger: Callable[[], Ledger]) -> None:
        self.currency = currency
        self.ledger = ledger
        self.results = results
        self.tally = tally
        self.results_age = results_age
        self.ready = ready
        self.desk = desk
        self.reverse = reverse

    def _gauge(self, name: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, f"{text}, in {self.currency}", value=value)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(READY, "1 while /readyz answers 200 (the results are current), "
                                "else 0", value=1.0 if self.ready() else 0.0)
        yield from self._tally(self.tally())
        ledger = self.ledger()
        yield GaugeMetricFamily(REMEMBERED_TRADES, "Trades remembered by the dedupe ledger",
                                value=len(ledger))
        yield GaugeMetricFamily(REMEMBERED_BYTES, "Memory the dedupe ledger's remembered trades "
                                "take, in bytes", value=ledger.nbytes)
        results = self.results()
        if results is None:
            return
        credit, liquidity = results.credit, results.liquidity
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
                             results.groups, results.worst_exposure_by_group)
        yield self._gauge(LIQUIDITY_COVER2, "Cover-2 liquidity drain, same scenario",
                          liquidity.cover2)
        yield self._gauge(LIQUIDITY_QUALIFYING, "Qualifying liquid resources",
                          liquidity.qualifying)
        by_type = GaugeMetricFamily(LIQUIDITY_QUALIFYING_BY_TYPE,
                                    f"Qualifying liquid resources by type, in {self.currency}",
                                    labels=["type"])
        for resource_type, amount in sorted(liquidity.qualifying_by_type.items()):
            by_type.add_metric([resource_type], amount)
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
                             results.groups, results.worst_drain_by_group)
        yield self._by_group(GROUP_MARGIN_LEVEL, "Highest margin-call level any member of the "
                             "group is over now: 0 none, 1 warning, 2 call", results.groups,
                             results.margin_level_by_group, money=False)
        yield from self._desk(self.desk())
        reverse = self.reverse()
        for name, text, multiplier in (
                (CREDIT_REVERSE_STRESS_MULTIPLIER, "Smallest multiple of every scenario's shocks "
                 "at which cover-2 exceeds the prefunded resources",
                 reverse.credit if reverse is not None else None),
                (LIQUIDITY_REVERSE_STRESS_MULTIPLIER, "Smallest multiple of every scenario's "
                 "shocks at which the cover-2 drain exceeds the qualifying liquid resources",
                 reverse.liquidity if reverse is not None else None)):
            if multiplier is not None:
                yield GaugeMetricFamily(name, text, value=multiplier.k)
        yield GaugeMetricFamily(RESULTS_AGE, "Seconds since the results were last refreshed",
                                value=self.results_age())

    def _desk(self, desk: StressDesk) -> Iterator[Metric]:
        """Concentration, defaults to exhaustion and the waterfall; a figure that is
        undefined (nothing exposed, never exhausted) is absent, not zero."""
        credit, liquidity = desk.credit_concentration, desk.liquidity_concentration
        for name, text, value in (
                (CREDIT_CONCENTRATION_TOP2_SHARE, "Share of the two largest groups in the total "
                 "credit exposure of the cover-2 scenario", credit.top2_share),
                (CREDIT_CONCENTRATION_HHI, "Herfindahl-Hirschman index of the groups' credit "
                 "exposures in the cover-2 scenario", credit.hhi),
                (LIQUIDITY_CONCENTRATION_TOP2_SHARE, "Share of the two largest groups in the "
                 "total liquidity drain of its cover-2 scenario", liquidity.top2_share)):
            if value is not None:
                yield GaugeMetricFamily(name, text, value=value)
        if desk.defaults_to_exhaustion is not None:
            yield GaugeMetricFamily(
                CREDIT_DEFAULTS_TO_EXHAUSTION, "The fewest largest groups whose default "
                "exhausts the prefunded resources", value=desk.defaults_to_exhaustion.groups)
        used = GaugeMetricFamily(CREDIT_WATERFALL_USED, "What the default of the cover-2 pair "
                                 f"uses of each layer of resources, in {self.currency}",
                                 labels=["layer"])
        for layer in desk.waterfall:
            used.add_metric([layer.layer], layer.used)
        yield used

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
        for level in CALL_LEVELS:
            calls.add_metric([level], sum(n for (_, issued), n in tally.margin_calls.items()
                                          if issued == level))
        for (group, level), n in sorted(tally.margin_calls.items()):
            by_group.add_metric([group, level], n)
        yield calls
        yield by_group
        last = GaugeMetricFamily(LAST_EVENT_TIMESTAMP, "Event time of the newest applied message",
                                 labels=["topic"])
        for topic, ts in sorted(tally.last_event_ts.items()):
            last.add_metric([topic], ts)
        yield last
        yield _histogram(EVENT_LATENCY, "Event time to the moment its effect is visible in "
                         "these metrics", tally.latency)
        yield _histogram(MERGED_EVENT_LATENCY, "Event time to the moment its effect is visible "
                         "in these metrics through another worker's partition view (several "
                         "workers: their trades and collateral)", tally.merged_latency)
        yield _histogram(LOOP_LAG, "How late the event loop ran a 10 ms sleep: its stalls",
                         tally.loop_lag)
        if tally.checkpoint is not None:
            checkpoint = tally.checkpoint
            for name, text, value in (
                    (CHECKPOINT_TIMESTAMP, "When the last state checkpoint was kept",
                     checkpoint.at),
                    (CHECKPOINT_CUT, "How long the event loop paused to cut the last "
                     "checkpoint (copies of the matrices batches write, and a fork)",
                     checkpoint.cut_s),
                    (CHECKPOINT_WRITE, "How long the last checkpoint took to write, in a "
                     "child process", checkpoint.write_s),
                    (CHECKPOINT_BYTES, "Size of the last checkpoint", checkpoint.size)):
                yield GaugeMetricFamily(name, text, value=value)
