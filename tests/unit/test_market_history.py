"""A history of past business days (`cover2 simulate --start`): its calendar and event
times, and a market that moves: books that grow, and a breach day on which credit
cover-2 exceeds the prefunded resources for some hours and then recovers, as the core
itself computes it from the history's messages."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pytest

from risk.ccp import Ccp
from streams.codec import Rejection, decode
from streams.tools.bench_core import apply_batch, to_batch
from streams.tools.market import DEMO, FEED_TOPICS, Feed, Market, load_reference
from streams.tools.settings import ToolSettings
from streams.tools.simulate import history_start
from streams.tools.trading_days import (
    BOOK_AT,
    CALLS_MET_AT,
    DAILY_VOL,
    GAP_AT,
    OPENING_AT,
    REFERENCE_AT,
    SETTLEMENT_AT,
    TRADING_FROM,
    TRADING_TO,
    History,
    at,
    business_days,
)
from tests.tolerances import MONEY_ATOL

SEED = 1
DAYS, EVENTS_PER_DAY = 20, 2_000
SATURDAY = dt.date(2026, 1, 3)
STEP_S = 1800.0  # the core is evaluated every half hour of event time
HOUR = 3600.0

Decoded = list[tuple[str, dict[str, Any]]]  # (topic, value) in the order sent


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.build(DEMO, seed=SEED)


def history(market: Market, seed: int = SEED, days: int = DAYS,
            events_per_day: int = EVENTS_PER_DAY) -> History:
    return History(market, SATURDAY, days, events_per_day, seed)


@pytest.fixture(scope="module")
def sent(market: Market) -> tuple[History, list[tuple[dt.date, Decoded]]]:
    """The short history and each day's messages as the service's parser reads them."""
    h = history(market)
    days = []
    for day, messages in h.trading_days():
        decoded = []
        for topic, key, value in messages:
            message = decode(topic, key, value)
            assert not isinstance(message, Rejection), message
            decoded.append((topic, msgspec.json.decode(value)))
        days.append((day, decoded))
    return h, days


def test_business_days_skip_weekends_and_a_weekend_start_moves_to_monday() -> None:
    days = business_days(SATURDAY, 7)
    assert days[0] == dt.date(2026, 1, 5) and len(days) == 7 == len(set(days))
    assert all(day.weekday() < 5 for day in days)
    assert days[-1] == dt.date(2026, 1, 13)  # Monday to Friday, then Monday to Tuesday
    assert list(days) == sorted(days)


def test_events_trade_in_trading_hours_in_increasing_time(
        sent: tuple[History, list[tuple[dt.date, Decoded]]]) -> None:
    h, days = sent
    assert [day for day, _ in days] == list(h.days) == list(business_days(SATURDAY, DAYS))
    last: dict[str, float] = {}
    for d, (day, messages) in enumerate(days):
        feed = [(topic, value) for topic, value in messages if topic != "settlements"]
        opening = [(t, v) for t, v in feed if v["ts"] < at(day, TRADING_FROM)]
        trading = feed[len(opening):] if d == 0 else feed
        assert not opening or d == 0
        assert len(trading) >= EVENTS_PER_DAY
        assert all(at(day, TRADING_FROM) <= v["ts"] < at(day, TRADING_TO) for _, v in trading)
        for topic, value in messages:  # every topic's event times increase, day after day
            assert value["ts"] >= last.get(topic, 0.0)
            last[topic] = value["ts"]


def test_each_day_ends_with_one_settlement_of_everyone_at_17(
        sent: tuple[History, list[tuple[dt.date, Decoded]]]) -> None:
    for day, messages in sent[1]:
        settlements = [(i, v) for i, (t, v) in enumerate(messages) if t == "settlements"]
        assert settlements == [(len(messages) - 1, {"member": "*",
                                                     "ts": at(day, SETTLEMENT_AT)})]


def test_reference_data_and_opening_prices_come_before_the_first_event(
        market: Market, sent: tuple[History, list[tuple[dt.date, Decoded]]]) -> None:
    h, days = sent
    first_day, messages = days[0]
    assert h.reference_ts == at(first_day, REFERENCE_AT) == at(dt.date(2026, 1, 5), 7 * HOUR)
    opening = messages[:DEMO.instruments]
    assert [t for t, _ in opening] == ["prices"] * DEMO.instruments
    assert {v["instrument"]: v["price"] for _, v in opening} == dict(
        zip(market.instrument_ids, market.initial_price.tolist(), strict=True))
    assert {v["ts"] for _, v in opening} == {at(first_day, OPENING_AT)}
    book = [(t, v) for t, v in messages if v["ts"] == at(first_day, BOOK_AT)]
    assert {t for t, _ in book} == {"trades", "collateral"}
    assert {v["member"] for t, v in book if t == "collateral"} == set(market.member_ids)
    events = [v["ts"] for _, v in messages[DEMO.instruments + len(book):]]
    assert h.reference_ts < at(first_day, OPENING_AT) < at(first_day, BOOK_AT) < min(events)
    assert min(events) == at(first_day, TRADING_FROM)


def test_a_bad_start_date_or_a_history_not_over_yet_is_one_line_and_exit_code_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    over = at(dt.date(2026, 1, 6), SETTLEMENT_AT)  # Monday 5 and Tuesday 6 January
    assert history_start(ToolSettings(start=str(SATURDAY), days=2), now=over) == SATURDAY
    for settings, now, said in (
            (ToolSettings(start="2026-13-01"), over,
             "--start 2026-13-01 is not a date (YYYY-MM-DD)"),
            (ToolSettings(start=str(SATURDAY), days=3), over,
             "--start 2026-01-03 --days 3 ends on 2026-01-07, which is not over yet: a history "
             "is of past business days"),
            (ToolSettings(start=str(SATURDAY), days=2), over - 1.0,
             "--start 2026-01-03 --days 2 ends on 2026-01-06, which is not over yet: a history "
             "is of past business days")):
        with pytest.raises(SystemExit) as exit_:
            history_start(settings, now)
        assert exit_.value.code == 2
        assert capsys.readouterr().err == f"cover2 simulate: {said}\n"


def test_the_same_seed_gives_the_same_history(market: Market) -> None:
    def messages(seed: int) -> list[Any]:
        return list(history(market, seed, days=4, events_per_day=500).trading_days())

    assert messages(3) == messages(3)
    assert messages(4) != messages(3)


def test_the_breach_day_falls_inside_the_history(market: Market) -> None:
    assert history(market).breach == 8
    assert history(market, days=5).breach == 2
    assert history(market, days=3).breach_day == business_days(SATURDAY, 3)[1]
    assert history(market, days=2).breach_day is None


def test_volatility_moves_between_regimes(market: Market) -> None:
    vol = history(market, days=250).daily_vol
    assert set(vol.tolist()) == set(DAILY_VOL)
    assert 3 <= np.count_nonzero(np.diff(vol)) <= 60  # regimes last weeks, not days


def test_explicit_event_times_give_the_feed_of_the_rate(market: Market) -> None:
    start, rate, n = 1_767_600_000.0, 500.0, 9_000
    by_rate = Feed(market, seed=2, start_ts=start, rate=rate).encoded(n)
    by_time = Feed(market, seed=2).encoded_at(start + np.arange(n) / rate)
    assert by_time == by_rate


def test_an_opened_book_holds_the_targets(market: Market) -> None:
    feed = Feed(market, seed=2)
    feed.target = market.target_position // 3
    messages = feed.open_book(at(SATURDAY, BOOK_AT))
    value = market.target_position // 3 * (market.multiplier * market.initial_price)[market.book]
    np.testing.assert_allclose(feed.notional(), value, rtol=0, atol=MONEY_ATOL)
    held = np.zeros(market.book.shape)
    for topic, _, v in messages:
        if topic == "trades":
            m = market.member_ids.index(v["member"])
            slot = market.book[m].tolist().index(market.instrument_ids.index(v["instrument"]))
            held[m, slot] += v["quantity"]
            assert v["price"] == market.initial_price[market.instrument_ids.index(
                v["instrument"])]
    np.testing.assert_array_equal(held, market.target_position // 3)
    assert sorted(v["member"] for t, _, v in messages if t == "collateral") == sorted(
        market.member_ids)


@dataclass(frozen=True)
class Evaluation:
    """The core's credit figures at the end of a half hour of event time."""

    day: int
    ts: float
    headroom: float
    cover2: float


