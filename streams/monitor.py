"""The worker's state and its one way in: decode, deduplicate, apply, refresh.

No Kafka here: the ingest loop and the faust agents hand records in, and send
out what comes back (margin calls, dead letters, forwarded messages).
Everything that must survive a restart is in :class:`MonitorState`, which
records the input offsets it includes.

With several workers, each holds the members of the partitions it owns, and
the snapshot merges its own partition views with the other workers' (see
:mod:`risk.merge`): a partition counts once, from its owner's view once the
owner has caught up with the view it takes over, from the last view received
until then.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, Protocol

import numpy as np

from risk.calls import CallPolicy, MarginCall
from risk.ccp import Ccp
from risk.merge import PartitionView, aligned, merge, reaches
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
from streams.metrics import APPLIED, DUPLICATE, FORWARDED, REJECTED, STALE, Tally
from streams.partitioning import HomePartition

# Inputs keyed by member: a member's messages all belong to its home partition.
MEMBER_KEYED = (t.TRADES, t.COLLATERAL)
# Separates member and trade id in the ledger of applied trades.
LEDGER_SEP = "\x1f"
# How many of the latest settlements a worker remembers for the partitions it takes over.
SETTLEMENTS_KEPT = 10_000
# How long a worker that gains a partition waits for the previous owner's view of it
# (handed over as the group rebalances) before counting the partition from scratch.
HANDOVER_WAIT_S = 1.0


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


@dataclass(frozen=True)
class Forward:
    """A message read outside its member's home partition, to send there."""

    topic: str
    key: bytes
    value: bytes


@dataclass
class Effects:
    """What a batch sends out."""

    calls: list[MarginCall] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)


class Homes(dict[str, int]):
    """Members' home partitions, computed once each."""

    def __init__(self, home_of: HomePartition) -> None:
        super().__init__()
        self.home_of = home_of

    def __missing__(self, member: str) -> int:
        home = self[member] = self.home_of(member)
        return home


