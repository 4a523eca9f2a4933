"""The worker's one way in: decode, deduplicate, apply, refresh.

No Kafka here: the ingest loop and the faust agents hand records in
(:mod:`streams.records`), and send out the effects that come back (margin
calls, dead letters, forwarded messages). Everything that must survive a
restart is in :class:`streams.state.MonitorState`, which records the input
offsets it includes; which partitions count from where is
:mod:`streams.handover`'s business.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from risk.calls import CallPolicy, MarginCall
from risk.ccp import PLACE_SLICE, Ccp, MemberRows
from risk.desk import StressDesk, stress_desk
from risk.liquidity import provided
from risk.merge import PartitionView
from risk.model import Collateral, Prices, Trades
from risk.results import Results
from risk.reverse import ReverseStress, books, reverse_stress
from risk.settlement import Outcome
from streams import topics as t
from streams.background import in_background
from streams.codec import (
    CollateralMessage,
    InstrumentMessage,
    MemberMessage,
    Plausibility,
    PriceMessage,
    Rejection,
    ResourcesMessage,
    ScenarioMessage,
    SettlementMessage,
    Tombstone,
    TradeMessage,
    decode,
    decode_many,
    encode,
    text,
)
from streams.documents import dead_letter_document
from streams.handover import Handover
from streams.homes import HomePartition
from streams.records import DeadLetter, Effects, EventTimes, Forward, Record
from streams.state import MonitorState
from streams.tally import APPLIED, DUPLICATE, FORWARDED, REJECTED, STALE, Tally

_MEMBER, _TRADE_ID, _INSTRUMENT = attrgetter("member"), attrgetter("trade_id"), \
    attrgetter("instrument")
_QUANTITY, _PRICE, _TS = attrgetter("quantity"), attrgetter("price"), attrgetter("ts")
_VALUE, _TIMESTAMP = attrgetter("value"), attrgetter("timestamp")


def event_times(messages: list[Any], received_ms: list[int]) -> np.ndarray:
    """Each message's ``ts``, or its Kafka record timestamp where it has none: (n,) seconds."""
    ts = np.array(list(map(_TS, messages)), dtype=np.float64)  # a missing ts becomes NaN
    missing = np.isnan(ts)
    if missing.any():
        ts[missing] = np.array(received_ms, dtype=np.float64)[missing] / 1000.0
    return ts


class Homes(dict[str, int]):
    """Members' home partitions, computed once each."""

    def __init__(self, home_of: HomePartition) -> None:
        super().__init__()
        self.home_of = home_of

    def __missing__(self, member: str) -> int:
        home = self[member] = self.home_of(member)
        return home


