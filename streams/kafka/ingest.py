"""The batch consumers of every input topic, hosted by the faust app.

faust's per-message machinery tops out at a few thousand events a second; these
loops read with ``getmany``, apply each batch to the core in steps of a few
milliseconds (whole while the worker catches up), hand their outputs to the
producer, and commit offsets in the background only once those outputs are out.

Trades and collateral are shared out by the consumer group, partition number
by partition number (:class:`streams.kafka.assignor.CoPartitionedAssignor`);
prices and the reference topics (settlements, members, instruments, scenarios,
resources) reach every worker, read by a consumer of their own outside the group
that never commits: it starts where the state stops. At start, trades, collateral
and prices wait until the reference topics are read to where they ended:
settlements and reference data first, so that a worker rebuilding from the topics
never finds a settlement older than its settlement horizon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from streams import topics as t
from streams.failure import EXIT_CANNOT_START, refuse, supervised
from streams.kafka.assignor import CoPartitionedAssignor
from streams.kafka.clients import Connection
from streams.kafka.outputs import Outputs
from streams.monitor import Monitor
from streams.records import Effects
from streams.settings import Settings

log = logging.getLogger(__name__)

# With no input the loop wakes this often to publish reference-data changes.
IDLE_POLL_MS = 50
# How long the loops wait at start for the reference topics to be read to their ends
# before they read on anyway (and say so).
REFERENCE_WAIT_S = 60.0
# Offsets are committed in the background at most this often: they only tell
# operators the group's progress (recovery resumes from the state's own offsets),
# and a commit in the loop would add its round trip to every batch's latency.
COMMIT_INTERVAL_S = 1.0
# While the worker keeps up, a fetched batch is applied in steps of about this long, with
# a turn of the event loop between them, so that timers, heartbeats, /metrics and the other
# loop are never held up for long by one batch. While more than :data:`CATCH_UP_BATCHES`
# full batches wait after the one fetched (the worker catches up), it is applied whole: a
# step has about 1 ms of fixed work, and larger batches of prices share more instruments,
# so catching up goes twice as fast. A worker only a few batches behind keeps to steps: a
# burst such as a day's opening prices (every instrument at once, tens of milliseconds of
# work whole) must not stop the loop while the worker is otherwise live.
STEP_S = 0.005
CATCH_UP_BATCHES = 4
# The first guess of what a record costs, until steps of its topic are measured.
FIRST_GUESS_S = 5e-6
# No step is smaller: a step's fixed work must not come to dominate.
MIN_STEP = 200

Slices = list[tuple[TopicPartition, list[Any]]]


class Pace:
    """Which records of a fetched batch make each step of about :data:`STEP_S`, from what
    each topic's records cost so far (a price costs holders x scenarios, several times a
    trade; both grow with the scale)."""

    def __init__(self) -> None:
        self.per_record: dict[str, float] = {}

    def cost(self, topic: str) -> float:
        """What a record of ``topic`` is expected to cost, in seconds."""
        return self.per_record.get(topic, FIRST_GUESS_S)

    def steps(self, batch: dict[TopicPartition, list[Any]]) -> list[Slices]:
        """The batch in steps, each a list of slices of its partitions' records, in order."""
        steps: list[Slices] = []
        step: Slices = []
        left = STEP_S
        for tp, records in batch.items():
            cost, first = self.cost(tp.topic), 0
            while first < len(records):
                size = min(len(records) - first, max(MIN_STEP, int(left / cost)))
                step.append((tp, records[first:first + size]))
                first += size
                left -= size * cost
                if left <= 0:
                    steps.append(step)
                    step, left = [], STEP_S
        return [*steps, step] if step else steps

    def took(self, step: Slices, seconds: float) -> None:
        """``step`` took ``seconds``: each topic's cost moves a fifth of the way to what
        this step says, its share of the time by its expected cost."""
        expected = sum(len(records) * self.cost(tp.topic) for tp, records in step)
        for topic in {tp.topic for tp, _ in step}:
            self.per_record[topic] = self.cost(topic) * (0.8 + 0.2 * seconds / expected)


