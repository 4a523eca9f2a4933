"""`cover2 bench --soak`: a trading week through one worker, in compressed event time.

The last five business days that are over, of the benchmark's market
(:mod:`streams.tools.trading_days`): ten million trades at the large scale, with prices and
collateral in the usual mix, sent at a steady rate to one worker whose dedupe window is
one day. Each day's end sends some of the day's trades again (duplicates) and, from the
third day, some of two days before (older than the window: refused), then settles
everyone's variation margin. After each day: the worker's memory, its last checkpoint,
and what its ledger remembers. At the end: the longest event-loop stall of the week, a
sample of groups and every count against the plain model, the same after kill -9 and a
restart, and the latency at the offered load with the week held.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.plain import PlainCcp, plain_results
from streams import topics as t
from streams.codec import TradeMessage, decode, decode_many, encode
from streams.kafka.sender import KeyedSender, batch_producer
from streams.ledger import DAY, Ledger
from streams.metrics import (
    CHECKPOINT_BYTES,
    CHECKPOINT_CUT,
    CHECKPOINT_TIMESTAMP,
    CHECKPOINT_WRITE,
    LAST_EVENT_TIMESTAMP,
    LOOP_LAG,
    REMEMBERED_BYTES,
    REMEMBERED_TRADES,
)
from streams.settings import Settings
from streams.tally import LATENCY_BUCKETS
from streams.tools.bench_lab import (
    Lab,
    Say,
    Workers,
    has_read,
    histogram_counts,
    in_ms,
    in_window,
    latency,
    measured_latency,
)
from streams.tools.lab import Worker, eventually, http_get, sample
from streams.tools.market import BENCH_MIX
from streams.tools.plain_inputs import apply_to_plain
from streams.tools.simulate import send_reference
from streams.tools.trading_days import SETTLEMENT_AT, Encoded, History, at

SOAK_DAYS = 5
WINDOW_DAYS = 1.0
CHECKPOINT_INTERVAL_S = 10.0
MAX_BATCH = 5_000
SEND_CHUNK = 4_000
# Each day's end: this many of the day's trades sent again, and of two days before.
RESENT = 1_000
SAMPLE_GROUPS = 4
# What the sample may differ from the plain model by: rounding, relative to the largest.
SAMPLE_RTOL = 1e-7


@dataclass(frozen=True)
class SoakPlan:
    """How big the soak is: trades over the week, and events per second sent."""

    trades: int
    rate: float


FULL_SOAK = SoakPlan(10_000_000, 40_000.0)
QUICK_SOAK = SoakPlan(30_000, 5_000.0)


def soak_start(now: float) -> dt.date:
    """The first of the last :data:`SOAK_DAYS` business days whose settlement is over."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date()
    days: list[dt.date] = []
    while len(days) < SOAK_DAYS:
        if day.weekday() < 5 and at(day, SETTLEMENT_AT) <= now:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[-1]


def _metrics(worker: Worker) -> str:
    status, page = http_get(worker.url("/metrics"))
    return page.decode() if status == 200 else ""


class PlainSample:
    """The plain model of a few groups, fed the soak's messages for them (and every
    member's reference data: a group's liquidity drain counts the lines its members
    provide)."""

    def __init__(self, lab: Lab) -> None:
        market = lab.market
        groups = sorted(set(market.group_ids))
        self.groups = sorted(random.Random(lab.seed).sample(groups, SAMPLE_GROUPS))
        rows = [m for m, g in enumerate(market.group_of_member.tolist())
                if market.group_ids[g] in self.groups]
        self.members = {market.member_ids[m].encode() for m in rows}
        self.instruments = {market.instrument_ids[j].encode()
                            for j in np.unique(market.book[rows]).tolist()}
        self.plain = PlainCcp()

    def take(self, messages: Encoded) -> None:
        """Apply what concerns the sample, in order."""
        for topic, key, value in messages:
            keys = self.instruments if topic in (t.PRICES, t.INSTRUMENTS) else \
                self.members if topic in t.MEMBER_KEYED else None
            if keys is None or key in keys:
                apply_to_plain(self.plain, topic, decode(topic, key, value))

    def difference(self, worker: Worker) -> float:
        """The largest difference between the worker's and the plain model's exposure and
        drain of a sample group in a scenario, relative to the largest of them."""
        want = plain_results(self.plain)
        worst, scale = 0.0, 1.0
        for group in self.groups:
            g = want.groups.index(group)
            status, got = worker.get(f"/groups/{group}")
            if status != 200:
                return float("inf")
            for s, scenario in enumerate(want.scenarios):
                for side, matrix in (("exposure", want.exposure_by_group_scenario),
                                     ("drain", want.drain_by_group_scenario)):
                    expected = float(matrix[g, s])
                    worst = max(worst, abs(got[side][scenario] - expected))
                    scale = max(scale, abs(expected))
        return worst / scale


