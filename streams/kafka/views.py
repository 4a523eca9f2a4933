"""Partition views between workers: each publishes its own, every one reads them all.

A message is one partition's view, whole: a small JSON header (who sent it,
the partition, the input offsets it includes, the scenario, group and member
ids) and then the exposure and need matrices as little-endian float64, and
what settlements added to the partition's positions' cost, for its next owner.
Whole views, not changes, so that a reader needs only the latest view of a
partition, and a new owner's view replaces the old owner's at once.

A worker alone in its consumer group publishes nothing: nobody needs its views.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
import uuid
from typing import Any

import mode
import msgspec
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from risk.merge import MemberFigures, PartitionView, Settled
from streams import topics as t
from streams.failure import supervised
from streams.kafka.clients import Connection
from streams.monitor import Monitor
from streams.records import EventTimes
from streams.settings import Settings

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")


class Header(msgspec.Struct, frozen=True):
    """Everything of a view but its arrays; ``through`` is None when it carries no
    settlements, else the settlements' ``through`` with their distinct member and
    instrument ids and how many (member, instrument) pairs follow the matrices."""

    group_id: str
    sender: str
    partition: int
    offsets: tuple[int, ...]
    scenarios: tuple[str, ...]
    groups: tuple[str, ...]
    members: tuple[tuple[str, ...], ...]
    margin_level: tuple[int, ...]
    through: dict[int, int] | None = None
    settled_members: tuple[str, ...] = ()
    settled_instruments: tuple[str, ...] = ()
    settled_pairs: int = 0
    # With the members' own figures (now and then): their ids; the arrays follow the rest.
    figure_members: tuple[str, ...] | None = None
    # The event times (ms) of the trades and collateral newly included, and their counts.
    event_ms: tuple[int, ...] = ()
    event_counts: tuple[int, ...] = ()


def _numbered(names: tuple[str, ...]) -> tuple[tuple[str, ...], bytes]:
    """Distinct ``names``, and each name's number among them as little-endian int32."""
    distinct = tuple(dict.fromkeys(names))
    number = {name: i for i, name in enumerate(distinct)}
    return distinct, np.fromiter(map(number.__getitem__, names), dtype="<i4",
                                 count=len(names)).tobytes()


def encode_view(view: PartitionView, group_id: str, sender: str,
                times: EventTimes | None = None) -> bytes:
    """One message: header length, header, exposure, need, then the settled pairs:
    member numbers, instrument numbers, amounts; then, when it carries them, the members'
    own figures: vm, initial margin, cash, settlement obligation, and their P&L by
    scenario (members x scenarios). The header carries ``times``, the event times of the
    trades and collateral the view newly includes."""
    settled, arrays = view.settled, [view.exposure.astype("<f8").tobytes(),
                                     view.need.astype("<f8").tobytes()]
    through, pairs = None, 0
    members: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    if settled is not None:
        through, pairs = settled.through, len(settled.amount)
        members, member_numbers = _numbered(settled.members)
        instruments, instrument_numbers = _numbered(settled.instruments)
        arrays += [member_numbers, instrument_numbers, settled.amount.astype("<f8").tobytes()]
    figures = view.figures
    if figures is not None:
        arrays += [np.asarray(array, "<f8").tobytes() for array in (
            figures.vm, figures.initial_margin, figures.cash, figures.settlement_obligation,
            figures.pnl)]
    header = msgspec.json.encode(Header(
        group_id, sender, view.partition, view.offsets, view.scenarios, view.groups,
        view.members, tuple(view.margin_level.tolist()), through, members, instruments, pairs,
        figures.members if figures is not None else None,
        *((times.milliseconds, times.counts) if times is not None else ())))
    return b"".join((_LENGTH.pack(len(header)), header, *arrays))


