"""`cover2 simulate`: the synthetic CCP of :mod:`streams.tools.market`, sent to Kafka at a
chosen rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from streams import topics as t
from streams.codec import encode
from streams.kafka.admin import create_topics, wait_for_kafka
from streams.kafka.clients import Connection
from streams.kafka.sender import KeyedSender, batch_producer
from streams.tools.market import SCALES, Feed, Market
from streams.tools.settings import ToolSettings

# Events are sent in ticks of this many seconds, paced to the wall clock; event times
# are due times, so a tick adds up to its length to the latency an event shows.
TICK_S = 0.01
# One settlement of everyone's variation margin per this many events.
SETTLE_EVERY = 60_000


async def send_reference(sender: KeyedSender, topics: t.Topics, market: Market) -> int:
    """Reference data, scenarios and resources; returns how many messages."""
    messages = market.reference_messages()
    await sender.send((topics.name(topic), key.encode(), encode(value))
                      for topic, key, value in messages)
    return len(messages)


async def simulate(settings: ToolSettings, say: Callable[[str], None] = print) -> int:
    """Send the market's reference data, then its feed at ``settings.rate``; returns events sent."""
    connection, topics = Connection.of(settings), settings.topics
    await wait_for_kafka(connection)
    await create_topics(connection, topics, settings.layout)
    market = Market.build(SCALES[settings.scale], settings.seed)
    producer = batch_producer(connection, linger_ms=1, client_id="cover2-simulate")
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
        await sender.send((topics.name(topic), key.encode(), encode(value))
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