class Soak:
    """One soak: its worker, what was sent, and what was measured."""

    def __init__(self, lab: Lab, plan: SoakPlan, say: Say,
                 start_latency: dict[str, Any] | None) -> None:
        self.lab, self.plan, self.say = lab, plan, say
        self.start_latency = start_latency
        self.start = soak_start(time.time())
        trade_share = BENCH_MIX[0] / sum(BENCH_MIX)
        self.history = History(lab.market, self.start, SOAK_DAYS,
                               round(plan.trades / SOAK_DAYS / trade_share), lab.seed)
        self.sample = PlainSample(lab)
        self.default_window = Ledger()  # what the week costs with the default window
        self.sent = self.trades = self.duplicates = self.expired = 0
        self.first_trades: list[Encoded] = []
        # The worker's flags: the window, frequent checkpoints, and batches small enough
        # that one takes a few milliseconds (the lab's are for throughput).
        self.flags = ("--dedupe-window", str(WINDOW_DAYS), "--checkpoint-interval",
                      str(CHECKPOINT_INTERVAL_S), "--max-batch", str(MAX_BATCH))

    async def run(self) -> dict[str, Any]:
        lab, say = self.lab, self.say
        say(f"soak: {SOAK_DAYS} business days from {self.start}, about "
            f"{self.plan.trades:,} trades at {self.plan.rate:,.0f} events/s, dedupe window "
            f"{WINDOW_DAYS:g} day")
        start_latency = self.start_latency or await latency(lab, say)
        topics = await lab.topics(partitions=1)
        producer = batch_producer(lab.connection, max_request_size=16 << 20)
        await producer.start()
        sender = KeyedSender(producer)
        worker = lab.spawn(topics, "soak", *self.flags)
        try:
            self.sample.take([(topic, key.encode(), encode(value))
                              for topic, key, value in lab.market.reference_messages()])
            await send_reference(sender, topics, lab.market, round(self.history.reference_ts
                                                                   * 1000))
            await worker.healthy()
            await eventually(lambda: worker.get("/cover2")[1].get("scenarios")
                             == lab.market.scale.scenarios, 600, "the reference data applied")
            stalls_before = _histogram_of(worker)
            days = []
            for d, (day, messages) in enumerate(self.history.trading_days(), 1):
                days.append(await self._day(worker, sender, topics, d, day, messages))
            stalls_after = _histogram_of(worker)
            stalls = in_window(stalls_before, stalls_after)
            within_50ms = LATENCY_BUCKETS.index(0.05)
            stalls_over_50ms = (stalls_after[-1] - stalls_after[within_50ms]) - \
                (stalls_before[-1] - stalls_before[within_50ms])
            counts = worker.get("/cover2")[1]["counts"]
            difference = self.sample.difference(worker)
            say(f"  the sample of {SAMPLE_GROUPS} groups differs from the plain model by "
                f"{difference:.1e} of the largest figure")
            worker.kill()
            started = time.monotonic()
            worker = lab.spawn(topics, "soak", *self.flags)
            await eventually(lambda: http_get(worker.url("/healthz"))[0] == 200
                             and has_read(worker, self.sent), 120,
                             "healthy and caught up after kill -9", interval=0.02)
            restart_s = time.monotonic() - started
            restarted_counts = worker.get("/cover2")[1]["counts"]
            restarted_difference = self.sample.difference(worker)
            say(f"  killed -9 and restarted: healthy and caught up in {restart_s:.2f} s; the "
                f"sample differs by {restarted_difference:.1e}")
            say("  latency with the week held")
            end_latency = await measured_latency(lab, say, topics, Workers([worker]), 1)
        finally:
            worker.stop()
            await producer.stop()
        remembered = self.default_window
        for ledger in remembered.partitions.values():
            ledger.take_frozen(wait=True)
        return {
            "trades": self.trades, "events": self.sent, "first_day": str(self.start),
            "window_days": WINDOW_DAYS, "rate_per_s": self.plan.rate, "days": days,
            "max_loop_stall_s": stalls["max"], "loop_stall_p99_s": stalls["p99"],
            "loop_stalls": stalls["events"], "loop_stalls_over_50ms": stalls_over_50ms,
            "latency_p99_start_s": start_latency["p99"], "latency_p99_end_s": end_latency["p99"],
            "latency_start": start_latency, "latency_end": end_latency,
            "restart_s": restart_s,
            "bytes_per_remembered_trade": remembered.nbytes / max(1, len(remembered)),
            "worker_bytes_per_remembered_trade": days[-1]["bytes_per_remembered_trade"],
            "counts": counts, "expected": {"trades": self.trades, "duplicates": self.duplicates,
                                           "rejected": self.expired},
            "exact": _exact(counts, self.trades, self.duplicates, self.expired)
            and difference <= SAMPLE_RTOL,
            "exact_after_restart": _exact(restarted_counts, self.trades, self.duplicates,
                                          self.expired) and restarted_difference <= SAMPLE_RTOL,
            "sample_difference": difference, "sample_difference_after_restart":
            restarted_difference, "sample_groups": self.sample.groups}

    async def _day(self, worker: Worker, sender: KeyedSender, topics: t.Topics, d: int,
                   day: dt.date, messages: Encoded) -> dict[str, Any]:
        """Send a day (its events, the re-sends, then its settlement) and measure."""
        hot = [m for m in messages if m[0] in t.HOT_INPUTS]
        trades = [m for m in hot if m[0] == t.TRADES]
        self.first_trades.append(trades[:RESENT])
        again = self.first_trades[-1] + (self.first_trades[-3] if d >= 3 else [])
        began = time.monotonic()
        await self._paced(sender, topics, hot + again)
        self.trades += len(trades)
        self.duplicates += len(self.first_trades[-1])
        self.expired += len(self.first_trades[-3]) if d >= 3 else 0
        self.sent += len(hot) + len(again)
        await eventually(lambda: has_read(worker, self.sent), 600, f"day {d} applied",
                         interval=0.2)
        settle = [m for m in messages if m[0] not in t.HOT_INPUTS]
        await sender.send((topics.name(topic), key, value) for topic, key, value in settle)
        settled_at = at(day, SETTLEMENT_AT)
        settlements = f'{LAST_EVENT_TIMESTAMP}{{topic="{t.SETTLEMENTS}"}}'
        await eventually(lambda: (worker.sample(settlements) or 0) >= settled_at, 60,
                         f"day {d} settled")
        applied_s = time.monotonic() - began
        after = time.time()

        def checkpointed() -> str | None:  # the page once a checkpoint after the day is kept
            page = _metrics(worker)
            return page if (sample(page, CHECKPOINT_TIMESTAMP) or 0) > after else None
        page = await eventually(checkpointed, 4 * CHECKPOINT_INTERVAL_S,
                                f"a checkpoint after day {d}")
        self.sample.take(hot + settle)
        members, trade_ids, ts = _trades_of(trades)
        self.default_window.admit(0, members, trade_ids, ts, Settings().dedupe_window * DAY)
        remembered = sample(page, REMEMBERED_TRADES) or 0.0
        snapshot_s, cut_s = sample(page, CHECKPOINT_WRITE) or 0.0, \
            sample(page, CHECKPOINT_CUT) or 0.0
        snapshot_bytes, rss = sample(page, CHECKPOINT_BYTES) or 0.0, worker.rss()
        row = {"day": d, "date": str(day), "trades": len(trades), "events": len(hot),
               "applied_s": applied_s, "rss_bytes": rss, "snapshot_s": snapshot_s,
               "snapshot_cut_s": cut_s, "snapshot_bytes": snapshot_bytes,
               "remembered_trades": remembered,
               "bytes_per_remembered_trade": (sample(page, REMEMBERED_BYTES) or 0.0)
               / max(1.0, remembered)}
        self.say(f"  day {d} ({day}): {len(trades):,} trades in {applied_s:.0f} s, RSS "
                 f"{rss / 2**20:,.0f} MiB, checkpoint {snapshot_s:.2f} s (the loop paused "
                 f"{cut_s * 1e3:.1f} ms) {snapshot_bytes / 2**20:,.0f} MiB, {remembered:,.0f} "
                 "trades remembered")
        return row

    async def _paced(self, sender: KeyedSender, topics: t.Topics, messages: Encoded) -> None:
        started = time.monotonic()
        for first in range(0, len(messages), SEND_CHUNK):
            await sender.send((topics.name(topic), key, value)
                              for topic, key, value in messages[first:first + SEND_CHUNK])
            ahead = (first + SEND_CHUNK) / self.plan.rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)