def decode_view(value: bytes) -> tuple[Header, PartitionView]:
    """The header and the view of a message; ValueError if it is not one."""
    try:
        (length,) = _LENGTH.unpack_from(value)
        header = msgspec.json.decode(value[4:4 + length], type=Header)
    except (struct.error, msgspec.DecodeError) as error:
        raise ValueError(f"not a partition view: {error}") from None
    shape = (len(header.groups), len(header.scenarios))
    start, cells, pairs = 4 + length, 2 * shape[0] * shape[1], header.settled_pairs
    n_f = len(header.figure_members or ())
    figure_cells = n_f * (4 + len(header.scenarios))
    if len(value) != start + 8 * cells + 16 * pairs + 8 * figure_cells \
            or len(header.members) != shape[0] or len(header.margin_level) != shape[0] \
            or len(header.event_ms) != len(header.event_counts):
        raise ValueError("not a partition view: sizes do not match the header")
    exposure, need = np.frombuffer(value, "<f8", cells, start).astype(np.float64).reshape(
        (2, *shape))
    settled = None
    if header.through is not None:
        start += 8 * cells
        member_numbers = np.frombuffer(value, "<i4", pairs, start)
        instrument_numbers = np.frombuffer(value, "<i4", pairs, start + 4 * pairs)
        amount = np.frombuffer(value, "<f8", pairs, start + 8 * pairs).astype(np.float64)
        if min(member_numbers.min(initial=0), instrument_numbers.min(initial=0)) < 0 \
                or member_numbers.max(initial=-1) >= len(header.settled_members) \
                or instrument_numbers.max(initial=-1) >= len(header.settled_instruments):
            raise ValueError("not a partition view: a settled pair names no id")
        settled = Settled(tuple(header.settled_members[i] for i in member_numbers.tolist()),
                          tuple(header.settled_instruments[i]
                                for i in instrument_numbers.tolist()),
                          amount, header.through)
    figures = None
    if header.figure_members is not None:
        at = 4 + length + 8 * cells + 16 * pairs
        flat = np.frombuffer(value, "<f8", figure_cells, at).astype(np.float64)
        vm, im, cash, obligation = flat[:4 * n_f].reshape(4, n_f)
        figures = MemberFigures(header.figure_members, header.scenarios, vm, im, cash,
                                obligation, flat[4 * n_f:].reshape(n_f, len(header.scenarios)))
    return header, PartitionView(header.partition, header.offsets, header.scenarios,
                                 header.groups, header.members, exposure, need,
                                 np.array(header.margin_level, dtype=np.intp), settled, figures)


class ViewExchange(mode.Service):
    """Publishes this worker's changed views and hands the others' to the monitor.

    It starts before the worker joins its consumer group and reads from the end
    of the topic: whatever is older is superseded by the views every member
    publishes after the join.
    """

    def __init__(self, settings: Settings, monitor: Monitor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.monitor = monitor
        self.topic = settings.topics.name(t.PARTITION_VIEWS)
        # Unique to this process: a restarted worker must not take its old views for its own.
        self.sender = f"{settings.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.published = 0

    async def on_start(self) -> None:
        s = self.settings
        connection = Connection.of(s)
        self.consumer = connection.consumer(
            client_id=f"cover2-views-{s.name}", fetch_max_wait_ms=int(s.fetch_wait * 1000),
            max_partition_fetch_bytes=t.PARTITION_VIEWS_MAX_BYTES,
            fetch_max_bytes=t.PARTITION_VIEWS_MAX_BYTES)
        await self.consumer.start()
        partition = TopicPartition(self.topic, 0)
        self.consumer.assign([partition])
        await self.consumer.seek_to_end(partition)
        await self.consumer.position(partition)
        self.producer = connection.producer(
            client_id=f"cover2-views-{s.name}", acks=1, linger_ms=2,
            max_request_size=t.PARTITION_VIEWS_MAX_BYTES)
        await self.producer.start()

    async def on_stop(self) -> None:
        for client in (self.consumer, self.producer):
            if client is not None:
                await client.stop()

    @mode.Service.task
    @supervised("reading the partition views")
    async def _read(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    try:
                        header, view = decode_view(record.value or b"")
                    except ValueError as error:
                        log.warning("skipping offset %d of %s: %s", record.offset, self.topic,
                                    error)
                        continue
                    if header.group_id == self.settings.group_id and \
                            header.sender != self.sender:
                        self.monitor.offer(view, EventTimes(header.event_ms,
                                                            header.event_counts))

    async def hand_over(self) -> None:
        """Publish every view this worker counts, and wait until they are out: called
        as the group rebalances, so that each partition's next owner finds its view."""
        assert self.producer is not None
        views = self.monitor.handover.views_to_publish(every=True)
        for view in views:
            await self.producer.send_and_wait(
                self.topic, encode_view(view, self.settings.group_id, self.sender),
                key=str(view.partition).encode())
        self.published += len(views)

    @mode.Service.task
    @supervised("publishing the partition views")
    async def _publish(self) -> None:
        assert self.producer is not None
        figures_at = 0.0
        while not self.should_stop:
            await asyncio.sleep(self.settings.merge_interval)
            if self.monitor.handover.group_size > 1:
                # Now and then every view, with its members' own figures for the others'
                # reverse stress test (they need more than group totals).
                figures = time.monotonic() - figures_at >= self.settings.reverse_stress_interval
                figures_at = time.monotonic() if figures else figures_at
                views = self.monitor.handover.views_to_publish(every=figures, figures=figures)
                for view in views:
                    await self.producer.send(self.topic, encode_view(
                        view, self.settings.group_id, self.sender,
                        self.monitor.view_times(view.partition)),
                        key=str(view.partition).encode())
                self.published += len(views)
