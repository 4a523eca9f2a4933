"""The "per-event faust" row of `cover2 bench`: what a first faust app does.

One faust agent per input topic, faust Records for decoding, each event applied
to the core on its own; results refreshed on a timer. Run as a process:

    python -m streams.tools.bench_faust BOOTSTRAP PREFIX SCALE SEED EVENTS SECONDS

It prints one JSON line, ``{"events": n, "seconds": s}``, and exits.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from typing import Any

import faust
import numpy as np

from risk.ccp import Ccp
from risk.model import Collateral, Prices, Trades
from streams import topics as t
from streams.tools.market import SCALES, Market, load_reference


class Trade(faust.Record, serializer="json"):
    trade_id: str
    member: str
    instrument: str
    quantity: float
    price: float
    ts: float


class Price(faust.Record, serializer="json"):
    instrument: str
    price: float
    ts: float


class CollateralState(faust.Record, serializer="json"):
    member: str
    initial_margin: float
    cash: float
    ts: float


def main() -> None:
    bootstrap, prefix, scale, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    target, budget = int(sys.argv[5]), float(sys.argv[6])
    topics = t.Topics(prefix)
    datadir = tempfile.mkdtemp(prefix="cover2-bench-faust-")
    app = faust.App(f"bench-faust-{time.time_ns()}", broker=f"kafka://{bootstrap}",
                    store="memory://", datadir=datadir, web_enabled=False,
                    topic_allow_declare=False, topic_disable_leader=True,
                    consumer_auto_offset_reset="earliest",
                    broker_session_timeout=3, broker_heartbeat_interval=1,
                    broker_rebalance_timeout=3, broker_request_timeout=10)
    ccp = Ccp()
    load_reference(ccp, Market.build(SCALES[scale], seed))
    progress: dict[str, Any] = {"events": 0, "start": None}
    one = np.ones(1)

    def count() -> None:
        progress["events"] += 1
        if progress["start"] is None:
            progress["start"] = time.perf_counter()
        elapsed = time.perf_counter() - progress["start"]
        if progress["events"] >= target or elapsed >= budget:
            # faust redirects stdout into its logging; the result goes to the real one.
            out = sys.__stdout__
            assert out is not None
            out.write(json.dumps({"events": progress["events"], "seconds": elapsed}) + "\n")
            out.flush()
            app.loop.call_soon(sys.exit, 0)
            progress["start"] = float("inf")

    @app.agent(app.topic(topics.name(t.TRADES), value_type=Trade))
    async def trades(stream: Any) -> None:
        async for trade in stream:
            ccp.apply_trades(Trades([trade.member], [trade.instrument], one * trade.quantity,
                                    one * trade.price, one * trade.ts))
            count()

    @app.agent(app.topic(topics.name(t.PRICES), value_type=Price))
    async def prices(stream: Any) -> None:
        async for price in stream:
            ccp.apply_prices(Prices([price.instrument], one * price.price, one * price.ts))
            count()

    @app.agent(app.topic(topics.name(t.COLLATERAL), value_type=CollateralState))
    async def collateral(stream: Any) -> None:
        async for state in stream:
            ccp.apply_collateral(Collateral([state.member], one * state.initial_margin,
                                            one * state.cash, one * state.ts))
            count()

    async def refresh() -> None:
        ccp.publish(time.time())

    app.timer(0.25)(refresh)

    try:
        faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


if __name__ == "__main__":
    main()