def catching_up(consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]],
                max_batch: int) -> bool:
    """Whether more than :data:`CATCH_UP_BATCHES` times ``max_batch`` records wait after
    ``batch`` on its partitions, as of the broker's last answer to ``consumer``."""
    waiting: int = sum((consumer.highwater(tp) or 0) - records[-1].offset - 1
                       for tp, records in batch.items())
    return waiting > CATCH_UP_BATCHES * max_batch


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, hold the members of the partitions assigned, and resume each
    partition where the state stops."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    @supervised("the rebalance (partitions revoked)")
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions revoked: %s", sorted(map(str, revoked)))
        self.ingest.rebalances += 1  # a batch being applied leaves its other steps
        self.ingest.rebalancing = True
        await self.ingest.refresh()
        await self.ingest.hand_over()

    @supervised("the rebalance (partitions assigned)")
    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        ingest = self.ingest
        consumer, monitor = ingest.consumer, ingest.monitor
        assert consumer is not None
        if ingest.assignor.refused is not None:
            refuse(f"the consumer group {ingest.settings.group_id!r} refused this worker: "
                   f"{ingest.assignor.refused}. Give each set of topics its own group: leave "
                   f"--group-id (COVER2_GROUP_ID) unset and it derives one from "
                   f"--topic-prefix.", EXIT_CANNOT_START)
        counts = {topic: len(consumer.partitions_for_topic(topic) or ())
                  for topic in ingest.member_keyed}
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"trades and collateral must have the same number of "
                               f"partitions (keyed by member, they are read together): {counts}")
        monitor.own({tp.partition for tp in assigned}, counts.popitem()[1],
                    ingest.assignor.group_size)
        for tp in assigned:
            consumer.seek(tp, monitor.next_offset(tp.topic, tp.partition))
        ingest.assigned, ingest.rebalancing = True, False
        log.info("partitions assigned (%d workers in the group): %s",
                 ingest.assignor.group_size, sorted(map(str, assigned)))


