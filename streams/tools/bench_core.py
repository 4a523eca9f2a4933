"""Per-batch cost of the risk core at the "large CCP" scale (not a test).

Builds the synthetic market, fills the book, then times batches of the bench
mix (70% trades, 25% prices, 5% collateral) through ``apply_*`` and ``publish``
and prints the median cost per batch and per event, next to a full recompute
of every scenario P&L from positions (what a batch costs without increments).

    python -m streams.tools.bench_core [--scale large] [--batch 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from risk.ccp import Ccp
from risk.model import Collateral, Prices, Trades
from streams.tools.market import SCALES, Feed, Market, load_reference

Batch = tuple[Prices, Trades, Collateral]


def to_batch(events: list[tuple[str, str, dict[str, Any]]]) -> Batch:
    """Feed events as the core's columnar batches."""
    by_topic: dict[str, list[dict[str, Any]]] = {"trades": [], "prices": [], "collateral": []}
    for topic, _, value in events:
        by_topic[topic].append(value)
    trades, prices, collateral = by_topic["trades"], by_topic["prices"], by_topic["collateral"]
    return (Prices([v["instrument"] for v in prices], np.array([v["price"] for v in prices]),
                   np.array([v["ts"] for v in prices])),
            Trades([v["member"] for v in trades], [v["instrument"] for v in trades],
                   np.array([v["quantity"] for v in trades], dtype=np.float64),
                   np.array([v["price"] for v in trades]),
                   np.array([v["ts"] for v in trades], dtype=np.float64)),
            Collateral([v["member"] for v in collateral],
                       np.array([v["initial_margin"] for v in collateral]),
                       np.array([v["cash"] for v in collateral]),
                       np.array([v["ts"] for v in collateral])))


def apply_batch(ccp: Ccp, batch: Batch) -> None:
    """One batch through the core's entry points."""
    prices, trades, collateral = batch
    ccp.apply_prices(prices)
    ccp.apply_trades(trades)
    ccp.apply_collateral(collateral)


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--batch", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--fill", type=int, default=500_000, help="events to fill the book")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    scale = SCALES[args.scale]
    print(f"scale {args.scale}: {scale.members} members, {scale.groups} groups, "
          f"{scale.instruments} instruments, {scale.scenarios} scenarios", flush=True)
    market = Market.build(scale, seed=1)
    feed = Feed(market, seed=1, rate=50_000.0)
    ccp = Ccp()
    print(f"reference data and scenarios: {timed(lambda: load_reference(ccp, market)):.2f} s",
          flush=True)
    apply_batch(ccp, to_batch(feed.opening_prices()))
    start = time.perf_counter()
    for _ in range(0, args.fill, 50_000):
        apply_batch(ccp, to_batch(feed.events(50_000)))
    ccp.publish(now=0.0)
    print(f"book filled with {args.fill} events in {time.perf_counter() - start:.1f} s", flush=True)
    ccp.recompute(at_once=True)
    print(f"full recompute of all scenario P&L: {timed(lambda: ccp.publish(now=0.0)) * 1e3:.0f} ms")
    print(f"{'batch':>8} {'apply ms':>9} {'publish ms':>11} {'total ms':>9} {'us/event':>9} "
          f"{'events/s':>10}")
    for size in args.batch:
        applies, publishes = [], []
        for _ in range(args.repeats):
            batch = to_batch(feed.events(size))
            applies.append(timed(lambda batch=batch: apply_batch(ccp, batch)))
            publishes.append(timed(lambda: ccp.publish(now=0.0)))
        apply_s, publish_s = statistics.median(applies), statistics.median(publishes)
        total = apply_s + publish_s
        print(f"{size:>8} {apply_s * 1e3:>9.1f} {publish_s * 1e3:>11.1f} {total * 1e3:>9.1f} "
              f"{total / size * 1e6:>9.2f} {size / total:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