def evaluations(market: Market, days: list[tuple[dt.date, Decoded]]) -> Iterator[Evaluation]:
    """The history's messages through the core, in event-time order, evaluated every half
    hour in which something happened."""
    ccp = Ccp()
    load_reference(ccp, market)
    for d, (_, messages) in enumerate(days):
        in_order = sorted(messages, key=lambda message: message[1]["ts"])
        for slot, group in itertools.groupby(in_order, key=lambda m: m[1]["ts"] // STEP_S):
            batch = list(group)
            apply_batch(ccp, to_batch([(t, "", v) for t, v in batch if t in FEED_TOPICS[:3]]))
            for t, v in batch:
                if t == "settlements":
                    ccp.settle(None, v["ts"])
            end = (slot + 1) * STEP_S
            credit = ccp.publish(now=end)[0].credit
            yield Evaluation(d, end, credit.headroom, credit.cover2)


@pytest.fixture(scope="module")
def seen(market: Market, sent: tuple[History, list[tuple[dt.date, Decoded]]]) -> list[Evaluation]:
    return list(evaluations(market, sent[1]))


def test_the_breach_day_breaches_for_hours_and_recovers(
        sent: tuple[History, list[tuple[dt.date, Decoded]]], seen: list[Evaluation]) -> None:
    h = sent[0]
    assert h.breach is not None
    breach_day = h.days[h.breach]
    on_it = [e for e in seen if e.day == h.breach]
    breached = [e.ts for e in on_it if e.headroom < 0]
    assert len(breached) >= 4, "two hours or more"
    assert min(breached) == at(breach_day, GAP_AT) + STEP_S  # from the half hour of the gap
    met = at(breach_day, CALLS_MET_AT[-1])  # until the last calls are met
    assert max(breached) <= met
    assert all(e.headroom >= 0 for e in on_it if e.ts > met)
    assert all(e.headroom >= 0 for e in seen if e.day < h.breach)
    assert seen[-1].ts == at(h.days[-1], SETTLEMENT_AT) + STEP_S  # after the last settlement
    assert seen[-1].headroom >= 0


def test_cover2_grows_from_the_first_quarter_of_the_history_to_the_last(
        sent: tuple[History, list[tuple[dt.date, Decoded]]], seen: list[Evaluation]) -> None:
    h = sent[0]
    peaks = np.zeros(DAYS)
    for e in seen:
        peaks[e.day] = max(peaks[e.day], e.cover2)
    quarter = DAYS // 4
    assert h.breach is not None and quarter <= h.breach < DAYS - quarter
    assert peaks[-quarter:].mean() > 1.1 * peaks[:quarter].mean()
    assert h.book_scale[-1] > h.book_scale[0]
