"""The benchmark's laboratory: the embedded broker, prepared topics, worker processes, and
the latency they show beside a bare consumer's."""


from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streams import topics as t
from streams.codec import decode_many, encode
from streams.kafka.admin import create_topics
from streams.kafka.clients import Connection, Consumer, TopicPartition
from streams.kafka.sender import KeyedSender, batch_producer
from streams.metrics import EVENT_LATENCY, LOOP_LAG, MERGED_EVENT_LATENCY
from streams.settings import Settings
from streams.tally import LATENCY_BUCKETS
from streams.tools.broker import free_port, start_broker, stop_process
from streams.tools.lab import Worker, eventually, http_get
from streams.tools.market import SCALES, Feed, Market

Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """How much the benchmark does."""

    scale: str
    events: int  # prepared events, 70% trades: enough for a day of state
    repeats: int
    batch: int
    offered: float  # events per second for the latency run
    warmup_s: float
    latency_s: float
    faust_budget_s: float


FULL = Plan("large", 1_430_000, 3, 20_000, 20_000.0, 10.0, 15.0, 10.0)
QUICK = Plan("demo", 20_000, 1, 5_000, 1_000.0, 2.0, 3.0, 2.0)
# How long the latency run waits for the workers to catch up with the feed (at xl, the
# 2,000 scenarios take a while to apply) before its warm-up and window.
CATCH_UP_S = 120.0
# The scale-out rows: one and two workers on topics of this many partitions each.


class Lab:
    """The embedded broker, prepared topics and worker processes of one benchmark run."""

    def __init__(self, plan: Plan, seed: int, say: Say) -> None:
        self.plan, self.seed, self.say = plan, seed, say
        self.directory = Path(tempfile.mkdtemp(prefix="cover2-bench-"))
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        self.connection = Connection(self.bootstrap)
        self.broker = start_broker("127.0.0.1", port, self.directory / "broker.log")
        self.market = Market.build(SCALES[plan.scale], seed)
        self.workers: list[Worker] = []
        self.feed = self.new_feed()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        stop_process(self.broker)

    async def topics(self, partitions: int = 4) -> t.Topics:
        """A fresh set of topics."""
        topics = t.Topics(f"bench{uuid.uuid4().hex[:8]}.")
        await create_topics(self.connection, topics, t.Layout(partitions))
        return topics

    def new_feed(self) -> Feed:
        """The feed of this run's market and seed, from its first event."""
        return Feed(self.market, self.seed, start_ts=time.time(), rate=1e6)

    async def prepare(self, topics: t.Topics, events: int,
                      feed: Feed | None = None) -> dict[str, int]:
        """Reference data, opening prices and ``events`` feed events; returns counts per topic."""
        feed = feed or self.feed
        reference = [(topic, key.encode(), encode(value))
                     for topic, key, value in self.market.reference_messages()]
        opening = [(topic, key.encode(), encode(value))
                   for topic, key, value in feed.opening_prices()]
        await self._send(topics, reference + opening)
        counts = {t.PRICES: len(opening)}
        for topic, n in (await self.extend(topics, events, feed)).items():
            counts[topic] = counts.get(topic, 0) + n
        return counts

    async def extend(self, topics: t.Topics, events: int,
                     feed: Feed | None = None) -> dict[str, int]:
        """``events`` more events of the feed (the lab's by default); returns counts per topic."""
        feed = feed or self.feed
        counts: dict[str, int] = {}
        sent, started = 0, time.monotonic()
        while sent < events:
            chunk = min(50_000, events - sent)
            messages = []
            for topic, encoded in feed.encoded(chunk).items():
                counts[topic] = counts.get(topic, 0) + len(encoded)
                messages += [(topic, key, value) for key, value in encoded]
            await self._send(topics, messages)
            sent += chunk
            if sent % 250_000 < chunk:
                self.say(f"  produced {sent:,} of {events:,} events "
                         f"({time.monotonic() - started:.0f} s)")
        return counts

    async def _send(self, topics: t.Topics, messages: list[tuple[str, bytes, bytes]]) -> None:
        producer = batch_producer(self.connection, max_request_size=16 << 20)
        await producer.start()
        try:
            await KeyedSender(producer).send(
                (topics.name(topic), key, value) for topic, key, value in messages)
        finally:
            await producer.stop()

    def spawn(self, topics: t.Topics, name: str, *flags: str) -> Worker:
        """A real `cover2 worker` process on ``topics``, started."""
        worker = Worker(self.bootstrap, topics.prefix, self.directory, name,
                        f"{topics.prefix}cover2",
                        ("--max-batch", str(self.plan.batch), "--log-level", "warning", *flags))
        self.workers.append(worker.start())
        return worker


