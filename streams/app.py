"""The faust app: agents for the low-rate inputs, web views, timers, and the hosted ingest loop.

faust carries what it is good at (reference data, timers, HTTP); the
per-message topics go through :mod:`streams.ingest`. The app id is the
worker's own, so every worker reads every partition of the reference topics;
its agents never commit: they replay from the start and skip what the state
already includes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry, generate_latest

from streams import topics as t
from streams.codec import encode
from streams.documents import cover2_document, group_document
from streams.ingest import Ingest
from streams.metrics import SnapshotCollector
from streams.monitor import Monitor
from streams.outputs import Outputs
from streams.partials import Partials
from streams.settings import Settings
from streams.state import StateKeeper, StateStore

log = logging.getLogger(__name__)

# The text exposition format; aiohttp sets the charset itself.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


@dataclass(frozen=True)
class Received:
    """A record as the monitor needs it, from a faust message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def create_app(settings: Settings, store: StateStore) -> faust.App:
    """The worker's faust app, with its monitor restored from ``store``."""
    topics = t.Topics(settings.topic_prefix)
    state = store.load()
    monitor = Monitor(topics, settings.call_policy, state)
    (store.directory / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        # A group of its own per process: the agents never commit, so nothing is lost, and
        # a restart after kill -9 does not wait for the dead incarnation's session to expire.
        f"{settings.group_id}-{settings.name}-{os.getpid()}-{int(time.time())}",
        broker=settings.broker,
        store="memory://",
        datadir=str(store.directory / "faust" / settings.name),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=settings.session_timeout,
        broker_request_timeout=max(settings.session_timeout + 5.0, 10.0),
        producer_acks=-1,
        stream_wait_empty=False,
    )
    outputs = Outputs(settings)
    partials = Partials(settings, monitor)
    ingest = Ingest(settings, monitor, outputs, partials.hand_over)
    app.add_dependency(outputs)
    app.add_dependency(partials)  # reads views before the group is joined
    app.add_dependency(ingest)
    app.add_dependency(StateKeeper(store, monitor.state, outputs, settings.snapshot_interval))
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(settings.currency, lambda: monitor.snapshot,
                                        lambda: monitor.state.tally,
                                        lambda: time.time() - monitor.refreshed_at))
    reference = app.topic(*topics.names(t.REFERENCE_INPUTS), key_serializer="raw",
                          value_serializer="raw", acks=False)
    log.info("state %s: %s", store.path, "restored" if state else "starting empty")

    @app.agent(reference)
    async def reference_data(stream: Any) -> None:
        async for event in stream.noack().events():
            message = event.message
            effects = monitor.apply_reference(Received(
                message.topic, message.partition, message.offset, message.key, message.value,
                int(message.timestamp * 1000)))
            await outputs.send(effects)

    def healthy() -> bool:
        return ingest.assigned and bool(app.consumer.assignment()) and not app.rebalancing

    def json_response(web: Any, document: Any, status: int = 200) -> Any:
        return web.bytes(encode(document), content_type="application/json", status=status)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ok = healthy()
        return json_response(web, {"status": "ok" if ok else "starting",
                                   "worker": settings.name}, 200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)

    @app.page("/cover2")
    async def cover2(web: Any, request: Any) -> Any:
        if monitor.snapshot is None:
            return json_response(web, {"error": "no results yet: the worker is starting"}, 503)
        return json_response(web, cover2_document(monitor.snapshot, settings.currency,
                                                  monitor.counts(), monitor.sources))

    @app.page("/groups/{group}")
    async def group(web: Any, request: Any, group: str) -> Any:
        if monitor.snapshot is None or group not in monitor.snapshot.groups:
            return json_response(web, {"error": f"no group {group!r}",
                                       "groups": list(monitor.snapshot.groups
                                                      if monitor.snapshot else ())}, 404)
        rows = monitor.state.ccp.member_rows(group)
        return json_response(web, group_document(monitor.snapshot, rows, group,
                                                 settings.currency))

    published = {"sequence": -1}

    @app.timer(settings.recompute_interval)  # type: ignore[untyped-decorator]
    async def rebase() -> None:
        monitor.rebase()

    @app.timer(settings.publish_interval)  # type: ignore[untyped-decorator]
    async def publish_cover2() -> None:
        snapshot = monitor.snapshot
        if snapshot is not None and snapshot.sequence != published["sequence"]:
            published["sequence"] = snapshot.sequence
            await outputs.publish_cover2(encode(cover2_document(snapshot, settings.currency,
                                                                monitor.counts(),
                                                                monitor.sources)))

    return app
