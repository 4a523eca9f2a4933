"""Failures are loud: a batch nobody can read stops the worker with its place named, and a
frozen broker makes the worker unready, not wrong."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.failure import EXIT_FATAL
from streams.kafka.admin import wait_for_kafka
from streams.kafka.clients import Connection
from streams.tools.broker import free_port, start_broker, stop_process
from tests.integration.cluster import TEST_FLAGS, Feed, Spawn, Worker, eventually
from tests.integration.test_recovery import (
    applied,
    apply_plain,
    assert_matches_plain,
    hot_stream,
    reference_data,
    send,
)

pytestmark = pytest.mark.integration

# A failure must end the process this soon after it happens.
EXIT_WITHIN_S = 10.0
READY_MAX_LAG_S = 5.0
FREEZE_S = 15.0


async def send_corrupt_batch(bootstrap: str, topic: str, partition: int) -> int:
    """A record batch whose CRC does not match its records; returns its offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        batch = producer.create_batch()
        batch.append(key=b"A1", value=b'{"trade_id": "x", "member": "A1", "instrument": "I", '
                     b'"quantity": 1, "price": 1}', timestamp=None)
        batch._build()[-1] ^= 0xFF  # a flipped bit in the last record
        sent = await (await producer.send_batch(batch, topic, partition=partition))
        return int(sent.offset)
    finally:
        await producer.stop()


def exited(worker: Worker) -> int | None:
    assert worker.process is not None
    return worker.process.poll()


async def test_a_corrupt_batch_stops_the_worker_with_its_place_named(spawn: Spawn, feed: Feed,
                                                                    broker: str) -> None:
    worker = await spawn().healthy()
    await feed.send("trades", {"trade_id": "t1", "member": "A1", "instrument": "I",
                               "quantity": 1, "price": 10.0, "ts": 1.0}, "A1")
    await feed.flush()
    await eventually(lambda: worker.get("/cover2")[1]["counts"]["trades"] == 1,
                     what="the good trade applied")
    topic = feed.topics.name("trades")
    offset = await send_corrupt_batch(broker, topic, partition=0)
    sent_at = time.monotonic()
    code = await eventually(lambda: exited(worker), timeout=EXIT_WITHIN_S + 5,
                            what="the worker stopped")
    assert code == EXIT_FATAL
    assert time.monotonic() - sent_at < EXIT_WITHIN_S
    log = worker.tail(200)
    assert "ERROR" in log and "ingest loop" in log and "Invalid CRC" in log, log
    assert f"{topic}/0 offset {offset}" in log, log
    # Restarted, it meets the same batch and says so again: never a silent skip.
    worker.start()
    assert await eventually(lambda: exited(worker), timeout=60, what="stopped again") \
        == EXIT_FATAL
    assert worker.tail(400).count("Invalid CRC") >= 2


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A broker of this test's own, to freeze: (bootstrap, pid of the broker process)."""
    port = free_port()
    process = start_broker("127.0.0.1", port, tmp_path / "broker.log")
    yield f"127.0.0.1:{port}", process.pid
    stop_process(process)


def ready(worker: Worker) -> int:
    return int(worker.get("/readyz")[0])


def ready_gauge(worker: Worker) -> float:
    metrics = worker.get("/metrics")[1]
    return float(next(line.split()[1] for line in metrics.splitlines()
                      if line.startswith("ccp_ready ")))


async def test_a_frozen_broker_makes_the_worker_unready_and_nothing_is_lost(
        own_broker: tuple[str, int], prefix: str, tmp_path: Path,
        workers: list[Worker]) -> None:
    bootstrap, broker_pid = own_broker
    await wait_for_kafka(Connection(bootstrap))
    rng = random.Random(5)
    async with Feed(Connection(bootstrap), prefix) as feed:
        worker = Worker(bootstrap, prefix, tmp_path, "w1", f"{prefix}cover2",
                        (*TEST_FLAGS, "--ready-max-lag", str(READY_MAX_LAG_S))).start()
        workers.append(worker)
        await worker.healthy()
        messages, plain = reference_data(rng)
        await send(feed, messages)
        stream = hot_stream(rng, 3_000)
        first, second = stream[:1_500], stream[1_500:]
        await send(feed, first)
        await eventually(lambda: ready(worker) == 200, what="ready")
        assert ready_gauge(worker) == 1.0

        frozen_at = time.monotonic()
        os.kill(broker_pid, signal.SIGSTOP)
        try:
            await eventually(lambda: ready(worker) == 503, timeout=READY_MAX_LAG_S + 2,
                             what="unready while the broker is frozen", interval=0.2)
            document = worker.get("/readyz")[1]
            assert document["ready"] is False and "no fetch" in document["reason"]
            assert ready_gauge(worker) == 0.0
            assert worker.get("/cover2")[1]["ready"] is False
            assert worker.get("/healthz")[0] == 200  # alive: nothing to restart
            await asyncio.sleep(max(0.0, FREEZE_S - (time.monotonic() - frozen_at)))
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        await eventually(lambda: ready(worker) == 200, what="ready again after the freeze")
        await send(feed, second)
        apply_plain(plain, stream)
        await eventually(lambda: applied(worker, stream), what="the whole stream applied")
        assert_matches_plain(worker, plain)
        assert worker.alive()


STOP_GRACE_S = 3.0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_worker_stops_within_its_grace_even_with_the_broker_frozen(
        signum: signal.Signals, own_broker: tuple[str, int], prefix: str, tmp_path: Path,
        workers: list[Worker]) -> None:
    bootstrap, broker_pid = own_broker
    await wait_for_kafka(Connection(bootstrap))
    worker = Worker(bootstrap, prefix, tmp_path, "w1", f"{prefix}cover2",
                    (*TEST_FLAGS, "--stop-grace", str(STOP_GRACE_S), "--ready-max-lag", "1")
                    ).start()
    workers.append(worker)
    await worker.healthy()
    await eventually(lambda: ready(worker) == 200, what="ready")
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        # Once it has noticed, a clean stop would wait for the broker (about 40 s here).
        await eventually(lambda: ready(worker) == 503, what="the broker missed")
        assert worker.process is not None
        asked = time.monotonic()
        worker.process.send_signal(signum)
        await eventually(lambda: worker.process.poll() is not None,
                         timeout=STOP_GRACE_S + 5, what="the worker stopped")
        assert time.monotonic() - asked < STOP_GRACE_S + 3
    finally:
        os.kill(broker_pid, signal.SIGCONT)
