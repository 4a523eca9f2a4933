"""`cover2 stress` rebuilds the state as of a time from the input topics, exactly, and
writes nothing to Kafka."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from risk.model import Scenario
from risk.plain import PlainCcp, plain_results
from streams import topics as t
from streams.kafka.clients import Connection, TopicPartition
from streams.tools.broker import free_port
from tests.integration.cluster import Feed, Spawn, eventually
from tests.integration.test_recovery import (
    applied,
    apply_plain,
    hot_stream,
    reference_data,
    send,
)
from tests.tolerances import MONEY_ATOL, MONEY_RTOL

pytestmark = pytest.mark.integration

EVENTS = 2_000
SPACING_S = 0.01  # event time between two messages of the stream


def stress(broker: str, prefix: str, tmp_path: Path, *flags: str) -> tuple[int, dict[str, Any],
                                                                            str]:
    """Run `cover2 stress`: (exit code, its JSON document, what it printed)."""
    out = tmp_path / f"stress-{time.monotonic_ns()}.json"
    done = subprocess.run([sys.executable, "-m", "streams.cli", "stress", "--broker",
                           f"kafka://{broker}", "--topic-prefix", prefix, "--json", str(out),
                           *flags], capture_output=True, text=True, timeout=300)
    document = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, document, done.stdout + done.stderr


async def written(broker: str, prefix: str) -> dict[str, int]:
    """How many messages each output topic holds."""
    consumer = Connection(broker).consumer()
    await consumer.start()
    try:
        names = {f"{prefix}{topic}": topic for topic in t.OUTPUTS}
        await consumer.topics()
        consumer.assign([TopicPartition(name, p) for name in names
                         for p in consumer.partitions_for_topic(name) or ()])
        counts = dict.fromkeys(t.OUTPUTS, 0)
        while batch := await consumer.getmany(timeout_ms=1000):
            for tp, records in batch.items():
                counts[names[tp.topic]] += len(records)
        return counts
    finally:
        await consumer.stop()


def timed(stream: list[tuple[str, str, dict[str, Any]]], start: float) -> None:
    """Event times from ``start`` on, ``SPACING_S`` apart (prices keep their lateness)."""
    for i, (_, _, value) in enumerate(stream):
        late = 1000.0 + i + 1 - value["ts"]  # hot_stream's clock, 0 or 30 behind
        value["ts"] = start + i * SPACING_S - late * SPACING_S


def assert_same(document: dict[str, Any], plain: PlainCcp) -> None:
    want = plain_results(plain)
    scale = max(1.0, float(abs(want.exposure_by_group_scenario).max()),
                float(abs(want.drain_by_group_scenario).max()))
    tolerance = MONEY_ATOL + MONEY_RTOL * scale
    credit, liquidity = document["credit"], document["liquidity"]
    assert credit["cover2"] == pytest.approx(want.credit.cover2, abs=tolerance)
    assert credit["headroom"] == pytest.approx(want.credit.headroom, abs=tolerance)
    assert liquidity["cover2"] == pytest.approx(want.liquidity.cover2, abs=tolerance)
    assert document["scenarios"] == len(want.scenarios)


async def test_stress_as_of_now_equals_the_worker_and_mid_stream_the_plain_model(
        spawn: Spawn, feed: Feed, broker: str, prefix: str, tmp_path: Path) -> None:
    rng = random.Random(3)
    worker = await spawn().healthy()
    messages, _ = reference_data(rng)
    await send(feed, messages)
    stream = hot_stream(rng, EVENTS)
    start = time.time() + 1.0
    timed(stream, start)
    # Everyone settled at the event time of message 1,500, sent after the whole stream.
    settled_at = stream[1_500][2]["ts"]
    await send(feed, stream)
    await send(feed, [("settlements", "*", {"member": "*", "ts": settled_at})])
    await eventually(lambda: applied(worker, stream), what="the stream applied")

    after_all = max(value["ts"] for _, _, value in stream) + 1.0
    before = await written(broker, prefix)
    code, document, said = stress(broker, prefix, tmp_path, "--as-of", repr(after_all))
    assert code == 0, said
    live = worker.get("/cover2")[1]
    assert document["credit"]["cover2"] == pytest.approx(live["credit"]["cover2"], abs=MONEY_ATOL)
    assert document["liquidity"]["cover2"] == pytest.approx(live["liquidity"]["cover2"],
                                                            abs=MONEY_ATOL)
    assert "credit cover-2" in said and "read to the end" in said

    half = EVENTS // 2
    as_of = stream[half][2]["ts"]
    _, mid = reference_data(random.Random(3))
    apply_plain(mid, [m for m in stream if m[2]["ts"] <= as_of])
    code, document, said = stress(broker, prefix, tmp_path, "--as-of", repr(as_of))
    assert code == 0, said
    assert_same(document, mid)

    # Just before the settlement and just after it: the plain model's figures each time,
    # and the settlement makes a difference.
    liquidity = []
    for as_of_settlement, settles in ((settled_at - SPACING_S / 2, False),
                                      (settled_at + SPACING_S / 2, True)):
        _, around = reference_data(random.Random(3))
        apply_plain(around, [m for m in stream if m[2]["ts"] <= as_of_settlement])
        if settles:
            around.settle(None, settled_at)
        code, document, said = stress(broker, prefix, tmp_path, "--as-of",
                                      repr(as_of_settlement))
        assert code == 0, said
        assert_same(document, around)
        liquidity.append(document["liquidity"]["cover2"])
    assert abs(liquidity[0] - liquidity[1]) > 1.0, liquidity

    # A supervisor's scenarios alone, on the same state.
    file = tmp_path / "supervisor.json"
    supervisor = [{"scenario": "SUP-1", "shocks": {"I0": -0.25, "I1": 0.1, "NOBODY": -0.5}},
                  {"scenario": "SUP-2", "shocks": {}, "default_shock": -0.15}]
    file.write_text(json.dumps(supervisor))
    # Added to the CCP's own.
    code, document, said = stress(broker, prefix, tmp_path, "--as-of", repr(as_of),
                                  "--scenarios", str(file))
    assert code == 0, said
    _, added = reference_data(random.Random(3))
    apply_plain(added, [m for m in stream if m[2]["ts"] <= as_of])
    for s in supervisor:
        added.upsert_scenario(Scenario(s["scenario"], s["shocks"], s.get("default_shock", 0.0)))
    assert_same(document, added)

    code, document, said = stress(broker, prefix, tmp_path, "--as-of", repr(as_of),
                                  "--scenarios", str(file), "--replace")
    assert code == 0, said
    for name in list(mid.scenarios):
        mid.remove_scenario(name)
    for s in supervisor:
        mid.upsert_scenario(Scenario(s["scenario"], s["shocks"], s.get("default_shock", 0.0)))
    assert_same(document, mid)
    assert {document["credit"]["scenario"], document["liquidity"]["scenario"]} <= {"SUP-1",
                                                                                   "SUP-2"}
    # Nothing was written by the stress tests: the outputs hold what the worker wrote.
    assert await written(broker, prefix) == before


async def test_bad_input_is_one_line_and_writes_nothing(feed: Feed, broker: str, prefix: str,
                                                        tmp_path: Path) -> None:
    await feed.send("trades", {"trade_id": "t1", "member": "M1", "instrument": "X",
                               "quantity": 1, "price": 10.0, "ts": time.time()}, "M1")
    await feed.flush()
    bad = tmp_path / "bad.json"
    for content, says in (("{not json", "scenario file"),
                          ('[{"scenario": "S", "shocks": {"X": -10}}]', "COVER2_SHOCK_MIN")):
        bad.write_text(content)
        code, _, said = stress(broker, prefix, tmp_path, "--scenarios", str(bad))
        assert code == 2 and says in said and "Traceback" not in said, said
    code, _, said = stress(broker, prefix, tmp_path, "--as-of", "2001-01-01T00:00:00Z")
    assert code == 2 and "no input message has an event time" in said, said
    code, _, said = stress(f"127.0.0.1:{free_port()}", prefix, tmp_path)
    assert code == 2 and "no Kafka broker answers" in said, said
    code, _, said = stress(broker, prefix, tmp_path, "--as-of", "yesterday")
    assert code == 2 and "ISO 8601" in said, said
    assert await written(broker, prefix) == {topic: 0 for topic in t.OUTPUTS}
