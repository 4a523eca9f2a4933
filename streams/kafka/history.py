"""Reading the input topics whole, for a state as of a time: no group, no commit, no write.

The embedded broker's high watermark undercounts batched produces, so the end of a
partition is not taken from its end offset: reading stops once no fetch has returned
anything for ``idle_s`` seconds, and the caller is told so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams import topics as t
from streams.kafka.clients import Connection, TopicPartition

# The end of the topics: this long without a record from any partition.
IDLE_S = 2.0


@dataclass(frozen=True)
class History:
    """Every input record read, in each partition's order, and how the end was decided."""

    records: list[Any]
    partitions: int
    end: str


async def read_inputs(connection: Connection, topics: t.Topics,
                      progress: Callable[[int], None] = lambda read: None,
                      idle_s: float = IDLE_S) -> History:
    """Every record of every input topic, from the start of each partition."""
    consumer = connection.consumer(client_id="cover2-history", fetch_max_wait_ms=100,
                                   max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(name, p) for name in topics.names(t.INPUTS)
                      for p in sorted(consumer.partitions_for_topic(name) or ())]
        if not partitions:
            raise LookupError(f"no input topics {topics.prefix}* on this broker: is the "
                              f"topic prefix right (--topic-prefix)?")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            if batch:
                for chunk in batch.values():
                    records += chunk
                quiet_since = time.monotonic()
                progress(len(records))
        return History(records, len(partitions),
                       f"read to the end of {len(partitions)} partitions: no record for "
                       f"{idle_s:g} s (the broker's end offsets are not relied on)")
    finally:
        await consumer.stop()
