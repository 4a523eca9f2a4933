"""The faust app: it wires the monitor to its Kafka services, timers and web views.

faust carries what it is good at (services, timers, HTTP); every input topic goes
through the batch consumers of :mod:`streams.kafka.ingest`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any, cast

import faust
import numpy as np
from faust.app.base import BootStrategy
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import CollectorRegistry, generate_latest

from streams import web
from streams.checkpoint import Checkpointer, CheckpointStore
from streams.codec import encode
from streams.documents import cover2_document
from streams.failure import supervised
from streams.kafka.ingest import Ingest
from streams.kafka.outputs import Outputs
from streams.kafka.views import ViewExchange
from streams.metrics import ResultsCollector
from streams.monitor import Monitor
from streams.readiness import Readiness, readiness
from streams.settings import Settings
from streams.web_security import (
    OPEN_PATHS,
    WebConfig,
    basic_auth_middleware,
    load_web_config,
    server_ssl_context,
)

log = logging.getLogger(__name__)

# How often the event-loop lag is probed, in seconds.
LOOP_PROBE_S = 0.01
# The text exposition format; aiohttp sets the charset itself.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


class _WithoutKafka(BootStrategy):
    """faust starts no Kafka client of its own: every topic is read and written by the
    clients of :mod:`streams.kafka`."""

    enable_kafka = False


def _faust_app(settings: Settings, store: CheckpointStore,
               web_config: WebConfig | None = None) -> faust.App:
    (store.directory / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.group_id}-{settings.name}",
        broker=settings.broker,
        store="memory://",
        datadir=str(store.directory / "faust" / settings.name),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_ssl_context=server_ssl_context(web_config),
    )
    app.boot_strategy = _WithoutKafka(app)
    return app


def create_app(settings: Settings, store: CheckpointStore,
               web_config: WebConfig | None = None) -> faust.App:
    """The worker's faust app, with its monitor restored from ``store``, its HTTP server
    secured by ``web_config`` (loaded from ``settings.web_config_file`` when not given)."""
    if web_config is None and settings.web_config_file:
        web_config = load_web_config(settings.web_config_file)
    state = store.load()
    monitor = Monitor(settings.topics, settings.call_policy, state,
                      plausibility=settings.plausibility)
    app = _faust_app(settings, store, web_config)
    auth = basic_auth_middleware(web_config, OPEN_PATHS)
    if auth is not None:  # now: aiohttp freezes its middlewares when the server starts
        cast(AiohttpWeb, app.web).web_app.middlewares.append(auth)
    outputs = Outputs(settings)
    views = ViewExchange(settings, monitor)
    ingest = Ingest(settings, monitor, outputs, views.hand_over)
    app.add_dependency(outputs)
    app.add_dependency(views)  # reads views before the group is joined
    app.add_dependency(ingest)
    app.add_dependency(Checkpointer(store, monitor.state, outputs, settings.checkpoint_interval))
    log.info("state %s: %s", store.path, "restored" if state else "starting empty")

    def ready() -> Readiness:
        return readiness(ingest.assigned, ingest.rebalancing, monitor.results is not None,
                         ingest.fetch_age(time.time()), settings.ready_max_lag)

    registry = CollectorRegistry()
    registry.register(ResultsCollector(settings.currency, lambda: monitor.results,
                                       lambda: monitor.tally,
                                       lambda: time.time() - monitor.refreshed_at,
                                       lambda: ready().ready, monitor.desk,
                                       lambda: monitor.reverse,
                                       lambda: monitor.state.ledger))

    def respond(request: Any, response: web.Response) -> Any:
        status, body = response
        return request.bytes(encode(body), content_type="application/json", status=status)

    endpoints = {
        "/cover2": "the Cover-2 results: credit and liquidity, with how fresh they are",
        "/groups": "the member groups", "/groups/{group}": "one group by scenario, its members",
        "/what-if?default=G1&default=G2": "what the named groups' default would use now",
        "/metrics": "Prometheus metrics", "/healthz": "liveness", "/readyz": "readiness"}

    @app.page("/")
    async def index(view: Any, request: Any) -> Any:
        return respond(view, web.index(endpoints))

    @app.page("/groups")
    async def groups(view: Any, request: Any) -> Any:
        return respond(view, web.groups(monitor.results))

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        healthy = ingest.assigned and not ingest.rebalancing
        return respond(view, web.healthz(healthy, settings.name))

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        return respond(view, web.readyz(ready(), settings.name))

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        return view.bytes(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)

    @app.page("/cover2")
    async def cover2(view: Any, request: Any) -> Any:
        return respond(view, web.cover2(monitor.results, settings.currency, monitor.counts(),
                                        monitor.handover.sources, ready(), monitor.desk,
                                        monitor.reverse))

    @app.page("/what-if")
    async def what_if(view: Any, request: Any) -> Any:
        return respond(view, web.what_if(monitor.results, request.query.getall("default", []),
                                         settings.currency))

    @app.page("/groups/{group}")
    async def group(view: Any, request: Any, group: str) -> Any:
        return respond(view, web.group(monitor.results, monitor.member_rows, group,
                                       settings.currency))

    @supervised("the recompute timer")
    async def recompute() -> None:
        monitor.recompute()

    @supervised("publishing ccp.cover2")
    async def publish_cover2() -> None:
        results = monitor.results
        if results is not None:
            await outputs.publish_cover2(results.sequence, lambda: encode(cover2_document(
                results, settings.currency, monitor.counts(), monitor.handover.sources,
                ready(), monitor.desk(), monitor.reverse)))

    @supervised("the reverse stress test")
    async def reverse_stress() -> None:
        await monitor.reverse_stress()

    @supervised("the event-loop lag probe")
    async def probe_loop_lag() -> None:
        # How late a short sleep wakes: the longest stall of the loop in each probe.
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + LOOP_PROBE_S
            await asyncio.sleep(LOOP_PROBE_S)
            monitor.tally.loop_lag.observe(np.array([max(0.0, loop.time() - asked)]))

    app.task(probe_loop_lag)
    app.timer(settings.reverse_stress_interval)(reverse_stress)
    app.timer(settings.recompute_interval)(recompute)
    app.timer(settings.publish_interval)(publish_cover2)
    # What exists now (the modules, the restored state) lives as long as the worker: out of
    # the cyclic collector's way, so that its full collections stay short.
    gc.freeze()
    return app
