"""Producers that compress: every codec a Kafka producer may use is read, and the worker
writes with the codec it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.kafka.clients import Connection
from tests.fixtures import messages_with_losses
from tests.integration.cluster import TEST_FLAGS, Feed, Worker, eventually, read_all
from tests.integration.test_worked_examples import send_all
from tests.tolerances import MONEY_ATOL
from tests.unit.test_worked_examples import AFFILIATES

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")


@pytest.mark.parametrize("codec", CODECS)
async def test_a_compressed_feed_gives_the_worked_example(
        codec: str, broker: str, prefix: str, tmp_path: Path, workers: list[Worker]) -> None:
    worker = Worker(broker, prefix, tmp_path, "w1", f"{prefix}cover2",
                    (*TEST_FLAGS, "--compression", codec)).start()
    workers.append(worker)
    await worker.healthy()
    async with Feed(Connection(broker, compression=codec), prefix) as feed:
        await send_all(feed, messages_with_losses(
            **AFFILIATES, groups={"A1": "A", "A2": "A"},
            resources={"skin_in_the_game": 15, "liquid_resources": []}))
        await feed.send("trades", b"not json", "A1")
        await feed.flush()

    def cover2() -> dict | None:
        status, document = worker.get("/cover2")
        ok = status == 200 and document["counts"]["trades"] == 5 and \
            document["scenarios"] == 3 and document["credit"]["prefunded"] == 155
        return document if ok else None

    credit = (await eventually(cover2, what=f"the {codec} feed applied"))["credit"]
    assert credit["cover2"] == pytest.approx(160, abs=MONEY_ATOL)
    assert [t["group"] for t in credit["top"]] == ["B", "C"]
    # What the worker writes with its own codec reads back.
    letters = await read_all(broker, f"{prefix}dead-letter", at_least=1)
    assert letters[0]["value"] == "not json"
    assert worker.alive()