class Ingest(mode.Service):
    """Reads the per-message input topics in batches and applies them to the monitor."""

    consumer: AIOKafkaConsumer | None
    prices: AIOKafkaConsumer | None

    def __init__(self, settings: Settings, monitor: Monitor, outputs: Outputs,
                 hand_over: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.monitor = monitor
        self.outputs = outputs
        self.hand_over = hand_over  # publishes this worker's views as the group rebalances
        self.consumer = self.prices = None
        self.assignor = CoPartitionedAssignor()
        self.member_keyed = settings.topics.names(t.MEMBER_KEYED)
        self.price_topic = settings.topics.name(t.PRICES)
        self.assigned = self.rebalancing = False
        self._applied: dict[TopicPartition, int] = {}
        self._commit: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Future[None] | None = None
        self._committed_at = 0.0
        self._reference_ends: dict[tuple[str, int], int] = {}
        self.pace = Pace()
        self.rebalances = 0

    async def on_start(self) -> None:
        s = self.settings
        connection = Connection.of(s)
        self.prices = connection.batch_consumer(s.fetch_wait, client_id=f"cover2-prices-{s.name}")
        await self.prices.start()
        await self.prices.topics()  # loads the topics' metadata
        everywhere = [TopicPartition(topic, p) for topic in s.topics.names(t.EVERY_WORKER)
                      for p in sorted(self.prices.partitions_for_topic(topic) or ())]
        self.prices.assign(everywhere)
        for tp in everywhere:
            self.prices.seek(tp, self.monitor.next_offset(tp.topic, tp.partition))
        reference = [tp for tp in everywhere if tp.topic != self.price_topic]
        self._reference_ends = {(tp.topic, tp.partition): end for tp, end in
                                (await self.prices.end_offsets(reference)).items()}
        self.consumer = connection.batch_consumer(
            s.fetch_wait, group_id=s.group_id, client_id=f"cover2-ingest-{s.name}",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval * 1000),
            partition_assignment_strategy=(self.assignor,))
        await self.consumer.start()
        self.consumer.subscribe(self.member_keyed, listener=_Rebalance(self))

    async def on_stop(self) -> None:
        if self.prices is not None:
            await self.prices.stop()
        if self.consumer is not None:
            if self._commit is not None:
                await self._commit
            await self._commit_offsets(self._applied)
            await self.consumer.stop()

    def _commit_soon(self) -> None:
        """Commit what has been applied, in the background, if none is under way."""
        if self._commit is not None and self._commit.done():
            self._commit.result()  # an output that failed to go out stops the worker
        if (self._applied and (self._commit is None or self._commit.done())
                and time.monotonic() - self._committed_at >= COMMIT_INTERVAL_S):
            offsets, self._applied = self._applied, {}
            self._committed_at = time.monotonic()
            self._commit = asyncio.ensure_future(self._commit_offsets(offsets))

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets and self.consumer is not None:
            await self.outputs.delivered()  # never commit past an output not yet out
            try:
                await self.consumer.commit(offsets)
            except KafkaError as error:  # the state, not the commit, is the truth
                log.info("offsets not committed (%s); the next commit carries them", error)

    def reading(self, consumer: AIOKafkaConsumer | None) -> str:
        """Where ``consumer`` reads: each partition assigned with the next offset to apply."""
        assigned = sorted(consumer.assignment(), key=str) if consumer is not None else []
        return ", ".join(f"{tp.topic}/{tp.partition} offset "
                         f"{self.monitor.next_offset(tp.topic, tp.partition)}"
                         for tp in assigned) or "no partition assigned"

    def fetch_age(self, now: float) -> float | None:
        """Seconds since the oldest of this worker's consumers last had a fetch answered by
        the broker (each consumer's newest answer counts); None before any answer."""
        newest = []
        for consumer in (self.consumer, self.prices):
            assigned = consumer.assignment() if consumer is not None else set()
            polled = [consumer.last_poll_timestamp(tp) for tp in assigned] \
                if consumer is not None else []
            if any(polled):
                newest.append(max(ms for ms in polled if ms) / 1000.0)
            elif assigned:
                return None
        return now - min(newest) if newest else None

    async def refresh(self) -> None:
        """Refresh the monitor if anything is pending, and send its margin calls. A
        settlement is placed a slice of members at a time first, with a turn of the event
        loop between slices."""
        while self.monitor.placing:
            self.monitor.place_slice()
            await asyncio.sleep(0)
        if self.monitor.dirty:
            await self.outputs.send(Effects(calls=self.monitor.refresh()))

    def _refresh_soon(self) -> None:
        """Refresh once the other loop has had its turn: a batch of trades and one of
        prices fetched together are refreshed (and ranked) once."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh_next())

    @supervised("refreshing the results")
    async def _refresh_next(self) -> None:
        await asyncio.sleep(0)
        await self.refresh()

    async def _apply(self, consumer: AIOKafkaConsumer,
                     batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply a batch ``consumer`` fetched in steps (whole while catching up), then
        refresh once the other loop has had its turn. Should the group rebalance meanwhile,
        the rest of the trades and collateral is left: the partitions' next owners read on
        from what was applied."""
        rebalances = self.rebalances
        whole = catching_up(consumer, batch, self.settings.max_batch)
        for step in [list(batch.items())] if whole else self.pace.steps(batch):
            if self.rebalances != rebalances:
                step = [(tp, records) for tp, records in step
                        if tp.topic not in self.member_keyed]
                if not step:
                    continue
            started = time.perf_counter()
            effects = self.monitor.ingest([records for _, records in step], refresh=False)
            self.pace.took(step, time.perf_counter() - started)
            await self.outputs.send(effects)
            self._applied.update({tp: records[-1].offset + 1 for tp, records in step
                                  if tp.topic in self.member_keyed})
            await asyncio.sleep(0)
        self._refresh_soon()

    def _reference_read(self, started: float) -> bool:
        """Whether the reference topics are read to where they ended at start, or
        :data:`REFERENCE_WAIT_S` have passed since ``started`` (then reading on anyway, and
        saying so)."""
        monitor, ends = self.monitor, self._reference_ends
        behind = sorted(f"{topic}/{p}" for (topic, p), end in ends.items()
                        if monitor.next_offset(topic, p) < end)
        if behind and time.monotonic() - started <= REFERENCE_WAIT_S:
            return False
        if behind:
            log.warning("the reference topics are not read to their ends after %.0f s (%s "
                        "behind): reading trades, prices and collateral anyway",
                        REFERENCE_WAIT_S, ", ".join(behind))
        self._reference_ends = {}
        return True

    async def _apply_reference(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply reference records one at a time, in each partition's order, with a turn
        of the event loop every :data:`STEP_S` or so (a scenario reprices every member)."""
        started = time.perf_counter()
        for records in batch.values():
            for record in records:
                await self.outputs.send(self.monitor.apply_reference(record))
                if time.perf_counter() - started > STEP_S:
                    await asyncio.sleep(0)
                    started = time.perf_counter()
        self._refresh_soon()

    @mode.Service.task
    @supervised("the ingest loop (trades, collateral)", lambda self: self.reading(self.consumer))
    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        started = time.monotonic()
        while not self._reference_read(started):
            await asyncio.sleep(0.02)
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=IDLE_POLL_MS,
                                           max_records=self.settings.max_batch)
            if batch:
                await self._apply(consumer, batch)
            else:
                await self.refresh()
            self._commit_soon()

    @mode.Service.task
    @supervised("the price and reference data loop", lambda self: self.reading(self.prices))
    async def _consume_prices(self) -> None:
        assert self.prices is not None
        consumer = self.prices
        held = [tp for tp in consumer.assignment() if tp.topic == self.price_topic]
        consumer.pause(*held)  # until the reference topics are read
        started = time.monotonic()
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=IDLE_POLL_MS,
                                           max_records=self.settings.max_batch)
            reference = {tp: records for tp, records in batch.items()
                         if tp.topic != self.price_topic}
            if reference:
                await self._apply_reference(reference)
            if held and self._reference_read(started):
                consumer.resume(*held)
                held = []
            prices = {tp: records for tp, records in batch.items()
                      if tp.topic == self.price_topic}
            if prices:
                await self._apply(consumer, prices)