def _trades_of(trades: Encoded) -> tuple[list[str], list[str], np.ndarray]:
    decoded: list[TradeMessage] = decode_many(t.TRADES, [value for _, _, value in trades])[0]
    return ([m.member for m in decoded], [m.trade_id for m in decoded],
            np.array([m.ts for m in decoded], dtype=np.float64))


def _exact(counts: dict[str, int], trades: int, duplicates: int, expired: int) -> bool:
    return (counts["trades"], counts["duplicates"], counts["rejected"]) == \
        (trades, duplicates, expired)


def _histogram_of(worker: Worker) -> list[float]:
    return histogram_counts(_metrics(worker), LOOP_LAG)


async def soak(lab: Lab, plan: SoakPlan, say: Say,
               start_latency: dict[str, Any] | None = None) -> dict[str, Any]:
    """The soak's results, in the shape ``--json`` writes under ``"soak"``; the latency at
    the start is ``start_latency`` (a fresh worker's, measured in the same run) or measured
    first."""
    return await Soak(lab, plan, say, start_latency).run()


def soak_table(result: dict[str, Any]) -> list[str]:
    """The soak's lines of the benchmark's table."""
    days = result["days"]
    lines = ["", f"soak: {len(days)} business days from {result['first_day']}, "
                 f"{result['trades']:,} trades ({result['events']:,} events) sent at "
                 f"{result['rate_per_s']:,.0f} events/s, dedupe window {result['window_days']:g} "
                 "day",
             f"{'day':<4} {'date':<11} {'trades':>10} {'applied s':>10} {'RSS MiB':>8} "
             f"{'checkpoint s':>13} {'loop paused ms':>15} {'checkpoint MiB':>15} "
             f"{'remembered':>11}"]
    lines += [f"{d['day']:<4} {d['date']:<11} {d['trades']:>10,} {d['applied_s']:>10.1f} "
              f"{d['rss_bytes'] / 2**20:>8,.0f} {d['snapshot_s']:>13.2f} "
              f"{d['snapshot_cut_s'] * 1e3:>15.1f} {d['snapshot_bytes'] / 2**20:>15,.0f} "
              f"{d['remembered_trades']:>11,.0f}" for d in days]
    lines += [f"RSS after day {len(days)} over RSS after day 1: "
              f"{days[-1]['rss_bytes'] / days[0]['rss_bytes']:.2f}",
              f"longest event-loop stall over the week: <= {in_ms(result['max_loop_stall_s'])} ms "
              f"(p99 {in_ms(result['loop_stall_p99_s'])} ms; "
              f"{result['loop_stalls_over_50ms']:,.0f} of {result['loop_stalls']:,.0f} probes "
              "over 50 ms)",
              f"latency p99 at {result['latency_end']['offered_per_s']:,.0f} events/s: "
              f"{in_ms(result['latency_p99_start_s'])} ms at the start (a fresh worker), "
              f"{in_ms(result['latency_p99_end_s'])} ms with the week held",
              f"restart after kill -9 at the end: {result['restart_s']:.2f} s to healthy and "
              "caught up",
              f"a remembered trade: {result['bytes_per_remembered_trade']:.1f} bytes (the "
              f"default window, the week's trades), "
              f"{result['worker_bytes_per_remembered_trade']:.1f} bytes in the worker",
              f"counts and a sample of {len(result['sample_groups'])} groups equal to the "
              f"plain model: {'yes' if result['exact'] else 'NO'}; after kill -9 and a "
              f"restart: {'yes' if result['exact_after_restart'] else 'NO'}"]
    return lines
