"""Test inputs and outputs on the real embedded broker: a feed, and reading a topic whole.

Worker processes, ``eventually`` and the HTTP helper are the bench's too
(:mod:`streams.tools.lab`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics as t
from streams.kafka.admin import create_topics
from streams.kafka.clients import Connection
from streams.tools.lab import PATIENCE_S, Worker, eventually, http_json

__all__ = ["TEST_FLAGS", "Feed", "Spawn", "Worker", "eventually", "http_json", "read_all"]

# The flags of every test worker: checkpoints and results often, margin calls of any size.
TEST_FLAGS = ("--checkpoint-interval", "1", "--publish-interval", "0.1",
              "--minimum-transfer", "1")

Spawn = Callable[..., Worker]


class Feed:
    """Sends contract messages to the test's topics."""

    def __init__(self, connection: Connection, prefix: str) -> None:
        self.connection = connection
        self.topics = t.Topics(prefix)
        self.producer = connection.producer(linger_ms=1)

    async def __aenter__(self) -> Feed:
        await create_topics(self.connection, self.topics, t.Layout(partitions=4))
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, topic: str, value: Any, key: str | None = None) -> None:
        """Send ``value`` (a dict is encoded as JSON; bytes and None are sent as they are)."""
        if isinstance(value, dict | list):
            value = json.dumps(value).encode()
        elif isinstance(value, str):
            value = value.encode()
        await self.producer.send(self.topics.name(topic), value,
                                 key=None if key is None else key.encode())

    async def flush(self) -> None:
        await self.producer.flush()


async def read_all(bootstrap: str, topic: str, at_least: int,
                   timeout: float = PATIENCE_S) -> list[Any]:
    """Every message of ``topic`` from the start, once there are ``at_least``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = await eventually(lambda: consumer.partitions_for_topic(topic),
                                      what=f"partitions of {topic}")
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(messages) < at_least and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                messages += [json.loads(r.value) for r in records]
        assert len(messages) >= at_least, f"{len(messages)} of {at_least} messages on {topic}"
        return messages
    finally:
        await consumer.stop()