@dataclass
class MonitorState:
    """Everything that survives a restart; ``offsets`` are the next offsets not yet included."""

    ccp: Ccp
    ledger: set[str] = field(default_factory=set)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    event_clock: float = -math.inf
    # The latest settlements read, as (partition, offset, member or None for everyone):
    # a partition taken over settles those its previous owner's view does not include.
    settlements: deque[tuple[int, int, str | None]] = field(
        default_factory=lambda: deque(maxlen=SETTLEMENTS_KEPT))
    # Per partition taken over from another worker, the settlement offsets its view included.
    settled_through: dict[int, dict[int, int]] = field(default_factory=dict)


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
        self.remote: dict[int, PartitionView] = {}
        self.group_size = 1
        self.sources: dict[str, list[int]] = {}
        self._homes = Homes(self.state.ccp.home_of) \
            if isinstance(self.state.ccp.home_of, HomePartition) else None
        self._taken_over: set[int] = set()
        self._assigned_at = 0.0
        self._unpublished: set[int] = set()
        self._pending_ts: list[np.ndarray] = []
        self._dirty = True

    @property
    def partitions(self) -> int:
        """How many input partitions the members are spread over."""
        return self._homes.home_of.partitions if self._homes is not None else 1

    @property
    def dirty(self) -> bool:
        """Whether anything was applied since the last refresh, or a partition is
        being rebuilt (a refresh is when it is taken over)."""
        return self._dirty or bool(self.state.ccp.rebuilding)

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
                "rejected": sum(n for (_, o), n in events.items() if o == REJECTED),
                "forwarded": sum(n for (_, o), n in events.items() if o == FORWARDED)}

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
            if kind in MEMBER_KEYED and self._homes is not None:
                messages, positions = self._forward_strangers(kind, records, messages,
                                                              positions, effects)
            decoded[kind] += messages
            received[kind] += (list(map(_TIMESTAMP, records)) if len(positions) == len(records)
                               else [records[p].timestamp for p in positions])
            self.state.offsets[records[0].topic, records[0].partition] = records[-1].offset + 1
        for kind, apply in ((t.PRICES, self._apply_prices), (t.TRADES, self._apply_trades),
                            (t.COLLATERAL, self._apply_collateral)):
            if decoded[kind]:
                apply(decoded[kind], event_times(decoded[kind], received[kind]))
        effects.calls = self.refresh()
        return effects

    def _forward_strangers(self, kind: str, records: Sequence[Record], messages: list[Any],
                           positions: list[int], effects: Effects) -> tuple[list[Any], list[int]]:
        """Keep the messages of members at home here; send the others to their home."""
        assert self._homes is not None
        partition = records[0].partition
        homes = list(map(self._homes.__getitem__, map(_MEMBER, messages)))
        if homes.count(partition) == len(homes):
            return messages, positions
        kept = [i for i, home in enumerate(homes) if home == partition]
        for i, home in enumerate(homes):
            if home != partition:
                record = records[positions[i]]
                effects.forwards.append(Forward(record.topic, messages[i].member.encode(),
                                                record.value or b""))
        self.state.tally.count(kind, FORWARDED, len(homes) - len(kept))
        return [messages[i] for i in kept], [positions[i] for i in kept]

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
        keys = list(map(LEDGER_SEP.join, zip(members, map(_TRADE_ID, trades), strict=True)))
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
            member = None if message.member == "*" else message.member
            self.state.settlements.append((record.partition, record.offset, member))
            self._settle(record.partition, record.offset, member, ccp.owned)
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

    def own(self, partitions: set[int], count: int, group_size: int) -> None:
        """Hold the members of ``partitions`` (of ``count``), forgetting every other member.

        A partition let go loses its members' state, their trades in the ledger and
        its input offsets: if it comes back, it is rebuilt from the start of its topics.
        """
        ccp = self.state.ccp
        home_of = HomePartition(count)
        if ccp.home_of is not None and ccp.home_of != home_of:
            raise RuntimeError(
                f"the state was built over {getattr(ccp.home_of, 'partitions', '?')} input "
                f"partitions and the topics now have {count}: move the state directory "
                "aside to rebuild from the topics")
        released = ccp.own(partitions, home_of if ccp.home_of is None else None)
        gone = {ccp.members.names[m] for m in released.tolist()}
        if gone:
            self.state.ledger = {key for key in self.state.ledger
                                 if key.partition(LEDGER_SEP)[0] not in gone}
        for p in set(range(count)) - partitions:
            self.state.settled_through.pop(p, None)
            for kind in MEMBER_KEYED:
                self.state.offsets.pop((self.topics.name(kind), p), None)
        self._homes = Homes(home_of)
        self.group_size = group_size
        self._taken_over &= partitions
        self._assigned_at = time.monotonic()
        self._take_over()
        self._unpublished = set(partitions)
        self._dirty = True

    def offer(self, view: PartitionView) -> None:
        """Another worker's view of a partition; an older one than held is ignored."""
        held = self.remote.get(view.partition)
        if held is None or view.includes(held) or not held.includes(view):
            self.remote[view.partition] = view
            self._dirty = True

    def _offsets_of(self, partition: int) -> tuple[int, ...]:
        return tuple(self.next_offset(self.topics.name(kind), partition)
                     for kind in MEMBER_KEYED)

    def _settle(self, partition: int, offset: int, member: str | None,
                partitions: Iterable[int]) -> None:
        """Apply a settlement to the members of those ``partitions`` that do not include it."""
        through = self.state.settled_through
        due = [p for p in partitions if offset >= through.get(p, {}).get(partition, 0)]
        if due:
            self.state.ccp.settle(member, due)

    def _settlement_offsets(self) -> dict[int, int]:
        settlements = self.topics.name(t.SETTLEMENTS)
        return {p: offset for (topic, p), offset in self.state.offsets.items()
                if topic == settlements}

    def _take_over(self) -> set[int]:
        """Owned partitions whose own view now counts: it includes the last one received.

        The other owned partitions are rebuilding. A partition nobody has sent a view
        of waits up to ``HANDOVER_WAIT_S`` for one, unless the worker is alone. Taking
        one over adds what the previous owner's settlements added to its positions'
        cost, then applies the settlements that owner's view does not include.
        """
        ccp = self.state.ccp
        waited = self.group_size == 1 or time.monotonic() - self._assigned_at >= HANDOVER_WAIT_S
        for p in ccp.owned - self._taken_over:
            remote = self.remote.get(p)
            if (remote is None and waited) or (
                    remote is not None and reaches(self._offsets_of(p), remote.offsets)):
                self._taken_over.add(p)
                ccp.rebuilding = ccp.owned - self._taken_over
                if remote is not None and remote.settled is not None:
                    ccp.adopt(remote.settled)
                    self.state.settled_through[p] = remote.settled.through
                    for partition, offset, member in self.state.settlements:
                        self._settle(partition, offset, member, [p])
        ccp.rebuilding = ccp.owned - self._taken_over
        return self._taken_over

    def views_to_publish(self, every: bool = False) -> list[PartitionView]:
        """Own views changed since last asked (or ``every`` own view), with the input
        offsets they include and what settlements added to their positions' cost."""
        ready = sorted((self.state.ccp.owned if every else self._unpublished)
                       & self._taken_over)
        self._unpublished -= set(ready)
        ccp, through = self.state.ccp, self._settlement_offsets()
        return [replace(ccp.views[p], offsets=self._offsets_of(p),
                        settled=replace(ccp.settled(p), through=through))
                for p in ready if p in ccp.views]

    def _merged(self, now: float) -> Snapshot:
        ccp = self.state.ccp
        scenarios = tuple(ccp.stress.scenarios.names)
        local = self._taken_over
        views: list[PartitionView] = []
        self.sources = {"local": [], "remote": [], "missing": []}
        for p in range(self.partitions):
            view = ccp.views.get(p) if p in local else None
            if view is not None:
                source = "local"
            else:
                received = self.remote.get(p)
                view = aligned(received, scenarios) if received is not None else None
                source = "remote" if view is not None else "missing"
            self.sources[source].append(p)
            if view is not None:
                views.append(view)
        return ccp.snapshot(merge(views, scenarios), now)

    def refresh(self) -> list[MarginCall]:
        """Bring the snapshot up to date if anything changed; returns new margin calls.

        Members of a partition still catching up with the view it takes over are not
        called: their figures are not complete yet.
        """
        if not self.dirty:
            return []
        ccp = self.state.ccp
        self._take_over()
        changed, calls = ccp.refresh(self.state.event_clock)
        self._unpublished.update(changed)
        self.snapshot = self._merged(self.state.event_clock)
        self.refreshed_at = time.time()
        if self._pending_ts:
            latencies = self.refreshed_at - np.concatenate(self._pending_ts)
            self.state.tally.observe_latency(np.maximum(latencies, 0.0))
            self._pending_ts.clear()
        for call in calls:
            self.state.tally.margin_calls[call.group, call.kind] += 1
        self._dirty = False
        return calls
