"""`cover2 bench`: throughput, latency, start-up, restart and memory, side by side in one run.

Every row reads the same prepared topics on the same embedded broker in the same
run, so the figures that matter are the ratios to the ceiling row.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from streams import topics as t
from streams.codec import decode, decode_many, encode
from streams.kafka.admin import create_topics, wait_for_kafka
from streams.kafka.clients import Connection, Consumer, TopicPartition
from streams.kafka.outputs import Outputs
from streams.kafka.sender import KeyedSender, batch_producer
from streams.metrics import EVENT_LATENCY, LOOP_LAG, MERGED_EVENT_LATENCY
from streams.monitor import Monitor
from streams.settings import Settings
from streams.tally import LATENCY_BUCKETS
from streams.tools.broker import free_port, start_broker, stop_process
from streams.tools.lab import Worker, eventually, http_get
from streams.tools.market import SCALES, Feed, Market
from streams.tools.settings import ToolSettings

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
SCALE_OUT_PARTITIONS = 2


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


def _hot_partitions(consumer: Consumer, topics: t.Topics) -> list[TopicPartition]:
    return [TopicPartition(name, p) for name in topics.names(t.HOT_INPUTS)
            for p in sorted(consumer.partitions_for_topic(name) or ())]


async def _consumer(lab: Lab) -> Consumer:
    consumer = lab.connection.batch_consumer(Settings().fetch_wait)
    await consumer.start()
    return consumer


async def _read(lab: Lab, topics: t.Topics, total: int,
                handle: Callable[[dict[TopicPartition, list[Any]]], Awaitable[None] | None]
                ) -> float:
    """Read the prepared hot topics from the start through ``handle``: events per second."""
    consumer = await _consumer(lab)
    try:
        await consumer.topics()
        consumer.assign(_hot_partitions(consumer, topics))
        await consumer.seek_to_beginning()
        seen, start = 0, time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=lab.plan.batch)
            seen += sum(len(records) for records in batch.values())
            done = handle(batch)
            if done is not None:
                await done
        return total / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def _loaded_monitor(lab: Lab, topics: t.Topics, monitor: Monitor) -> Monitor:
    """Apply the prepared reference topics, as the faust agents would."""
    consumer = await _consumer(lab)
    try:
        await consumer.topics()
        partitions = [TopicPartition(name, p) for name in topics.names(t.REFERENCE_INPUTS)
                      for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        expected = len(lab.market.reference_messages())
        applied = 0
        while applied < expected:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    monitor.apply_reference(record)
                applied += len(records)
        monitor.refresh()
        return monitor
    finally:
        await consumer.stop()


class NaiveMonitor(Monitor):
    """The textbook approach: every batch recomputes all exposures from positions."""

    def refresh(self) -> list[Any]:
        self.state.ccp.recompute()
        return super().refresh()


async def throughput_rows(lab: Lab, topics: t.Topics, total: int) -> list[dict[str, Any]]:
    """The table's rows, each the median of the plan's repeats."""
    settings = Settings(broker=f"kafka://{lab.bootstrap}", topic_prefix=topics.prefix)

    async def ceiling() -> float:
        return await _read(lab, topics, total, lambda batch: None)

    async def decoded() -> float:
        def handle(batch: dict[TopicPartition, list[Any]]) -> None:
            for records in batch.values():
                kind = topics.short(records[0].topic)
                for record in records:
                    decode(kind, record.key, record.value)
        return await _read(lab, topics, total, handle)

    def monitored(kind: type[Monitor]) -> Callable[[], Awaitable[float]]:
        async def row() -> float:
            monitor = await _loaded_monitor(lab, topics, kind(topics, settings.call_policy))
            outputs = Outputs(settings)
            await outputs.start()
            try:
                return await _read(lab, topics, total, lambda batch: outputs.send(
                    monitor.ingest(batch.values())))
            finally:
                await outputs.stop()
        return row

    async def per_event_faust() -> float:
        budget = lab.plan.faust_budget_s
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.tools.bench_faust", lab.bootstrap, topics.prefix,
            lab.plan.scale, str(lab.seed), str(total), str(budget),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(process.communicate(), timeout=budget + 120)
        text = out.decode()
        if '{"events"' not in text:
            raise RuntimeError("bench: the per-event faust app reported nothing")
        result = json.loads(text[text.rindex('{"events"'):].splitlines()[0])
        return float(result["events"]) / float(result["seconds"])

    rows: list[dict[str, Any]] = []
    for name, measure in (("ceiling", ceiling), ("decode", decoded),
                          ("monitor", monitored(Monitor)), ("naive", monitored(NaiveMonitor)),
                          ("per-event faust", per_event_faust)):
        runs = []
        for _ in range(lab.plan.repeats):
            runs.append(await measure())
            lab.say(f"  {name}: {runs[-1]:,.0f} events/s")
        rows.append({"row": name, "events_per_s": statistics.median(runs), "runs": runs})
    for row in rows:
        row["ratio"] = row["events_per_s"] / rows[0]["events_per_s"]
    return rows


def _histogram(metrics: str, name: str = EVENT_LATENCY) -> list[float]:
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
    consumer of these topics on this broker and machine sees at best.
    """
    consumer = await _consumer(lab)
    lags: list[float] = []
    try:
        await consumer.topics()
        consumer.assign(_hot_partitions(consumer, topics))
        await consumer.seek_to_beginning()
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

    def __init__(self, lab: Lab, topics: t.Topics, name: str, count: int, *flags: str) -> None:
        self.workers = [lab.spawn(topics, f"{name}-{i}", *flags) for i in range(count)]

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
        return {name: [sum(counts) for counts in zip(*(_histogram(page, name)
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
    group = Workers(lab, topics, f"latency{workers}", workers)
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
        group.stop()
    shape = {"workers": workers, "partitions": partitions, "offered_per_s": lab.plan.offered}
    own = _window(before[EVENT_LATENCY], after[EVENT_LATENCY])
    if not own["events"]:
        say("  no event became visible during the window: the workers are behind the feed")
    result = {**shape, **own, "loop_lag": _window(before[LOOP_LAG], after[LOOP_LAG])}
    if workers > 1:  # another worker's trades and collateral, through its partition views
        result["merged"] = _window(before[MERGED_EVENT_LATENCY], after[MERGED_EVENT_LATENCY])
    if floor_lags:
        result["floor"] = {"events": len(floor_lags),
                           "p50": float(np.percentile(floor_lags, 50)),
                           "p99": float(np.percentile(floor_lags, 99)), "max": max(floor_lags)}
    return result


def _window(before: list[float], after: list[float]) -> dict[str, Any]:
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


async def catch_up(lab: Lab, workers: int, partitions: int, say: Say) -> list[float]:
    """Events per second at which ``workers`` workers in one group apply a backlog.

    The workers settle on fresh topics holding the reference data. Each repeat stops
    them (SIGSTOP), produces the same share of the feed, resumes them (SIGCONT) and
    times until every event is applied and every worker serves the same Cover-2:
    the merge of the partition views is inside the time.
    """
    topics = await lab.topics(partitions=partitions)
    feed = lab.new_feed()
    read = workers * (await lab.prepare(topics, 0, feed))[t.PRICES]  # every worker reads prices
    # A stopped worker keeps its place in the group: its session outlasts the production.
    group = Workers(lab, topics, f"catch-up{workers}", workers,
                    "--session-timeout", "10", "--heartbeat-interval", "3")
    try:
        await eventually(lambda: group.settled(lab.market.scale.scenarios, partitions), 120,
                         f"{workers} workers settled in their group")
        runs = []
        for _ in range(lab.plan.repeats):
            group.signal(signal.SIGSTOP)
            counts = await lab.extend(topics, lab.plan.events // lab.plan.repeats, feed)
            read += sum(counts.values()) + (workers - 1) * counts[t.PRICES]
            started = time.monotonic()
            group.signal(signal.SIGCONT)
            await eventually(partial(group.caught_up, read), 300, "the backlog applied",
                             interval=0.02)
            runs.append(sum(counts.values()) / (time.monotonic() - started))
            say(f"  {workers} worker{'s' if workers > 1 else ''}: {runs[-1]:,.0f} events/s")
        return runs
    finally:
        group.stop()


async def scale_out(lab: Lab, say: Say) -> list[dict[str, Any]]:
    """One and two workers on the same layout of topics: catch-up throughput and latency."""
    rows: list[dict[str, Any]] = []
    for workers in (1, 2):
        runs = await catch_up(lab, workers, SCALE_OUT_PARTITIONS, say)
        rows.append({"workers": workers, "partitions": SCALE_OUT_PARTITIONS,
                     "events_per_s": statistics.median(runs), "runs": runs,
                     "latency_s": await latency(lab, say, workers, SCALE_OUT_PARTITIONS)})
    for row in rows:
        row["ratio"] = row["events_per_s"] / rows[0]["events_per_s"]
    return rows


async def startup(lab: Lab) -> float:
    """Median seconds from process start to /healthz 200 on an empty broker's fresh topics."""
    times = []
    for i in range(lab.plan.repeats):
        topics = t.Topics(f"bench{uuid.uuid4().hex[:8]}.")
        started = time.monotonic()
        worker = await lab.spawn(topics, f"startup{i}").healthy()
        times.append(time.monotonic() - started)
        worker.stop()
    return statistics.median(times)


async def restart(lab: Lab, topics: t.Topics, counts: dict[str, int],
                  say: Say) -> tuple[float, int]:
    """Seconds from a restart after kill -9 to healthy and caught up, and peak RSS.

    The worker holds the prepared day of state; its last checkpoint misses a tail
    of the stream, which the restarted worker replays from the input topics.
    """
    total = sum(counts.values())

    def caught_up(worker: Worker) -> bool:
        status, document = worker.get("/cover2")
        if status != 200:
            return False
        c = document["counts"]
        return bool(c["trades"] + c["duplicates"] + c["prices"] + c["collateral"] + c["stale"]
                    + c["rejected"] >= total)

    flags = ("--checkpoint-interval", "3600")
    worker = lab.spawn(topics, "restart", *flags)
    await eventually(lambda: caught_up(worker), 900, "the day of state applied", interval=0.5)
    worker.stop()  # a clean stop writes the checkpoint
    total += sum((await lab.extend(topics, max(total // 20, 1_000))).values())
    worker = lab.spawn(topics, "restart", *flags)
    await eventually(lambda: caught_up(worker), 300, "the tail applied", interval=0.2)
    peak = worker.peak_rss()
    worker.kill()
    say(f"  killed -9 holding {counts.get(t.TRADES, 0):,} trades; the checkpoint misses the "
        f"last {total // 21:,} events")
    started = time.monotonic()
    worker = lab.spawn(topics, "restart", *flags)
    await eventually(lambda: http_get(worker.url("/healthz"))[0] == 200 and caught_up(worker),
                     120, "healthy and caught up after kill -9", interval=0.02)
    elapsed = time.monotonic() - started
    return elapsed, max(peak, worker.peak_rss())


async def run(plan: Plan, seed: int, say: Say) -> dict[str, Any]:
    """The whole benchmark; returns the results in the shape `--json` writes."""
    lab = Lab(plan, seed, say)
    try:
        await wait_for_kafka(lab.connection)
        scale = lab.market.scale
        say(f"bench: {plan.scale} scale ({scale.members} members, {scale.groups} groups, "
            f"{scale.instruments} instruments, {scale.scenarios} scenarios), embedded broker "
            f"at {lab.bootstrap}")
        topics = await lab.topics()
        say(f"preparing {plan.events:,} events on {topics.prefix}*")
        counts = await lab.prepare(topics, plan.events)
        hot = sum(n for topic, n in counts.items() if topic in t.HOT_INPUTS)
        say("throughput (each row reads the same prepared topics)")
        rows = await throughput_rows(lab, topics, hot)
        say("latency")
        # One worker: one partition a topic. On the embedded broker a fetch across more
        # partitions comes back later (docs/performance.md); partitions are for more workers.
        latency_result = await latency(lab, say)
        say(f"scale-out: one and two workers on {SCALE_OUT_PARTITIONS} partitions a topic")
        scale_out_rows = await scale_out(lab, say)
        say("start-up")
        startup_s = await startup(lab)
        say("restart after kill -9")
        restart_s, peak = await restart(lab, topics, counts, say)
        return {"scale": {"name": plan.scale, "members": scale.members, "groups": scale.groups,
                          "instruments": scale.instruments, "scenarios": scale.scenarios},
                "events": hot, "rows": rows, "latency_s": latency_result,
                "scale_out": scale_out_rows,
                "startup_s": startup_s, "restart_s": restart_s, "peak_rss_bytes": peak}
    finally:
        lab.close()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def _scale_out_table(rows: list[dict[str, Any]]) -> list[str]:
    partitions = rows[0]["partitions"]
    offered = rows[0]["latency_s"]["offered_per_s"]
    lines = ["", f"scale-out, {partitions} partitions a topic: catch-up of a backlog, and "
                 f"latency at {offered:,.0f} events/s offered",
             f"{'workers':<8} {'events/s':>12} {'vs one':>7} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'max ms':>8} {'every worker p99/max ms':>24} {'floor p99 ms':>13}"]
    for row in rows:
        lat = row["latency_s"]
        floor = lat.get("floor", {}).get("p99")
        merged = lat.get("merged")
        every = f"{_ms(merged['p99'])} / {_ms(merged['max'])}" if merged else "-"
        lines.append(f"{row['workers']:<8} {row['events_per_s']:>12,.0f} {row['ratio']:>7.3f} "
                     f"{_ms(lat['p50']):>8} {_ms(lat['p99']):>8} {_ms(lat['max']):>8} "
                     f"{every:>24} {_ms(floor):>13}")
    return [*lines, ""]


def table(result: dict[str, Any]) -> str:
    """The results as a table: throughput rows, latency, scale-out, start-up, restart, memory."""
    lines = [f"{'row':<16} {'events/s':>12} {'ratio':>7}"]
    lines += [f"{r['row']:<16} {r['events_per_s']:>12,.0f} {r['ratio']:>7.3f}"
              for r in result["rows"]]
    lat = result["latency_s"]
    lines += ["", f"latency at {lat['offered_per_s']:,.0f} events/s offered: "
                  + (f"p50 {lat['p50'] * 1e3:.1f} ms, p99 {lat['p99'] * 1e3:.1f} ms, "
                     f"max <= {lat['max'] * 1e3:.0f} ms ({lat['events']:,.0f} events)"
                     if lat["events"] else "no event became visible in the window"),
              (f"  floor, a bare consumer of the same topics: p50 "
               f"{lat['floor']['p50'] * 1e3:.1f} ms, p99 {lat['floor']['p99'] * 1e3:.1f} ms, "
               f"max {lat['floor']['max'] * 1e3:.0f} ms" if lat.get("floor") else ""),
              f"  the worker's event loop in the window: stalls p99 "
              f"{_ms(lat['loop_lag']['p99'])} ms, longest <= {_ms(lat['loop_lag']['max'])} ms",
              *_scale_out_table(result["scale_out"]),
              f"start-up to healthy: {result['startup_s']:.2f} s",
              f"restart after kill -9 to healthy and caught up: {result['restart_s']:.2f} s",
              f"peak RSS of the worker: {result['peak_rss_bytes'] / 2**20:,.0f} MiB"]
    return "\n".join(lines)


def main(settings: ToolSettings, say: Say) -> None:
    """Run the plan the settings choose, print the table, and write the JSON if asked."""
    plan = QUICK if settings.quick else replace(FULL, scale=settings.scale)
    json_path = settings.json
    result = asyncio.run(run(plan, settings.seed, say))
    say("\n" + table(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
        say(f"\nwritten to {json_path}")
