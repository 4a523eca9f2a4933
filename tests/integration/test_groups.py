"""Workers of other topics beside each other: they do not share a group by default, and a
worker that joins a group of other topics is refused without harming the group."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.kafka.clients import Connection
from streams.tools.lab import Worker, eventually
from tests.integration.cluster import TEST_FLAGS, Feed
from tests.integration.test_semantics import SCENARIO, trade

pytestmark = pytest.mark.integration

# The exit code of a worker whose group refuses it.
REFUSED = 2


def default_group(broker: str, prefix: str, tmp_path: Path, name: str,
                  group: str = "") -> Worker:
    """A worker whose group id is ``group``, or derived from its prefix when empty."""
    return Worker(broker, prefix, tmp_path, name, group, TEST_FLAGS)


async def fed(broker: str, prefix: str, quantity: float) -> None:
    async with Feed(Connection(broker), prefix) as feed:
        await feed.send("scenarios", SCENARIO, "down")
        await feed.send("trades", trade("T1", quantity=quantity), "M1")
        await feed.flush()


def cover2(worker: Worker) -> float | None:
    status, document = worker.get("/cover2")
    return float(document["credit"]["cover2"]) if status == 200 else None


async def test_workers_of_other_prefixes_run_side_by_side(
        broker: str, tmp_path: Path, workers: list[Worker]) -> None:
    one, two = (f"g{uuid.uuid4().hex[:8]}." for _ in range(2))
    first = default_group(broker, one, tmp_path, "first").start()
    second = default_group(broker, two, tmp_path, "second").start()
    workers += [first, second]
    await first.healthy()
    await second.healthy()
    await fed(broker, one, 10)
    await fed(broker, two, 20)
    assert await eventually(lambda: cover2(first) == pytest.approx(100), what="first")
    assert await eventually(lambda: cover2(second) == pytest.approx(200), what="second")
    assert first.alive() and second.alive()


async def test_a_worker_of_other_topics_in_a_group_is_refused_and_the_group_goes_on(
        broker: str, tmp_path: Path, workers: list[Worker]) -> None:
    one, two = (f"g{uuid.uuid4().hex[:8]}." for _ in range(2))
    group = f"shared-{uuid.uuid4().hex[:6]}"
    first = default_group(broker, one, tmp_path, "first", group).start()
    workers.append(first)
    await first.healthy()
    stranger = default_group(broker, two, tmp_path, "stranger", group).start()
    workers.append(stranger)
    assert stranger.process is not None
    code = await eventually(lambda: stranger.process.poll(), what="the stranger stopped")
    assert code == REFUSED
    log = stranger.tail(50)
    assert "refused this worker" in log and f"{one}trades" in log, log
    await fed(broker, one, 10)
    await eventually(lambda: cover2(first) == pytest.approx(100), what="the group goes on")
    assert first.alive()
