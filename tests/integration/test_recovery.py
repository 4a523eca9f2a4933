"""A long random stream against the plain reference; kill -9 and an upstream replay mid-stream."""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

from risk.model import Instrument, LiquidityType, LiquidResource, Member, Resources, Scenario
from risk.plain import (
    PlainCcp,
    plain_concentration,
    plain_cover2_waterfall,
    plain_defaults_to_exhaustion,
    plain_results,
)
from tests.integration.cluster import Feed, Spawn, Worker, eventually
from tests.tolerances import MONEY_ATOL, MONEY_RTOL, SHARE_ATOL

pytestmark = pytest.mark.integration

MEMBERS = [f"M{i}" for i in range(8)]
GROUP_OF = {"M0": "G0", "M1": "G0", "M2": "G1", "M3": "G1", "M4": "G2"}
INSTRUMENTS = [f"I{i}" for i in range(6)]


def reference_data(rng: random.Random) -> tuple[list[tuple[str, str, Any]], PlainCcp]:
    """Members, instruments, scenarios and resources, as messages and in the reference."""
    plain = PlainCcp()
    messages: list[tuple[str, str, Any]] = []
    for m in MEMBERS[:6]:  # M6, M7 stay unknown: their own groups
        df = rng.choice([0.0, 1e4, 5e4])
        messages.append(("members", m, {"member": m, "group": GROUP_OF.get(m),
                                        "default_fund": df, "settlement_obligation": 2e3}))
        plain.upsert_member(Member(m, GROUP_OF.get(m), df, 2e3))
    for j in INSTRUMENTS[:4]:
        messages.append(("instruments", j, {"instrument": j, "multiplier": 10}))
        plain.upsert_instrument(Instrument(j, 10.0))
    for s in range(5):
        shocks = {j: round(rng.uniform(-0.3, 0.3), 4) for j in INSTRUMENTS[:5]}
        default = round(rng.uniform(-0.1, 0.1), 4)
        messages.append(("scenarios", f"S{s}", {"scenario": f"S{s}", "shocks": shocks,
                                                "default_shock": default}))
        plain.upsert_scenario(Scenario(f"S{s}", shocks, default))
    lines = [{"name": "cb", "type": "central_bank_cash", "amount": 5e5},
             {"name": "line", "type": "committed_credit_line", "amount": 1e5, "provider": "M2"}]
    messages.append(("resources", "r", {"skin_in_the_game": 2e4, "other_prefunded": 1e4,
                                        "liquid_resources": lines}))
    plain.set_resources(Resources(2e4, 1e4, tuple(
        LiquidResource(x["name"], LiquidityType(x["type"]), x["amount"], x.get("provider"))
        for x in lines)))
    return messages, plain