class Monitor:
    """Applies input records to the core and keeps the latest results.

    ``clock`` gives wall-clock seconds: when results were refreshed (for their
    age and the event-to-metric latency), dead letters' times, the handover wait,
    and the time event times may not be far ahead of (``plausibility``).
    """

    def __init__(self, topics: t.Topics, policy: CallPolicy,
                 state: MonitorState | None = None,
                 clock: Callable[[], float] = time.time,
                 plausibility: Plausibility | None = None) -> None:
        self.topics = topics
        self.plausibility = plausibility or Plausibility()
        self.state = state or MonitorState(Ccp(policy))
        self.state.ccp.use_policy(policy)
        self.clock = clock
        self.handover = Handover(self.state, topics, clock)
        self.results: Results | None = None
        self.refreshed_at = 0.0
        home_of = self.state.ccp.holdings.home_of
        self._homes = Homes(home_of) if isinstance(home_of, HomePartition) else None
        if self._homes is not None:
            self.handover.partitions = self._homes.home_of.partitions
        self._pending_ts: list[np.ndarray] = []
        # Several workers: event times of each own partition's trades and collateral since
        # its last view, and those of the views received since the last refresh.
        self._view_ts: dict[int, list[np.ndarray]] = {}
        self._merged_ts: list[EventTimes] = []
        self._desk: tuple[int, StressDesk] | None = None
        self.reverse: ReverseStress | None = None
        self._dirty = True

    @property
    def dirty(self) -> bool:
        """Whether anything was applied since the last refresh, a partition is being
        rebuilt (a refresh is when it is taken over), a recompute has slices left, or a
        settlement is being placed."""
        ccp = self.state.ccp
        return self._dirty or bool(ccp.holdings.rebuilding) or ccp.recomputing or ccp.placing

    async def reverse_stress(self) -> None:
        """Work out the shock multipliers to exhaustion of the latest results, off the event
        loop (from copies of the figures and of the members' groups). They need every
        member's own figures (each member's exposure is ``max(0, affine in k)``): this
        worker's for its partitions, the latest the other workers sent for theirs; none
        while a partition's are missing."""
        results, figures = self.results, self.handover.figures()
        if results is None or figures is None:
            self.reverse = None
            return
        ccp = self.state.ccp
        group = {m: ccp.group_of(m) for part in figures for m in part.members}
        scenarios, by_provider = ccp.scenarios, provided(ccp.resources, ccp.group_of)
        self.reverse = await in_background(
            lambda: reverse_stress(*books(figures, group.__getitem__, scenarios, by_provider),
                                   results.credit.prefunded, results.liquidity.qualifying))

    def desk(self) -> StressDesk:
        """The stress-testing desk's figures of the latest results, worked out once each."""
        assert self.results is not None, "no results yet"
        if self._desk is None or self._desk[0] != self.results.sequence:
            self._desk = (self.results.sequence, stress_desk(self.results))
        return self._desk[1]

    @property
    def tally(self) -> Tally:
        """What the worker counted."""
        return self.state.tally

    def member_rows(self, group: str) -> MemberRows:
        """The group's members held here, with their exposure and need by scenario."""
        return self.state.ccp.member_rows(group)

    def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of ``topic``/``partition`` the state does not include."""
        return self.state.next_offset(topic, partition)

    def counts(self) -> dict[str, int]:
        """The counts of ``GET /cover2``."""
        tally = self.state.tally
        return {"trades": tally.events.get((t.TRADES, APPLIED), 0),
                "prices": tally.events.get((t.PRICES, APPLIED), 0),
                "collateral": tally.events.get((t.COLLATERAL, APPLIED), 0),
                "duplicates": tally.outcome(DUPLICATE), "stale": tally.outcome(STALE),
                "rejected": tally.outcome(REJECTED), "forwarded": tally.outcome(FORWARDED)}

    def _reject(self, record: Record, topic: str, reason: str, effects: Effects) -> None:
        self.state.tally.count(topic, REJECTED, 1)
        document = dead_letter_document(record.topic, record.partition, record.offset, reason,
                                        text(record.value), self.clock())
        effects.dead_letters.append(DeadLetter(record.key, encode(document)))

    def _new(self, records: Sequence[Record]) -> Sequence[Record]:
        """The records the state does not include yet (a replay may overlap it)."""
        first = self.next_offset(records[0].topic, records[0].partition)
        if records[0].offset >= first:
            return records
        return [r for r in records if r.offset >= first]

    def ingest(self, batches: Iterable[Sequence[Record]], refresh: bool = True) -> Effects:
        """Apply batches of per-message records (trades, prices, collateral), then refresh
        (unless the caller refreshes later, once for several ingests)."""
        effects = Effects()
        decoded: dict[str, list[Any]] = {t.TRADES: [], t.PRICES: [], t.COLLATERAL: []}
        times: dict[str, list[np.ndarray]] = {t.TRADES: [], t.PRICES: [], t.COLLATERAL: []}
        for batch in batches:
            records = self._new(batch)
            if not records:
                continue
            topic = self.topics.short(records[0].topic)
            messages, positions, rejections = decode_many(topic, list(map(_VALUE, records)))
            for position, reason in rejections:
                self._reject(records[position], topic, reason, effects)
            if topic in t.MEMBER_KEYED and self._homes is not None:
                messages, positions = self._forward_strangers(topic, records, messages,
                                                              positions, effects)
            if messages:
                ts = event_times(messages, list(map(_TIMESTAMP, records))
                                 if len(positions) == len(records)
                                 else [records[p].timestamp for p in positions])
                messages, positions, ts = self._believable(topic, records, messages,
                                                           positions, ts, effects)
                if topic == t.TRADES:
                    messages, ts = self._unseen(records, messages, positions, ts, effects)
                decoded[topic] += messages
                times[topic].append(ts)
                if topic in t.MEMBER_KEYED and self.handover.group_size > 1:
                    self._view_ts.setdefault(records[0].partition, []).append(ts)
            self.state.offsets[records[0].topic, records[0].partition] = records[-1].offset + 1
        for topic, apply in ((t.PRICES, self._apply_prices), (t.TRADES, self._apply_trades),
                             (t.COLLATERAL, self._apply_collateral)):
            if decoded[topic]:
                apply(decoded[topic], np.concatenate(times[topic]))
        if refresh:
            effects.calls = self.refresh()
        return effects

    def _believable(self, topic: str, records: Sequence[Record], messages: list[Any],
                    positions: list[int], ts: np.ndarray,
                    effects: Effects) -> tuple[list[Any], list[int], np.ndarray]:
        """The messages whose event time is not too far ahead, their positions and event
        times; the others are refused."""
        now = self.clock()
        ahead = self.plausibility.ahead(ts, now)
        if not ahead.any():
            return messages, positions, ts
        for i in np.flatnonzero(ahead).tolist():
            self._reject(records[positions[i]], topic,
                         self.plausibility.future_reason(float(ts[i]), now), effects)
        kept = np.flatnonzero(~ahead).tolist()
        return [messages[i] for i in kept], [positions[i] for i in kept], ts[~ahead]

    def _unseen(self, records: Sequence[Record], trades: list[TradeMessage],
                positions: list[int], ts: np.ndarray,
                effects: Effects) -> tuple[list[TradeMessage], np.ndarray]:
        """The trades not applied before; those older than the dedupe window are refused."""
        admission = self.state.ledger.admit(
            records[0].partition, list(map(_MEMBER, trades)), list(map(_TRADE_ID, trades)), ts,
            self.plausibility.dedupe_window_s)
        for i in admission.expired.tolist():
            self._reject(records[positions[i]], t.TRADES, self.plausibility.expired_reason(
                trades[i].trade_id, float(ts[i]), admission.clock), effects)
        self.state.tally.count(t.TRADES, DUPLICATE, admission.duplicates(len(trades)))
        if len(admission.fresh) == len(trades):
            return trades, ts
        return [trades[i] for i in admission.fresh.tolist()], ts[admission.fresh]

    def _forward_strangers(self, topic: str, records: Sequence[Record], messages: list[Any],
                           positions: list[int], effects: Effects) -> tuple[list[Any], list[int]]:
        """Keep the messages of members at home here; send the others to their home."""
        homes = list(map(self._homes.__getitem__, map(_MEMBER, messages))) \
            if self._homes is not None else []
        partition = records[0].partition
        if homes.count(partition) == len(homes):
            return messages, positions
        kept = [i for i, home in enumerate(homes) if home == partition]
        for i, home in enumerate(homes):
            if home != partition:
                record = records[positions[i]]
                effects.forwards.append(Forward(record.topic, messages[i].member.encode(),
                                                record.value or b""))
        self.state.tally.count(topic, FORWARDED, len(homes) - len(kept))
        return [messages[i] for i in kept], [positions[i] for i in kept]

    def _applied(self, topic: str, ts: np.ndarray) -> None:
        if len(ts):
            self.state.tally.count(topic, APPLIED, len(ts))
            self.state.tally.seen(topic, float(ts.max()))
            self.state.event_clock = max(self.state.event_clock, float(ts.max()))
            if topic in (t.TRADES, t.PRICES):  # what the settlement horizon keeps
                self.state.ccp.advance(float(ts.max()) - self.plausibility.settlement_window_s)
            self._pending_ts.append(ts)
            self._dirty = True

    def _apply_trades(self, trades: list[TradeMessage], ts: np.ndarray) -> None:
        n = len(trades)
        self.state.ccp.apply_trades(Trades(
            list(map(_MEMBER, trades)), list(map(_INSTRUMENT, trades)),
            np.fromiter(map(_QUANTITY, trades), dtype=np.float64, count=n),
            np.fromiter(map(_PRICE, trades), dtype=np.float64, count=n), ts))
        self._applied(t.TRADES, ts)

    def _apply_prices(self, prices: list[PriceMessage], ts: np.ndarray) -> None:
        stale = self.state.ccp.apply_prices(Prices(
            [m.instrument for m in prices], np.array([m.price for m in prices]), ts))
        self.state.tally.count(t.PRICES, STALE, int(stale.sum()))
        self._applied(t.PRICES, ts[~stale])

    def _apply_collateral(self, states: list[CollateralMessage], ts: np.ndarray) -> None:
        stale = self.state.ccp.apply_collateral(Collateral(
            [m.member for m in states], np.array([m.initial_margin for m in states]),
            np.array([m.cash for m in states]), ts))
        self.state.tally.count(t.COLLATERAL, STALE, int(stale.sum()))
        self._applied(t.COLLATERAL, ts[~stale])

    def apply_reference(self, record: Record) -> Effects:
        """Apply one low-rate record (settlements and reference data); refresh comes later."""
        effects = Effects()
        if record.offset < self.next_offset(record.topic, record.partition):
            return effects
        self.state.offsets[record.topic, record.partition] = record.offset + 1
        topic = self.topics.short(record.topic)
        message = decode(topic, record.key, record.value)
        ts = getattr(message, "ts", None)
        ts = record.timestamp / 1000.0 if ts is None else ts
        if not isinstance(message, Rejection | Tombstone):
            now = self.clock()
            if self.plausibility.ahead(np.array([ts]), now)[0]:
                message = Rejection(self.plausibility.future_reason(ts, now))
            elif isinstance(message, ScenarioMessage):
                problem = self.plausibility.scenario_problem(message)
                message = message if problem is None else Rejection(problem)
        if isinstance(message, Rejection):
            self._reject(record, topic, message.reason, effects)
            return effects
        ccp = self.state.ccp
        if isinstance(message, Tombstone) and topic == t.MEMBERS:
            ccp.remove_member(message.key)
        elif isinstance(message, Tombstone):
            ccp.remove_scenario(message.key)
        elif isinstance(message, SettlementMessage):
            outcome = ccp.settle(None if message.member == "*" else message.member, ts)
            if outcome is Outcome.LATE:
                self._reject(record, topic, self.plausibility.late_settlement_reason(
                    ts, ccp.settlements.horizon), effects)
                return effects
            if outcome is Outcome.STALE:
                self.state.tally.count(topic, STALE, 1)
                return effects
        elif isinstance(message, MemberMessage):
            ccp.upsert_member(message.to_model())
        elif isinstance(message, InstrumentMessage):
            ccp.upsert_instrument(message.to_model())
        elif isinstance(message, ScenarioMessage):
            ccp.upsert_scenario(message.to_model())
        elif isinstance(message, ResourcesMessage):
            ccp.set_resources(message.to_model())
        self._applied(topic, np.array([ts]))
        return effects

    def recompute(self) -> None:
        """Recompute every scenario P&L from positions, a slice of scenarios at each
        refresh from the next on."""
        self.state.ccp.recompute()
        self._dirty = True

    def own(self, partitions: set[int], count: int, group_size: int) -> None:
        """Hold the members of ``partitions`` (of ``count``), forgetting every other member.

        A partition let go loses its members' state, its trades in the ledger and
        its input offsets: if it comes back, it is rebuilt from the start of its topics.
        """
        ccp = self.state.ccp
        home_of = HomePartition(count)
        held_over = ccp.holdings.home_of
        if held_over is not None and held_over != home_of:
            raise RuntimeError(
                f"the state was built over {getattr(held_over, 'partitions', '?')} input "
                f"partitions and the topics now have {count}: move the state directory "
                "aside to rebuild from the topics")
        ccp.own(partitions, home_of if held_over is None else None)
        self.state.ledger.keep(partitions)
        for p in set(range(count)) - partitions:
            for topic in t.MEMBER_KEYED:
                self.state.offsets.pop((self.topics.name(topic), p), None)
        self._homes = Homes(home_of)
        self.handover.assign(partitions, count, group_size)
        self._view_ts = {p: ts for p, ts in self._view_ts.items() if p in partitions}
        self._dirty = True

    def view_times(self, partition: int) -> EventTimes:
        """The event times of ``partition``'s trades and collateral applied since the last
        call, for its next view."""
        return EventTimes.of(self._view_ts.pop(partition, []))

    def offer(self, view: PartitionView, times: EventTimes | None = None) -> None:
        """Another worker's view of a partition, with the event times it newly includes;
        an older one than held is ignored."""
        if self.handover.offer(view):
            self._dirty = True
            if times is not None:
                self._merged_ts.append(times)

    @property
    def placing(self) -> bool:
        """Whether a settlement applied is still to be placed for some of its members."""
        return self.state.ccp.placing

    def place_slice(self) -> None:
        """Place a settlement applied for a slice of its members (a refresh places it for
        every one left)."""
        self.state.ccp.place(PLACE_SLICE)

    def refresh(self) -> list[MarginCall]:
        """Bring the results up to date if anything changed; returns new margin calls.

        Members of a partition still catching up with the view it takes over are not
        called: their figures are not complete yet.
        """
        if not self.dirty:
            return []
        ccp = self.state.ccp
        self.handover.take_over()
        changed, calls = ccp.refresh(self.state.event_clock)
        self.handover.changed(changed)
        self.results = ccp.results(self.handover.merged(), self.state.event_clock)
        self.refreshed_at = self.clock()
        if self._pending_ts:
            latencies = self.refreshed_at - np.concatenate(self._pending_ts)
            self.state.tally.latency.observe(np.maximum(latencies, 0.0))
            self._pending_ts.clear()
        for times in self._merged_ts:
            self.state.tally.merged_latency.observe(
                np.maximum(self.refreshed_at - times.seconds, 0.0), times.weights)
        self._merged_ts.clear()
        for call in calls:
            self.state.tally.margin_calls[call.group, call.level.label] += 1
        self._dirty = False
        return calls
