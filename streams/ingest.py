"""The batch consumer of trades, prices and collateral, hosted by the faust app.

faust's per-message machinery tops out at a few thousand events a second; this
loop reads with ``getmany``, applies whole batches to the core, hands their
outputs to the producer, and commits offsets in the background only once
those outputs are out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from streams import topics as t
from streams.monitor import Effects, Monitor
from streams.outputs import Outputs
from streams.settings import Settings

log = logging.getLogger(__name__)

# With no input the loop wakes this often to publish reference-data changes.
IDLE_POLL_MS = 50
# Offsets are committed in the background at most this often: they only tell
# operators the group's progress (recovery resumes from the state's own offsets),
# and a commit in the loop would add its round trip to every batch's latency.
COMMIT_INTERVAL_S = 1.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume every partition where the state stops."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions revoked: %s", sorted(map(str, revoked)))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer, monitor = self.ingest.consumer, self.ingest.monitor
        assert consumer is not None
        for tp in assigned:
            consumer.seek(tp, monitor.next_offset(tp.topic, tp.partition))
        self.ingest.assigned = True
        log.info("partitions assigned: %s", sorted(map(str, assigned)))


class Ingest(mode.Service):
    """Reads the per-message input topics in batches and applies them to the monitor."""

    def __init__(self, settings: Settings, monitor: Monitor, outputs: Outputs,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.monitor = monitor
        self.outputs = outputs
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned = False
        self._applied: dict[TopicPartition, int] = {}
        self._commit: asyncio.Task[None] | None = None
        self._committed_at = 0.0

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=s.group_id,
            client_id=f"cover2-ingest-{s.name}",
            enable_auto_commit=False, fetch_max_wait_ms=int(s.fetch_wait * 1000),
            auto_offset_reset="earliest", session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval * 1000),
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        await self.consumer.start()
        self.consumer.subscribe(t.Topics(s.topic_prefix).names(t.HOT_INPUTS),
                                listener=_Rebalance(self))

    async def on_stop(self) -> None:
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

    @mode.Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer, monitor = self.consumer, self.monitor
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=IDLE_POLL_MS,
                                           max_records=self.settings.max_batch)
            if batch:
                await self.outputs.send(monitor.ingest(batch.values()))
                self._applied.update({tp: records[-1].offset + 1
                                      for tp, records in batch.items()})
            elif monitor.dirty:
                await self.outputs.send(Effects(calls=monitor.refresh()))
            self._commit_soon()
