"""`cover2 simulate`: the synthetic CCP of :mod:`streams.tools.market`, sent to Kafka at a
chosen rate, or a history of past business days (:mod:`streams.tools.trading_days`) sent
as fast as the broker takes it."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Callable
from typing import NoReturn

from streams import topics as t
from streams.codec import encode
from streams.kafka.admin import create_topics, wait_for_kafka
from streams.kafka.clients import Connection
from streams.kafka.sender import KeyedSender, batch_producer
from streams.tools.market import SCALES, Feed, Market
from streams.tools.settings import ToolSettings
from streams.tools.trading_days import SETTLEMENT_AT, History, at, business_days

# Events are sent in ticks of this many seconds, paced to the wall clock; event times
# are due times, so a tick adds up to its length to the latency an event shows.
TICK_S = 0.01
# One settlement of everyone's variation margin per this many events.
SETTLE_EVERY = 60_000
# A history says how far it has got at most this often, in seconds.
PROGRESS_S = 2.0


async def send_reference(sender: KeyedSender, topics: t.Topics, market: Market,
                         timestamp_ms: int | None = None) -> int:
    """Reference data, scenarios and resources, with record timestamp ``timestamp_ms`` (None:
    the time of sending); returns how many messages."""
    messages = market.reference_messages()
    await sender.send(((topics.name(topic), key.encode(), encode(value))
                       for topic, key, value in messages), timestamp_ms)
    return len(messages)


def history_start(settings: ToolSettings, now: float) -> dt.date:
    """The first day of the history the settings ask for. A bad date, or a history that
    would not be over by ``now`` (the worker refuses event times ahead of its clock), is
    one line and exit code 2."""
    try:
        start = dt.date.fromisoformat(settings.start)
    except ValueError:
        _refuse(f"--start {settings.start} is not a date (YYYY-MM-DD)")
    last = business_days(start, settings.days)[-1]
    if at(last, SETTLEMENT_AT) > now:
        _refuse(f"--start {settings.start} --days {settings.days} ends on {last}, which is not "
                f"over yet: a history is of past business days")
    return start


def _refuse(why: str) -> NoReturn:
    print(f"cover2 simulate: {why}", file=sys.stderr, flush=True)
    raise SystemExit(2)


async def simulate(settings: ToolSettings, say: Callable[[str], None] = print) -> int:
    """Send the market's reference data, then its feed at ``settings.rate``, or with
    ``settings.start`` its history; returns events sent."""
    start = history_start(settings, time.time()) if settings.start else None
    connection, topics = Connection.of(settings), settings.topics
    await wait_for_kafka(connection)
    await create_topics(connection, topics, settings.layout)
    market = Market.build(SCALES[settings.scale], settings.seed)
    producer = batch_producer(connection, linger_ms=1, client_id="cover2-simulate")
    await producer.start()
    sender = KeyedSender(producer)
    try:
        if start is not None:
            return await _history(settings, sender, market, start, say)
        return await _live(settings, sender, market, say)
    finally:
        await producer.stop()


async def _live(settings: ToolSettings, sender: KeyedSender, market: Market,
                say: Callable[[str], None]) -> int:
    topics = settings.topics
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


async def _history(settings: ToolSettings, sender: KeyedSender, market: Market,
                   start: dt.date, say: Callable[[str], None]) -> int:
    topics, began = settings.topics, time.monotonic()
    history = History(market, start, settings.days, settings.events_per_day, settings.seed)
    days = history.days
    n = await send_reference(sender, topics, market, round(history.reference_ts * 1000))
    say(f"simulate: sent {n} reference messages ({settings.scale} market, seed "
        f"{settings.seed}) at {days[0]} 07:00 UTC; now {len(days)} business days of "
        f"{settings.events_per_day:,} events")
    sent, reported = 0, began
    for d, (day, messages) in enumerate(history.trading_days(), 1):
        await sender.send((topics.name(topic), key, value) for topic, key, value in messages)
        sent += len(messages)
        if time.monotonic() - reported >= PROGRESS_S:
            reported = time.monotonic()
            say(f"simulate: day {d} of {len(days)} ({day}), {sent:,} events sent")
    breach = history.breach_day or "none (fewer than 3 days)"
    say(f"simulate: done, {days[0]} to {days[-1]} ({len(days)} business days), {sent:,} "
        f"events, breach day planned: {breach}, in {time.monotonic() - began:.1f} s")
    return sent
