"""Partition views between workers: each publishes its own, every one reads them all.

A message is one partition's view, whole: a small JSON header (who sent it,
the partition, the input offsets it includes, the scenario, group and member
ids) and then the exposure and need matrices, each as a bitmap of its non-zero
cells and their values as little-endian float64 (most credit exposures are
zero). Whole views, not changes, so that a reader needs only the latest view of a
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

from risk.merge import MemberFigures, PartitionView
from streams import topics as t
from streams.failure import supervised
from streams.kafka.clients import Connection
from streams.monitor import Monitor
from streams.records import EventTimes
from streams.settings import Settings

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")


class Header(msgspec.Struct, frozen=True):
    """Everything of a view but its arrays."""

    group_id: str
    sender: str
    partition: int
    offsets: tuple[int, ...]
    scenarios: tuple[str, ...]
    groups: tuple[str, ...]
    members: tuple[tuple[str, ...], ...]
    margin_level: tuple[int, ...]
    # With the members' own figures (now and then): their ids; the arrays follow the rest.
    figure_members: tuple[str, ...] | None = None
    # The event times (ms) of the trades and collateral newly included, and their counts.
    event_ms: tuple[int, ...] = ()
    event_counts: tuple[int, ...] = ()
    # Non-zero cells of the exposure and need matrices.
    exposure_nonzero: int = 0
    need_nonzero: int = 0


def encode_view(view: PartitionView, group_id: str, sender: str,
                times: EventTimes | None = None) -> bytes:
    """One message: header length, header, exposure, need, then, when it carries them,
    the members' own figures: vm, initial margin, cash, settlement obligation, and their P&L by
    scenario (members x scenarios). The header carries ``times``, the event times of the
    trades and collateral the view newly includes."""
    exposure, need = _sparse(view.exposure), _sparse(view.need)
    arrays = [*exposure, *need]
    figures = view.figures
    if figures is not None:
        arrays += [np.asarray(array, "<f8").tobytes() for array in (
            figures.vm, figures.initial_margin, figures.cash, figures.settlement_obligation,
            figures.pnl)]
    header = msgspec.json.encode(Header(
        group_id, sender, view.partition, view.offsets, view.scenarios, view.groups,
        view.members, tuple(view.margin_level.tolist()),
        figures.members if figures is not None else None,
        *((times.milliseconds, times.counts) if times is not None else ((), ())),
        len(exposure[1]) // 8, len(need[1]) // 8))
    return b"".join((_LENGTH.pack(len(header)), header, *arrays))


def _sparse(matrix: np.ndarray) -> tuple[bytes, bytes]:
    """A matrix as the bitmap of its non-zero cells (row-major) and their values."""
    flat = np.ascontiguousarray(matrix, dtype="<f8").ravel()
    nonzero = flat != 0.0
    return np.packbits(nonzero).tobytes(), flat[nonzero].tobytes()


def _dense(value: bytes, at: int, shape: tuple[int, int], nonzero: int) -> np.ndarray:
    """The matrix :func:`_sparse` wrote at ``at``; ValueError if the bitmap does not match."""
    cells = shape[0] * shape[1]
    mask = np.unpackbits(np.frombuffer(value, np.uint8, (cells + 7) // 8, at),
                         count=cells).astype(np.bool_)
    if int(mask.sum()) != nonzero:
        raise ValueError("not a partition view: a bitmap does not match its values")
    out = np.zeros(cells)
    out[mask] = np.frombuffer(value, "<f8", nonzero, at + (cells + 7) // 8)
    return out.reshape(shape)


def decode_header(value: bytes) -> tuple[Header, int]:
    """The header of a message and where its arrays start; ValueError if it is not a view."""
    try:
        (length,) = _LENGTH.unpack_from(value)
        return msgspec.json.decode(value[4:4 + length], type=Header), 4 + length
    except (struct.error, msgspec.DecodeError) as error:
        raise ValueError(f"not a partition view: {error}") from None


def decode_view(value: bytes) -> tuple[Header, PartitionView]:
    """The header and the view of a message; ValueError if it is not one."""
    header, start = decode_header(value)
    return header, view_of(header, start, value)


def view_of(header: Header, start: int, value: bytes) -> PartitionView:
    """The view of a message whose header :func:`decode_header` read; ValueError if the rest
    does not match it."""
    shape = (len(header.groups), len(header.scenarios))
    bitmap = (shape[0] * shape[1] + 7) // 8
    matrices = 2 * bitmap + 8 * (header.exposure_nonzero + header.need_nonzero)
    n_f = len(header.figure_members or ())
    figure_cells = n_f * (4 + len(header.scenarios))
    if len(value) != start + matrices + 8 * figure_cells \
            or len(header.members) != shape[0] or len(header.margin_level) != shape[0] \
            or len(header.event_ms) != len(header.event_counts):
        raise ValueError("not a partition view: sizes do not match the header")
    exposure = _dense(value, start, shape, header.exposure_nonzero)
    need = _dense(value, start + bitmap + 8 * header.exposure_nonzero, shape,
                  header.need_nonzero)
    figures = None
    if header.figure_members is not None:
        at = len(value) - 8 * figure_cells
        flat = np.frombuffer(value, "<f8", figure_cells, at).astype(np.float64)
        vm, im, cash, obligation = flat[:4 * n_f].reshape(4, n_f)
        figures = MemberFigures(header.figure_members, header.scenarios, vm, im, cash,
                                obligation, flat[4 * n_f:].reshape(n_f, len(header.scenarios)))
    return PartitionView(header.partition, header.offsets, header.scenarios,
                                 header.groups, header.members, exposure, need,
                                 np.array(header.margin_level, dtype=np.intp), figures=figures)


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
                self._offer(records)

    def _offer(self, records: list[Any]) -> None:
        """Hand the monitor the other workers' views among ``records``. Only the newest view
        of a partition from a sender is decoded (and any that carries figures); the event
        times of those passed over go with the next one offered."""
        headers: list[tuple[Header, int, int, bytes]] = []
        for record in records:
            try:
                header, start = decode_header(record.value or b"")
            except ValueError as error:
                log.warning("skipping offset %d of %s: %s", record.offset, self.topic, error)
                continue
            if header.group_id == self.settings.group_id and header.sender != self.sender:
                headers.append((header, start, record.offset, record.value))
        newest = {(h.sender, h.partition): offset for h, _, offset, _ in headers}
        times: dict[tuple[str, int], list[EventTimes]] = {}
        for header, start, offset, value in headers:
            key = (header.sender, header.partition)
            times.setdefault(key, []).append(EventTimes(header.event_ms, header.event_counts))
            if offset != newest[key] and header.figure_members is None:
                continue
            try:
                view = view_of(header, start, value)
            except ValueError as error:
                log.warning("skipping offset %d of %s: %s", offset, self.topic, error)
                continue
            self.monitor.offer(view, EventTimes.joined(times.pop(key)))

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
        sent: list[asyncio.Future[Any]] = []
        while not self.should_stop:
            await asyncio.sleep(self.settings.merge_interval)
            if self.monitor.handover.group_size <= 1:
                continue
            # One round in flight at most: while the broker has not taken the last round,
            # wait, and then send the views as they are by then, not a queue of old ones.
            if not all(future.done() for future in sent):
                continue
            for future in sent:
                future.result()  # a view that could not be sent stops the worker
            # Now and then every view, with its members' own figures for the others'
            # reverse stress test (they need more than group totals).
            figures = time.monotonic() - figures_at >= self.settings.reverse_stress_interval
            figures_at = time.monotonic() if figures else figures_at
            views = self.monitor.handover.views_to_publish(every=figures, figures=figures)
            sent = [await self.producer.send(
                self.topic, encode_view(view, self.settings.group_id, self.sender,
                                        self.monitor.view_times(view.partition)),
                key=str(view.partition).encode()) for view in views]
            self.published += len(views)
