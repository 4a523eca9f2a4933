"""The embedded broker for the whole session; a fresh set of topics and workers per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streams.kafka.admin import wait_for_kafka
from streams.kafka.clients import Connection
from streams.tools.broker import free_port, start_broker, stop_process
from tests.integration.cluster import TEST_FLAGS, Feed, Spawn, Worker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_broker("127.0.0.1", port, tmp_path_factory.mktemp("broker") / "broker.log")
    bootstrap = f"127.0.0.1:{port}"
    asyncio.run(wait_for_kafka(Connection(bootstrap)))
    yield bootstrap
    stop_process(process)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def workers(broker: str, prefix: str, tmp_path: Path) -> Iterator[list[Worker]]:
    """Start workers with ``spawn(name)``; all are stopped after the test."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def spawn(broker: str, prefix: str, tmp_path: Path, workers: list[Worker]) -> Spawn:
    def start(name: str = "w1", *flags: str) -> Worker:
        worker = Worker(broker, prefix, tmp_path, name, f"{prefix}cover2",
                        (*TEST_FLAGS, *flags)).start()
        workers.append(worker)
        return worker
    return start


@pytest.fixture
async def feed(broker: str, prefix: str) -> AsyncIterator[Feed]:
    async with Feed(Connection(broker), prefix) as f:
        yield f
