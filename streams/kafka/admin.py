"""Waiting for a broker, and creating every topic of the contract before anything touches it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.admin import NewTopic

from streams import topics as t
from streams.kafka.clients import Connection
from streams.logs import silenced


class BrokerError(RuntimeError):
    """The broker could not be started or reached; the message says what to do."""


async def wait_for_kafka(connection: Connection, timeout: float = 15.0) -> None:
    """Return once a metadata round trip succeeds; raise :class:`BrokerError` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with silenced("aiokafka"):  # each try's failure is said once, below, if all fail
        while time.monotonic() < deadline:
            last = await _probe(connection)
            if last is None:
                return
            await asyncio.sleep(0.1)
    raise BrokerError(f"no Kafka broker answers at {connection.bootstrap_servers} after "
                      f"{timeout:.0f} s ({last!r}). Start one with `cover2 broker`, or pass "
                      f"--broker kafka://HOST:PORT (COVER2_BROKER).")


async def _probe(connection: Connection) -> Exception | None:
    """One metadata round trip: None if a broker answered, else why not."""
    admin = connection.admin(request_timeout_ms=2000, retry_backoff_ms=50)
    try:
        await asyncio.wait_for(admin.start(), timeout=3)
        if (await asyncio.wait_for(admin.describe_cluster(), timeout=3)).get("brokers"):
            return None
        return RuntimeError("the cluster lists no broker")
    except Exception as error:  # any failure means not ready yet
        return error
    finally:
        with contextlib.suppress(Exception):  # closing a client that never connected
            await admin.close()


async def create_topics(connection: Connection, topics: t.Topics,
                        layout: t.Layout) -> list[str]:
    """Create every topic of the contract that does not exist yet; returns those created."""
    admin = connection.admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in t.ALL if topics.name(topic) not in existing]
        if missing:
            await admin.create_topics([
                NewTopic(topics.name(topic), layout.partitions_of(topic),
                         layout.replication_factor, topic_configs=layout.config(topic))
                for topic in missing])
        return [topics.name(topic) for topic in missing]
    finally:
        await admin.close()
