"""`cover2 bench`: throughput, latency, start-up, restart and memory, side by side in one run.

Every row reads the same prepared topics on the same embedded broker in the same
run, so the figures that matter are the ratios to the ceiling row.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from streams import topics as t
from streams.codec import decode
from streams.kafka.admin import wait_for_kafka
from streams.kafka.clients import TopicPartition
from streams.kafka.outputs import Outputs
from streams.monitor import Monitor
from streams.settings import Settings
from streams.tools.bench_lab import (
    FULL,
    QUICK,
    Lab,
    Plan,
    Say,
    Workers,
    bench_consumer,
    has_read,
    hot_partitions,
    in_ms,
    latency,
)
from streams.tools.lab import Worker, eventually, http_get
from streams.tools.settings import ToolSettings
from streams.tools.soak import FULL_SOAK, QUICK_SOAK, SoakPlan, soak, soak_table

# The scale-out rows: one and two workers on topics of this many partitions each.
SCALE_OUT_PARTITIONS = 2


async def _read(lab: Lab, topics: t.Topics, total: int,
                handle: Callable[[dict[TopicPartition, list[Any]]], Awaitable[None] | None]
                ) -> float:
    """Read the prepared hot topics from the start through ``handle``: events per second."""
    consumer = await bench_consumer(lab)
    try:
        await consumer.topics()
        consumer.assign(hot_partitions(consumer, topics))
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
    consumer = await bench_consumer(lab)
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
        self.state.ccp.recompute(at_once=True)
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
    group = Workers.spawned(lab, topics, f"catch-up{workers}", workers,
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
        return has_read(worker, total)

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


async def run(plan: Plan, seed: int, say: Say,
              soak_plan: SoakPlan | None = None) -> dict[str, Any]:
    """The whole benchmark, with the soak when ``soak_plan`` is given; returns the results
    in the shape `--json` writes."""
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
        result = {"scale": {"name": plan.scale, "members": scale.members,
                            "groups": scale.groups, "instruments": scale.instruments,
                            "scenarios": scale.scenarios},
                  "events": hot, "rows": rows, "latency_s": latency_result,
                  "scale_out": scale_out_rows,
                  "startup_s": startup_s, "restart_s": restart_s, "peak_rss_bytes": peak}
        if soak_plan is not None:
            result["soak"] = await soak(lab, soak_plan, say, latency_result)
        return result
    finally:
        lab.close()


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
        every = f"{in_ms(merged['p99'])} / {in_ms(merged['max'])}" if merged else "-"
        lines.append(f"{row['workers']:<8} {row['events_per_s']:>12,.0f} {row['ratio']:>7.3f} "
                     f"{in_ms(lat['p50']):>8} {in_ms(lat['p99']):>8} {in_ms(lat['max']):>8} "
                     f"{every:>24} {in_ms(floor):>13}")
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
              f"{in_ms(lat['loop_lag']['p99'])} ms, longest <= {in_ms(lat['loop_lag']['max'])} ms",
              *_scale_out_table(result["scale_out"]),
              f"start-up to healthy: {result['startup_s']:.2f} s",
              f"restart after kill -9 to healthy and caught up: {result['restart_s']:.2f} s",
              f"peak RSS of the worker: {result['peak_rss_bytes'] / 2**20:,.0f} MiB"]
    if "soak" in result:
        lines += soak_table(result["soak"])
    return "\n".join(lines)


def main(settings: ToolSettings, say: Say) -> None:
    """Run the plan the settings choose, print the table, and write the JSON if asked."""
    plan = QUICK if settings.quick else replace(FULL, scale=settings.scale)
    soak_plan = (QUICK_SOAK if settings.quick else FULL_SOAK) if settings.soak else None
    json_path = settings.json
    result = asyncio.run(run(plan, settings.seed, say, soak_plan))
    say("\n" + table(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
        say(f"\nwritten to {json_path}")
