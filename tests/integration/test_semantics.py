"""The contract's semantics, each through the real broker and a real worker."""

from __future__ import annotations

import time

import pytest

from tests.integration.cluster import Feed, Spawn, Worker, eventually, read_all

pytestmark = pytest.mark.integration

SCENARIO = {"scenario": "down", "shocks": {}, "default_shock": -0.1}


def counts(worker: Worker) -> dict[str, int]:
    status, document = worker.get("/cover2")
    return document["counts"] if status == 200 else {}


def cover2(worker: Worker) -> dict:
    return worker.get("/cover2")[1]


def trade(trade_id: str, member: str = "M1", quantity: float = 10, price: float = 100,
          instrument: str = "X") -> dict:
    return {"trade_id": trade_id, "member": member, "instrument": instrument,
            "quantity": quantity, "price": price}


async def test_a_trade_is_applied_once_also_after_a_restart(spawn: Spawn, feed: Feed) -> None:
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    for _ in range(3):
        await feed.send("trades", trade("T1"), "M1")
    await feed.flush()
    await eventually(lambda: counts(worker).get("duplicates") == 2, what="two duplicates")
    assert counts(worker)["trades"] == 1
    # 10 contracts at 100, shocked by -10%: a stress loss of 100, no margin.
    await eventually(lambda: cover2(worker)["credit"]["cover2"] == pytest.approx(100),
                     what="the scenario applied")

    worker.kill()
    worker.start()
    await worker.healthy()
    await feed.send("trades", trade("T1"), "M1")
    await feed.send("trades", trade("T2", quantity=5), "M1")
    await feed.flush()
    await eventually(lambda: counts(worker).get("trades") == 2, what="T2 applied")
    await eventually(lambda: counts(worker).get("duplicates") == 3, what="T1 refused again")
    assert cover2(worker)["credit"]["cover2"] == pytest.approx(150)


async def test_stale_prices_change_nothing(spawn: Spawn, feed: Feed) -> None:
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    await feed.send("trades", trade("T1", price=100), "M1")
    await feed.send("prices", {"instrument": "X", "price": 200, "ts": 50}, "X")
    await feed.send("prices", {"instrument": "X", "price": 300, "ts": 40}, "X")
    await feed.flush()
    await eventually(lambda: counts(worker).get("stale") == 1, what="one stale price")
    await eventually(lambda: cover2(worker)["scenarios"] == 1, what="the scenario applied")
    # Marked at 200: stress loss 10 * 200 * 0.1 = 200, less the VM gain of 1,000.
    assert cover2(worker)["credit"]["cover2"] == 0.0
    await feed.send("collateral", {"member": "M1", "initial_margin": 0, "cash": 0, "ts": 1}, "M1")
    await feed.send("settlements", {"member": "M1"}, "M1")
    await feed.flush()
    await eventually(lambda: cover2(worker)["credit"]["cover2"] == pytest.approx(200),
                     what="VM settled, stress loss at the fresh price")


async def test_unknown_members_and_instruments_count_at_once(spawn: Spawn, feed: Feed) -> None:
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    await feed.send("trades", trade("T1", member="NEW", instrument="Y"), "NEW")
    await feed.flush()
    await eventually(lambda: cover2(worker)["credit"]["top"][:1]
                     == [{"group": "NEW", "exposure": 100.0}], what="NEW as its own group")
    assert worker.get("/groups/NEW")[1]["members"] == ["NEW"]

    await feed.send("instruments", {"instrument": "Y", "multiplier": 3}, "Y")
    await feed.send("members", {"member": "NEW", "group": "FAMILY", "default_fund": 40}, "NEW")
    await feed.flush()
    await eventually(lambda: cover2(worker)["credit"]["top"][0]
                     == {"group": "FAMILY", "exposure": 300.0}, what="reference data applied")
    assert cover2(worker)["credit"]["prefunded"] == 40.0


def groups(worker: Worker) -> list[str]:
    return worker.get("/groups")[1]["groups"]


async def test_a_member_removed_closed_out_and_settled_is_forgotten(
        spawn: Spawn, feed: Feed) -> None:
    """M1 of group G buys 10 at 100, then its data is removed: it keeps counting, as its
    own group. It sells the 10 and is settled after that: it is gone, no longer listed. A
    later trade brings it back as an unknown member."""
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    for member in ("M1", "M2"):
        await feed.send("members", {"member": member, "group": "G", "default_fund": 5}, member)
    await feed.send("trades", trade("T1"), "M1")
    await feed.send("members", None, "M1")  # the tombstone
    await feed.flush()
    await eventually(lambda: groups(worker) == ["G", "M1"]
                     and cover2(worker)["credit"]["top"][:1] == [{"group": "M1",
                                                                  "exposure": 100.0}],
                     what="M1 removed, counting as its own group")

    await feed.send("trades", trade("T2", quantity=-10), "M1")
    await feed.flush()
    await eventually(lambda: counts(worker).get("trades") == 2, what="M1 closed out")
    assert "M1" in groups(worker)  # flat, but not settled since its last trade
    await feed.send("settlements", {"member": "M1", "ts": time.time() + 1}, "M1")
    await feed.flush()
    await eventually(lambda: groups(worker) == ["G"], what="M1 forgotten")

    await feed.send("trades", trade("T3"), "M1")
    await feed.flush()
    await eventually(lambda: groups(worker) == ["G", "M1"]
                     and cover2(worker)["credit"]["top"][:1] == [{"group": "M1",
                                                                  "exposure": 100.0}],
                     what="M1 back as an unknown member")