def hot_stream(rng: random.Random, n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Trades, prices (some out of order) and collateral over a small book."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    clock = 1_000.0
    for i in range(n):
        clock += 1
        kind = rng.random()
        if kind < 0.6:
            m, j = rng.choice(MEMBERS), rng.choice(INSTRUMENTS)
            out.append(("trades", m, {"trade_id": f"T{i}", "member": m, "instrument": j,
                                      "quantity": rng.choice([-30, -5, -1, 1, 4, 25]),
                                      "price": round(rng.uniform(50, 150), 2), "ts": clock}))
        elif kind < 0.9:
            j = rng.choice(INSTRUMENTS)
            out.append(("prices", j, {"instrument": j, "price": round(rng.uniform(50, 150), 2),
                                      "ts": clock - rng.choice([0, 0, 0, 30])}))
        else:
            m = rng.choice(MEMBERS)
            out.append(("collateral", m, {"member": m, "initial_margin": rng.uniform(0, 2e4),
                                          "cash": rng.uniform(0, 5e3), "ts": clock}))
    return out


def apply_plain(plain: PlainCcp, stream: list[tuple[str, str, dict[str, Any]]]) -> None:
    for topic, _, v in stream:
        if topic == "trades":
            plain.trade(v["member"], v["instrument"], v["quantity"], v["price"], v["ts"])
        elif topic == "prices":
            plain.price(v["instrument"], v["price"], v["ts"])
        else:
            plain.post_collateral(v["member"], v["initial_margin"], v["cash"], v["ts"])


async def send(feed: Feed, messages: list[tuple[str, str, Any]]) -> None:
    for topic, key, value in messages:
        await feed.send(topic, value, key)
    await feed.flush()


def applied(worker: Worker, stream: list[tuple[str, str, dict[str, Any]]]) -> bool:
    status, document = worker.get("/cover2")
    if status != 200:
        return False
    counts = document["counts"]
    trades = sum(1 for topic, _, _ in stream if topic == "trades")
    prices = sum(1 for topic, _, _ in stream if topic == "prices")
    collateral = sum(1 for topic, _, _ in stream if topic == "collateral")
    return (counts["trades"] == trades and counts["prices"] + counts["stale"] >= prices
            and counts["collateral"] + counts["stale"] >= collateral
            and counts["prices"] + counts["collateral"] + counts["stale"] == prices + collateral)


def assert_matches_plain(worker: Worker, plain: PlainCcp) -> None:
    want = plain_results(plain)
    document = worker.get("/cover2")[1]
    scale = max(1.0, float(abs(want.exposure_by_group_scenario).max()),
                float(abs(want.drain_by_group_scenario).max()))
    tolerance = MONEY_ATOL + MONEY_RTOL * scale
    credit, liquidity = document["credit"], document["liquidity"]
    assert credit["cover2"] == pytest.approx(want.credit.cover2, abs=tolerance)
    assert credit["cover1"] == pytest.approx(want.credit.cover.cover1, abs=tolerance)
    assert credit["headroom"] == pytest.approx(want.credit.headroom, abs=tolerance)
    assert liquidity["cover2"] == pytest.approx(want.liquidity.cover2, abs=tolerance)
    assert liquidity["headroom"] == pytest.approx(want.liquidity.headroom, abs=tolerance)
    # The stress-testing desk: exact across workers too (group totals and reference data).
    concentration = plain_concentration(want.exposure_by_group_scenario, want.scenarios,
                                        want.credit.cover.scenario, want.credit.cover2)
    assert credit["concentration"]["total"] == pytest.approx(concentration.total,
                                                             abs=tolerance)
    if concentration.top2_share is not None:
        assert credit["concentration"]["top2_share"] == pytest.approx(
            concentration.top2_share, abs=SHARE_ATOL)
    defaults = plain_defaults_to_exhaustion(want.exposure_by_group_scenario, want.groups,
                                            want.scenarios, want.credit.prefunded)
    got_defaults = credit["reverse_stress"]["defaults_to_exhaustion"]
    assert (got_defaults and got_defaults["groups"]) == (defaults and defaults.groups)
    layers = plain_cover2_waterfall(want, want.credit.default_fund_by_group,
                                    want.credit.skin_in_the_game, want.credit.other_prefunded,
                                    want.credit.default_fund)
    assert [layer["used"] for layer in credit["waterfall"]] == pytest.approx(
        [layer.used for layer in layers], abs=tolerance)
    for g, group in enumerate(want.groups):
        got = worker.get(f"/groups/{group}")[1]
        for s, scenario in enumerate(want.scenarios):
            assert got["exposure"][scenario] == pytest.approx(
                want.exposure_by_group_scenario[g, s], abs=tolerance)
            assert got["drain"][scenario] == pytest.approx(
                want.drain_by_group_scenario[g, s], abs=tolerance)


async def worker_with_reference_data(spawn: Spawn, feed: Feed, rng: random.Random,
                                     *flags: str) -> tuple[Worker, PlainCcp]:
    """A healthy worker that has applied the reference data, and the reference with it."""
    worker = await spawn("w1", *flags).healthy()
    messages, plain = reference_data(rng)
    await send(feed, messages)
    await eventually(lambda: worker.get("/cover2")[1]["scenarios"] == 5, what="scenarios")
    return worker, plain


async def test_a_long_random_stream_equals_the_plain_recompute(spawn: Spawn, feed: Feed) -> None:
    rng = random.Random(7)
    worker, plain = await worker_with_reference_data(spawn, feed, rng)
    stream = hot_stream(rng, 3_000)
    await send(feed, stream)
    apply_plain(plain, stream)
    await eventually(lambda: applied(worker, stream), what="the whole stream applied")
    assert_matches_plain(worker, plain)


def settlement(member: str, ts: float) -> tuple[str, str, dict[str, Any]]:
    return ("settlements", member, {"member": member, "ts": ts})


async def test_kill_9_and_an_upstream_replay_change_nothing(spawn: Spawn, feed: Feed) -> None:
    """Settlements in the middle of the stream, each sent out of step with the trades and
    prices around it, then kill -9 and a replay that interleaves them differently."""
    rng = random.Random(11)
    worker, plain = await worker_with_reference_data(spawn, feed, rng)
    stream = hot_stream(rng, 4_000)  # event times 1,001 to 5,000
    first, second = stream[:2_500], stream[2_500:]
    # M2 through 4,600, sent before the events after 3,500; everyone through 2,200 and M5
    # through 3,000, sent after events up to 3,500.
    await send(feed, [settlement("M2", 4_600.0)])
    await send(feed, first)
    await send(feed, [settlement("*", 2_200.0), settlement("M5", 3_000.0)])
    await eventually(lambda: worker.get("/cover2")[1]["counts"]["trades"] > 1_000,
                     what="part of the stream applied")
    worker.kill()  # mid-stream: some of the first part is applied, some may not be

    await send(feed, second)
    worker.start()
    await worker.healthy()
    await send(feed, [m for m in stream if m[0] == "trades"])  # upstream re-sends every trade
    apply_plain(plain, stream)
    for member, ts in (("M2", 4_600.0), (None, 2_200.0), ("M5", 3_000.0)):
        plain.settle(member, ts)

    def settled() -> bool:
        return worker.sample('ccp_events_total{outcome="applied",topic="settlements"}') == 3
    await eventually(lambda: applied(worker, stream) and settled(),
                     what="the whole stream applied once, and the settlements")
    assert_matches_plain(worker, plain)


DAY = 86_400.0
MIDNIGHT = 20_000 * DAY  # 2024-10-04, a Friday: the days below are its and the next two


def trading(rng: random.Random, day: int, first_hour: float, hours: float, n: int,
            first_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    """``n`` trades and prices of every member, evenly over the hours of ``day``."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        ts = MIDNIGHT + day * DAY + (first_hour + hours * i / n) * 3_600
        m, j = MEMBERS[i % len(MEMBERS)], rng.choice(INSTRUMENTS)
        out.append(("trades", m, {"trade_id": f"T{first_id + i}", "member": m,
                                  "instrument": j, "quantity": rng.choice([-7, -1, 2, 9]),
                                  "price": round(rng.uniform(50, 150), 2), "ts": ts}))
        if i % 3 == 0:
            out.append(("prices", j, {"instrument": j, "price": round(rng.uniform(50, 150), 2),
                                      "ts": ts}))
    return out


def metric(worker: Worker, series: str) -> float:
    """A sample of ``/metrics``, -inf while it is absent."""
    value = worker.sample(series)
    return -math.inf if value is None else value


async def settle_and_checkpoint(worker: Worker, feed: Feed, ts: float) -> None:
    """Settle everyone at ``ts`` once the worker holds everything before it, and wait for
    a checkpoint that includes the settlement (a replay does not cross it)."""
    await send(feed, [("settlements", "*", {"member": "*", "ts": ts})])
    await eventually(lambda: metric(worker, 'ccp_last_event_timestamp_seconds{topic='
                                            '"settlements"}') >= ts, what="the settlement")
    after = time.time()
    await eventually(lambda: metric(worker, "ccp_checkpoint_timestamp_seconds") > after,
                     what="a checkpoint after the settlement")


def trades_of(stream: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, Any]]:
    return [m for m in stream if m[0] == "trades"]


async def test_days_with_settlements_and_the_dedupe_window_survive_kill_9(
        spawn: Spawn, feed: Feed) -> None:
    """Three days with a one-day window: re-sends within it are duplicates, older ones are
    refused, day 1 is forgotten once day 3 begins, and kill -9 in the middle of day 2
    and again after the expiry changes none of it."""
    rng = random.Random(23)
    worker, plain = await worker_with_reference_data(spawn, feed, rng, "--dedupe-window", "1")
    day1 = trading(rng, 0, 9.0, 7.5, 600, 0)  # 09:00 to 16:30
    day2 = trading(rng, 1, 9.0, 3.0, 900, 10_000)  # 09:00 to 12:00
    day3 = trading(rng, 2, 9.0, 1.0, 300, 20_000)  # 09:00 to 10:00
    early1, late1 = trades_of(day1)[:8], trades_of(day1)[-8:]  # about 09:00 and 16:25
    late2 = trades_of(day2)[-8:]  # about 11:58

    await send(feed, day1)
    await eventually(lambda: applied(worker, day1), what="day 1")
    await settle_and_checkpoint(worker, feed, MIDNIGHT + 17 * 3_600)
    apply_plain(plain, day1)
    plain.settle(None, MIDNIGHT + 17 * 3_600)

    half = len(day2) // 2
    await send(feed, day2[:half])
    await eventually(lambda: worker.get("/cover2")[1]["counts"]["trades"] > 700,
                     what="part of day 2 applied")
    worker.kill()  # mid-day: part of day 2 is applied, part is not
    await send(feed, day2[half:])
    worker.start()
    await worker.healthy()
    # Each partition's clock is now about day 2 12:00: day 1's 09:00 is more than a day
    # behind it (refused), day 1's 16:25 is not (duplicates); every day-2 trade repeats.
    await send(feed, early1 + late1 + trades_of(day2))
    apply_plain(plain, day2)
    sent = day1 + day2
    await eventually(lambda: worker.get("/cover2")[1]["counts"]["rejected"] == len(early1)
                     and applied(worker, sent), what="day 2, its re-sends refused or repeated")

    await send(feed, day3)
    apply_plain(plain, day3)
    sent += day3
    await eventually(lambda: applied(worker, sent), what="day 3")
    # Day 1 is wholly more than a day behind every clock (about day 3 10:00): forgotten,
    # so its re-sends are now refused; day 2's 11:58 is still remembered.
    remembered = len(trades_of(day2)) + len(trades_of(day3))
    await eventually(lambda: metric(worker, "ccp_dedupe_remembered_trades") == remembered,
                     what="day 1 forgotten")
    worker.kill()
    worker.start()
    await worker.healthy()
    await send(feed, late1 + late2)
    duplicates = len(late1) + len(trades_of(day2)) + len(late2)
    rejected = len(early1) + len(late1)

    def counted() -> bool:
        counts = worker.get("/cover2")[1]["counts"]
        return (counts["trades"], counts["duplicates"], counts["rejected"]) == \
            (len(trades_of(sent)), duplicates, rejected)
    await eventually(counted, what="every trade applied once, the late ones refused")
    assert metric(worker, "ccp_dedupe_remembered_trades") == remembered
    assert_matches_plain(worker, plain)


async def test_a_worker_rebuilding_days_from_the_topics_places_every_settlement(
        spawn: Spawn, feed: Feed) -> None:
    """Three days of trades and prices, everyone settled at 17:00 on the first two, all on
    the topics before a worker with a one-day settlement window starts. Read by arrival,
    the first day's settlement would be older than the window behind the prices of the
    third; the worker reads the settlements first, so it refuses none, and it ends equal
    to the plain model."""
    rng = random.Random(29)
    messages, plain = reference_data(rng)
    await send(feed, messages)
    sent: list[tuple[str, str, dict[str, Any]]] = []
    for day in range(3):
        trades = trading(rng, day, 9.0, 7.5, 300, day * 10_000)
        await send(feed, trades)
        apply_plain(plain, trades)
        sent += trades
        if day < 2:
            await send(feed, [settlement("*", MIDNIGHT + day * DAY + 17 * 3_600)])
            plain.settle(None, MIDNIGHT + day * DAY + 17 * 3_600)
    worker = await spawn("w1", "--settlement-window", "1").healthy()

    def settled() -> bool:
        return worker.sample('ccp_events_total{outcome="applied",topic="settlements"}') == 2
    await eventually(lambda: applied(worker, sent) and settled(),
                     what="three days applied and both settlements placed")
    assert worker.get("/cover2")[1]["counts"]["rejected"] == 0
    assert_matches_plain(worker, plain)