def hot_partitions(consumer: Consumer, topics: t.Topics) -> list[TopicPartition]:
    """Every partition of the trades, prices and collateral topics."""
    return [TopicPartition(name, p) for name in topics.names(t.HOT_INPUTS)
            for p in sorted(consumer.partitions_for_topic(name) or ())]


async def bench_consumer(lab: Lab) -> Consumer:
    """A started bare consumer of the lab's broker, outside any group."""
    consumer = lab.connection.batch_consumer(Settings().fetch_wait)
    await consumer.start()
    return consumer


def histogram_counts(metrics: str, name: str = EVENT_LATENCY) -> list[float]:
    """Cumulative bucket counts of a latency histogram, lowest bound first."""
    buckets = {}
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return [buckets[bound] for bound in sorted(buckets)]


def _quantile(counts: list[float], q: float) -> float:
    """A quantile from cumulative bucket counts, interpolated within its bucket."""
    bounds = [*LATENCY_BUCKETS, float("inf")]
    target = q * counts[-1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= target:
            if bound == float("inf"):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((target - lower_count) / span
                                                          if span else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


async def _floor(lab: Lab, topics: t.Topics, start: float, end: float) -> list[float]:
    """Event time to receipt for a bare consumer of ``topics``, for events from ``start``
    to ``end`` (wall clock; start it early enough to have caught up by ``start``).

    It decodes each message for its event time and does nothing else: what any
    consumer of these topics on this broker and machine sees at best. It starts at
    the topics' ends: topics that already hold a history (the soak's) are not read.
    """
    consumer = await bench_consumer(lab)
    lags: list[float] = []
    try:
        await consumer.topics()
        consumer.assign(hot_partitions(consumer, topics))
        await consumer.seek_to_end()
        while time.time() < end:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                received = time.time()
                kind = topics.short(records[0].topic)
                messages, _, _ = decode_many(kind, [r.value for r in records])
                lags += [received - m.ts for m in messages
                         if m.ts is not None and start <= m.ts < end]
        return lags
    finally:
        await consumer.stop()


class Workers:
    """Worker processes in one consumer group on the same topics."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    @classmethod
    def spawned(cls, lab: Lab, topics: t.Topics, name: str, count: int, *flags: str) -> Workers:
        """``count`` new workers on ``topics``."""
        return cls([lab.spawn(topics, f"{name}-{i}", *flags) for i in range(count)])

    def documents(self) -> list[dict[str, Any]] | None:
        """Every worker's ``/cover2``, or None while one of them has none."""
        documents = []
        for worker in self.workers:
            status, document = worker.get("/cover2")
            if status != 200:
                return None
            documents.append(document)
        return documents

    def settled(self, scenarios: int, partitions: int) -> list[dict[str, Any]] | None:
        """Every worker's ``/cover2`` once each has the scenarios, its own share of the
        partitions and the whole result; None until then."""
        documents = self.documents()
        if documents is None:
            return None
        local = [d["partitions"]["local"] for d in documents]
        ready = all(d["complete"] and d["scenarios"] == scenarios for d in documents)
        shared = all(local) and sorted(p for ps in local for p in ps) == list(range(partitions))
        return documents if ready and shared else None

    def caught_up(self, read: int) -> bool:
        """Whether the workers have read ``read`` events between them and serve one result."""
        documents = self.documents()
        if documents is None:
            return False
        counted = sum(sum(d["counts"].values()) - d["counts"]["forwarded"] for d in documents)
        results = {(d["credit"]["cover2"], d["liquidity"]["cover2"]) for d in documents}
        return counted >= read and len(results) == 1 and all(d["complete"] for d in documents)

    def histograms(self) -> dict[str, list[float]]:
        """Cumulative bucket counts of both latency histograms, each summed over the
        workers."""
        pages = [http_get(worker.url("/metrics"))[1].decode() for worker in self.workers]
        return {name: [sum(counts) for counts in zip(*(histogram_counts(page, name)
                                                         for page in pages), strict=True)]
                for name in (EVENT_LATENCY, MERGED_EVENT_LATENCY, LOOP_LAG)}

    def signal(self, signum: signal.Signals) -> None:
        for worker in self.workers:
            worker.signal(signum)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


async def latency(lab: Lab, say: Say, workers: int = 1, partitions: int = 1) -> dict[str, Any]:
    """Event-to-metric latency at the plan's offered load, from the workers' histograms,
    beside the floor: what a bare consumer of the same topics sees in the same window."""
    topics = await lab.topics(partitions=partitions)
    group = Workers.spawned(lab, topics, f"latency{workers}", workers)
    try:
        return await measured_latency(lab, say, topics, group, partitions)
    finally:
        group.stop()


async def measured_latency(lab: Lab, say: Say, topics: t.Topics, group: Workers,
                           partitions: int) -> dict[str, Any]:
    """Latency at the plan's offered load of ``group``, working on ``topics``: the
    market's feed at that rate, from the time it is sent."""
    workers = len(group.workers)
    feed = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "simulate", "--broker", f"kafka://{lab.bootstrap}",
         "--topic-prefix", topics.prefix, "--rate", str(lab.plan.offered), "--scale",
         lab.plan.scale, "--seed", str(lab.seed), "--seconds",
         str(CATCH_UP_S + lab.plan.warmup_s + lab.plan.latency_s + 60)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            documents = group.settled(lab.market.scale.scenarios, partitions)
            return documents is not None and all(d["counts"]["trades"] > 0 for d in documents)
        await eventually(ready, 300, "the latency feed flowing")

        def caught_up() -> bool:  # the reference data applied, the workers at the feed
            documents = group.documents()
            return documents is not None and all(time.time() - d["as_of"] < 1.0
                                                 for d in documents)
        try:
            await eventually(caught_up, CATCH_UP_S, "the workers caught up with the feed")
        except TimeoutError:
            say(f"  the workers are still behind the feed after {CATCH_UP_S:g} s; "
                "measuring anyway")
        start = time.time() + lab.plan.warmup_s
        floor = asyncio.ensure_future(_floor(lab, topics, start, start + lab.plan.latency_s))
        await asyncio.sleep(start - time.time())
        before = group.histograms()
        say(f"  measuring for {lab.plan.latency_s:g} s at {lab.plan.offered:,.0f} events/s")
        await asyncio.sleep(lab.plan.latency_s)
        after = group.histograms()
        floor_lags = await floor
    finally:
        stop_process(feed)
    shape = {"workers": workers, "partitions": partitions, "offered_per_s": lab.plan.offered}
    own = in_window(before[EVENT_LATENCY], after[EVENT_LATENCY])
    if not own["events"]:
        say("  no event became visible during the window: the workers are behind the feed")
    result = {**shape, **own, "loop_lag": in_window(before[LOOP_LAG], after[LOOP_LAG])}
    if workers > 1:  # another worker's trades and collateral, through its partition views
        result["merged"] = in_window(before[MERGED_EVENT_LATENCY], after[MERGED_EVENT_LATENCY])
    if floor_lags:
        result["floor"] = {"events": len(floor_lags),
                           "p50": float(np.percentile(floor_lags, 50)),
                           "p99": float(np.percentile(floor_lags, 99)), "max": max(floor_lags)}
    return result


def in_ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a table, "-" for none."""
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def in_window(before: list[float], after: list[float]) -> dict[str, Any]:
    """Events, p50, p99 and the upper bound of the highest bucket reached, between two
    readings of a histogram."""
    window = [a - b for a, b in zip(after, before, strict=True)]
    if not window[-1]:
        return {"events": 0, "p50": None, "p99": None, "max": None}
    bounds = [*LATENCY_BUCKETS, float("inf")]
    highest = next(bound for bound, count in zip(bounds, window, strict=True)
                   if count >= window[-1])
    return {"events": window[-1], "p50": _quantile(window, 0.50),
            "p99": _quantile(window, 0.99), "max": highest}


def has_read(worker: Worker, total: int) -> bool:
    """Whether ``worker`` has read ``total`` trades, prices and collateral messages."""
    status, document = worker.get("/cover2")
    if status != 200:
        return False
    c = document["counts"]
    return bool(c["trades"] + c["duplicates"] + c["prices"] + c["collateral"] + c["stale"]
                + c["rejected"] >= total)