BAD = [
    b"{not json",
    b"\xff\xfe\x00garbage",
    b'{"trade_id": "B1", "member": "M1", "instrument": "X", "quantity": 1}',
    b'{"trade_id": "B2", "member": "M1", "instrument": "X", "quantity": "1", "price": 1}',
    b'{"trade_id": "B3", "member": "M1", "instrument": "X", "quantity": NaN, "price": 1}',
    b'{"trade_id": "B4", "member": "M1", "instrument": "X", "quantity": 1e999, "price": 1}',
    b'{"trade_id": "B5", "member": "M1", "instrument": "X", "quantity": 1, "price": -5}',
    b'[1, 2, 3]',
]


async def test_bad_messages_go_to_the_dead_letter_topic_and_change_nothing(
        spawn: Spawn, feed: Feed, broker: str, prefix: str) -> None:
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    await feed.send("trades", trade("T1"), "M1")
    await feed.flush()
    await eventually(lambda: cover2(worker)["credit"]["cover2"] == pytest.approx(100),
                     what="the good trade")
    before = cover2(worker)

    for value in BAD:
        await feed.send("trades", value, "M1")
    await feed.send("prices", {"instrument": "X", "price": 0}, "X")
    await feed.send("collateral", {"member": "M1", "initial_margin": -1, "cash": 0}, "M1")
    await feed.send("members", {"member": "M1", "default_fund": "lots"}, "M1")
    await feed.send("resources", {"skin_in_the_game": 1, "liquid_resources": [
        {"name": "x", "type": "gold bars", "amount": 1}]}, "r")
    await feed.send("trades", trade("T2", quantity=5), "M1")
    await feed.flush()

    rejected = len(BAD) + 4
    await eventually(lambda: counts(worker).get("rejected") == rejected, what="all refused")
    await eventually(lambda: counts(worker).get("trades") == 2, what="the worker goes on")
    after = cover2(worker)
    assert after["credit"]["cover2"] == pytest.approx(150)  # T2 only on top of T1
    assert after["credit"]["prefunded"] == before["credit"]["prefunded"]

    letters = await read_all(broker, f"{prefix}dead-letter", rejected)
    assert {letter["topic"] for letter in letters} == {
        f"{prefix}{t}" for t in ("trades", "prices", "collateral", "members", "resources")}
    assert all(letter["error"] and isinstance(letter["offset"], int) for letter in letters)
    reasons = " ".join(letter["error"] for letter in letters)
    for fragment in ("malformed", "price", "initial_margin", "default_fund", "gold bars"):
        assert fragment in reasons
    _, metrics = worker.get("/metrics")
    assert f'ccp_events_total{{outcome="rejected",topic="trades"}} {len(BAD)}.0' in metrics


async def test_implausible_messages_go_to_the_dead_letter_topic_and_change_nothing(
        spawn: Spawn, feed: Feed, broker: str, prefix: str) -> None:
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    await feed.send("prices", {"instrument": "X", "price": 100.0, "ts": 1_000.0}, "X")
    await feed.send("trades", trade("T1"), "M1")
    await feed.flush()
    await eventually(lambda: cover2(worker)["credit"]["cover2"] == pytest.approx(100),
                     what="the good trade")
    now_ms = time.time() * 1000.0
    await feed.send("prices", {"instrument": "X", "price": 50.0, "ts": now_ms}, "X")
    await feed.send("scenarios", {"scenario": "crash", "shocks": {"X": -10.0}}, "crash")
    await feed.send("prices", {"instrument": "X", "price": 110.0, "ts": 2_000.0}, "X")
    await feed.flush()
    await eventually(lambda: counts(worker).get("rejected") == 2, what="both refused")
    # The later, correct price applies: the millisecond one left nothing behind.
    await eventually(lambda: counts(worker).get("prices") == 2, what="the correct price")
    after = cover2(worker)
    assert after["scenarios"] == 1
    # 10 contracts bought at 100, now 110: a loss of 110 under -10%, less the gain of 100.
    assert after["credit"]["cover2"] == pytest.approx(10)
    assert after["as_of"] < time.time() + 1
    letters = await read_all(broker, f"{prefix}dead-letter", 2)
    reasons = " ".join(letter["error"] for letter in letters)
    assert "not milliseconds" in reasons and "COVER2_SHOCK_MIN" in reasons
