"""`cover2 simulate`: the synthetic CCP of :mod:`streams.market`, sent to Kafka at a chosen rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams import topics as t
from streams.broker import wait_for_kafka
from streams.market import SCALES, Feed, Market, encode
from streams.settings import Settings

# Events are sent in ticks of this many seconds, paced to the wall clock; event times
# are due times, so a tick adds up to its length to the latency an event shows.
TICK_S = 0.01
# Record batches stay well under a consumer's default fetch size (1 MiB): the embedded
# broker does not hand out a batch larger than the fetch asks for, and the consumer stalls.
MAX_BATCH_BYTES = 256 * 1024
# One settlement of everyone's variation margin per this many events.
SETTLE_EVERY = 60_000


class KeyedSender:
    """Sends keyed messages one batch per partition, partitioned as Kafka's default partitioner.

    Building record batches directly costs a fraction of a ``send()`` per message,
    which keeps a paced feed on time at tens of thousands of events a second.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}

    async def _partition(self, topic: str, key: bytes) -> int:
        partition = self._partition_of.get((topic, key))
        if partition is None:
            if topic not in self._partitions:
                self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
            partitions = self._partitions[topic]
            partition = self._partition_of[topic, key] = DefaultPartitioner()(
                key, partitions, partitions)
        return partition

    async def send(self, messages: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Send ``(topic, key, value)`` messages and wait until the broker has them all."""
        batches: dict[tuple[str, int], Any] = {}
        delivered = []
        for topic, key, value in messages:
            where = (topic, await self._partition(topic, key))
            batch = batches.get(where)
            if batch is None or batch.append(key=key, value=value, timestamp=None) is None:
                if batch is not None:
                    delivered.append(await self.producer.send_batch(batch, topic,
                                                                    partition=where[1]))
                batch = batches[where] = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for (topic, partition), batch in batches.items():
            delivered.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*delivered)


async def send_reference(sender: KeyedSender, topics: t.Topics, market: Market) -> int:
    """Reference data, scenarios and resources; returns how many messages."""
    messages = market.reference_messages()
    await sender.send((topics.name(topic), key.encode(), encode(topic, value))
                      for topic, key, value in messages)
    return len(messages)


async def simulate(settings: Settings, say: Callable[[str], None] = print) -> int:
    """Send the market's reference data, then its feed at ``settings.rate``; returns events sent."""
    await wait_for_kafka(settings.bootstrap_servers)
    await t.create_topics(settings.bootstrap_servers, t.Topics(settings.topic_prefix),
                          settings.partitions)
    topics = t.Topics(settings.topic_prefix)
    market = Market.build(SCALES[settings.scale], settings.seed)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks=1,
                                linger_ms=1, max_batch_size=MAX_BATCH_BYTES,
                                client_id="cover2-simulate")
    await producer.start()
    sender = KeyedSender(producer)
    try:
        n = await send_reference(sender, topics, market)
        say(f"simulate: sent {n} reference messages ({settings.scale} market, seed "
            f"{settings.seed}); now {settings.rate:,.0f} events/s"
            + (f" for {settings.seconds:g} s" if settings.seconds else " until stopped"))
        start = time.time()
        feed = Feed(market, settings.seed, start_ts=start, rate=settings.rate,
                    settle_every=SETTLE_EVERY)
        await sender.send((topics.name(topic), key.encode(), encode(topic, value))
                          for topic, key, value in feed.opening_prices())
        sent, reported = 0, start
        while not settings.seconds or time.time() - start < settings.seconds:
            due = int((time.time() - start) * settings.rate) - sent
            if due > 0:
                await sender.send((topics.name(topic), key, value)
                                  for topic, encoded in feed.encoded(due).items()
                                  for key, value in encoded)
                sent += due
            if time.time() - reported >= 10:
                reported = time.time()
                say(f"simulate: {sent:,} events sent ({sent / (reported - start):,.0f}/s)")
            await asyncio.sleep(TICK_S)
        say(f"simulate: done, {sent:,} events in {time.time() - start:.1f} s")
        return sent
    finally:
        await producer.stop()
