"""The worker's state and its one way in: decode, deduplicate, apply, refresh.

No Kafka here: the ingest loop and the faust agents hand records in, and send
out what comes back (margin calls, dead letters). Everything that must survive
a restart is in :class:`MonitorState`, which records the input offsets it
includes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol

import numpy as np

from risk.calls import CallPolicy, MarginCall
from risk.ccp import Ccp
from risk.model import Collateral, Prices, Trades
from risk.snapshot import Snapshot
from streams import topics as t
from streams.codec import (
    CollateralMessage,
    InstrumentMessage,
    MemberMessage,
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
from streams.metrics import APPLIED, DUPLICATE, REJECTED, STALE, Tally


class Record(Protocol):
    """What the monitor needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...  # milliseconds


@dataclass(frozen=True)
class DeadLetter:
    """A refused message, ready for the dead-letter topic."""

    key: bytes | None
    value: bytes


@dataclass
class Effects:
    """What a batch sends out."""

    calls: list[MarginCall] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass
class MonitorState:
    """Everything that survives a restart; ``offsets`` are the next offsets not yet included."""

    ccp: Ccp
    ledger: set[str] = field(default_factory=set)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    event_clock: float = -math.inf


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


class Monitor:
    """Applies input records to the core and keeps the latest snapshot."""

    def __init__(self, topics: t.Topics, policy: CallPolicy,
                 state: MonitorState | None = None) -> None:
        self.topics = topics
        self.state = state or MonitorState(Ccp(policy))
        self.state.ccp.desk.policy = policy
        self.snapshot: Snapshot | None = None
        self.refreshed_at = 0.0
        self._pending_ts: list[np.ndarray] = []
        self._dirty = True

    @property
    def dirty(self) -> bool:
        """Whether anything was applied since the last refresh."""
        return self._dirty

    def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of ``topic``/``partition`` the state does not include."""
        return self.state.offsets.get((topic, partition), 0)

    def counts(self) -> dict[str, int]:
        """The counts of ``GET /cover2``."""
        events = self.state.tally.events
        return {"trades": events.get((t.TRADES, APPLIED), 0),
                "prices": events.get((t.PRICES, APPLIED), 0),
                "collateral": events.get((t.COLLATERAL, APPLIED), 0),
                "duplicates": sum(n for (_, o), n in events.items() if o == DUPLICATE),
                "stale": sum(n for (_, o), n in events.items() if o == STALE),
                "rejected": sum(n for (_, o), n in events.items() if o == REJECTED)}

    def _reject(self, record: Record, kind: str, reason: str, effects: Effects) -> None:
        self.state.tally.count(kind, REJECTED, 1)
        document = dead_letter_document(record.topic, record.partition, record.offset, reason,
                                        text(record.value), time.time())
        effects.dead_letters.append(DeadLetter(record.key, encode(document)))

    def _new(self, records: Sequence[Record]) -> Sequence[Record]:
        """The records the state does not include yet (a replay may overlap it)."""
        first = self.next_offset(records[0].topic, records[0].partition)
        if records[0].offset >= first:
            return records
        return [r for r in records if r.offset >= first]

    def ingest(self, batches: Iterable[Sequence[Record]]) -> Effects:
        """Apply batches of per-message records (trades, prices, collateral), then refresh."""
        effects = Effects()
        decoded: dict[str, list[Any]] = {t.TRADES: [], t.PRICES: [], t.COLLATERAL: []}
        received: dict[str, list[int]] = {t.TRADES: [], t.PRICES: [], t.COLLATERAL: []}
        for batch in batches:
            records = self._new(batch)
            if not records:
                continue
            kind = self.topics.kind(records[0].topic)
            messages, positions, rejections = decode_many(kind, list(map(_VALUE, records)))
            for position, reason in rejections:
                self._reject(records[position], kind, reason, effects)
            decoded[kind] += messages
            received[kind] += (list(map(_TIMESTAMP, records)) if not rejections
                               else [records[p].timestamp for p in positions])
            self.state.offsets[records[0].topic, records[0].partition] = records[-1].offset + 1
        for kind, apply in ((t.PRICES, self._apply_prices), (t.TRADES, self._apply_trades),
                            (t.COLLATERAL, self._apply_collateral)):
            if decoded[kind]:
                apply(decoded[kind], event_times(decoded[kind], received[kind]))
        effects.calls = self.refresh()
        return effects

    def _applied(self, kind: str, ts: np.ndarray) -> None:
        if len(ts):
            self.state.tally.count(kind, APPLIED, len(ts))
            self.state.tally.seen(kind, float(ts.max()))
            self.state.event_clock = max(self.state.event_clock, float(ts.max()))
            self._pending_ts.append(ts)
            self._dirty = True

    def _apply_trades(self, trades: list[TradeMessage], ts: np.ndarray) -> None:
        ledger = self.state.ledger
        members = list(map(_MEMBER, trades))
        keys = list(map("\x1f".join, zip(members, map(_TRADE_ID, trades), strict=True)))
        if ledger.isdisjoint(keys) and len(set(keys)) == len(keys):
            ledger.update(keys)
        else:  # some repeat: decide one at a time, in arrival order
            remember = ledger.add
            fresh = [i for i, key in enumerate(keys) if not (key in ledger or remember(key))]
            trades, members, ts = [trades[i] for i in fresh], [members[i] for i in fresh], \
                ts[fresh]
        self.state.tally.count(t.TRADES, DUPLICATE, len(keys) - len(trades))
        if trades:
            n = len(trades)
            self.state.ccp.apply_trades(Trades(
                members, list(map(_INSTRUMENT, trades)),
                np.fromiter(map(_QUANTITY, trades), dtype=np.float64, count=n),
                np.fromiter(map(_PRICE, trades), dtype=np.float64, count=n)))
        self._applied(t.TRADES, ts)

    def _apply_prices(self, prices: list[PriceMessage], ts: np.ndarray) -> None:
        if prices:
            stale = self.state.ccp.apply_prices(Prices(
                [m.instrument for m in prices], np.array([m.price for m in prices]), ts))
            self.state.tally.count(t.PRICES, STALE, int(stale.sum()))
            self._applied(t.PRICES, ts[~stale])

    def _apply_collateral(self, states: list[CollateralMessage], ts: np.ndarray) -> None:
        if states:
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
        kind = self.topics.kind(record.topic)
        message = decode(kind, record.key, record.value)
        if isinstance(message, Rejection):
            self._reject(record, kind, message.reason, effects)
            return effects
        ccp = self.state.ccp
        if isinstance(message, Tombstone) and kind == t.MEMBERS:
            ccp.remove_member(message.key)
        elif isinstance(message, Tombstone):
            ccp.remove_scenario(message.key)
        elif isinstance(message, SettlementMessage):
            ccp.settle(None if message.member == "*" else message.member)
        elif isinstance(message, MemberMessage):
            ccp.upsert_member(message.to_model())
        elif isinstance(message, InstrumentMessage):
            ccp.upsert_instrument(message.to_model())
        elif isinstance(message, ScenarioMessage):
            ccp.upsert_scenario(message.to_model())
        elif isinstance(message, ResourcesMessage):
            ccp.set_resources(message.to_model())
        ts = getattr(message, "ts", None)
        self._applied(kind, np.array([record.timestamp / 1000.0 if ts is None else ts]))
        return effects

    def rebase(self) -> None:
        """Recompute every scenario P&L from positions at the next refresh."""
        self.state.ccp.recompute()
        self._dirty = True

    def refresh(self) -> list[MarginCall]:
        """Bring the snapshot up to date if anything changed; returns new margin calls."""
        if not self._dirty:
            return []
        self.snapshot, calls = self.state.ccp.publish(self.state.event_clock)
        self.refreshed_at = time.time()
        if self._pending_ts:
            latencies = self.refreshed_at - np.concatenate(self._pending_ts)
            self.state.tally.observe_latency(np.maximum(latencies, 0.0))
            self._pending_ts.clear()
        for call in calls:
            self.state.tally.margin_calls[call.group, call.kind] += 1
        self._dirty = False
        return calls
