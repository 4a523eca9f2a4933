"""`cover2 simulate`: the synthetic CCP of :mod:`streams.market`, sent to Kafka at a chosen rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from streams import topics as t
from streams.broker import wait_for_kafka
from streams.market import SCALES, Feed, Market, encode
from streams.settings import Settings

# Events are sent in ticks of this many seconds, paced to the wall clock; event times
# are due times, so a tick adds up to its length to the latency an event shows.
TICK_S = 0.002
# One settlement of everyone's variation margin per this many events.
SETTLE_EVERY = 60_000


async def send_reference(producer: AIOKafkaProducer, topics: t.Topics, market: Market) -> int:
    """Reference data, scenarios and resources; returns how many messages."""
    messages = market.reference_messages()
    for topic, key, value in messages:
        await producer.send(topics.name(topic), encode(topic, value), key=key.encode())
    await producer.flush()
    return len(messages)


async def simulate(settings: Settings, say: Callable[[str], None] = print) -> int:
    """Send the market's reference data, then its feed at ``settings.rate``; returns events sent."""
    await wait_for_kafka(settings.bootstrap_servers)
    await t.create_topics(settings.bootstrap_servers, t.Topics(settings.topic_prefix),
                          settings.partitions)
    topics = t.Topics(settings.topic_prefix)
    market = Market.build(SCALES[settings.scale], settings.seed)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks=1,
                                linger_ms=1, max_batch_size=1 << 20,
                                client_id="cover2-simulate")
    await producer.start()
    try:
        n = await send_reference(producer, topics, market)
        say(f"simulate: sent {n} reference messages ({settings.scale} market, seed "
            f"{settings.seed}); now {settings.rate:,.0f} events/s"
            + (f" for {settings.seconds:g} s" if settings.seconds else " until stopped"))
        start = time.time()
        feed = Feed(market, settings.seed, start_ts=start, rate=settings.rate,
                    settle_every=SETTLE_EVERY)
        for topic, key, value in feed.opening_prices():
            await producer.send(topics.name(topic), encode(topic, value), key=key.encode())
        sent, reported = 0, start
        while not settings.seconds or time.time() - start < settings.seconds:
            due = int((time.time() - start) * settings.rate) - sent
            if due > 0:
                for topic, encoded in feed.encoded(due).items():
                    for key_bytes, value_bytes in encoded:
                        await producer.send(topics.name(topic), value_bytes, key=key_bytes)
                sent += due
            if time.time() - reported >= 10:
                reported = time.time()
                say(f"simulate: {sent:,} events sent ({sent / (reported - start):,.0f}/s)")
            await asyncio.sleep(TICK_S)
        await producer.flush()
        say(f"simulate: done, {sent:,} events in {time.time() - start:.1f} s")
        return sent
    finally:
        await producer.stop()
