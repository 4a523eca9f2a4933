"""The synthetic CCP market: determinism, realism and the contract's message shapes."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import MESSAGE_TYPES, Rejection, decode, encode
from streams.tools.market import (
    BENCH_MIX,
    DEMO,
    FEED_TOPICS,
    LARGE,
    LIQUID_TYPES,
    SCALES,
    XL,
    Feed,
    Market,
    MarketScale,
)
from tests.tolerances import TIME_ATOL

MIX_TOLERANCE = 0.01  # on shares of 100k events: about three standard deviations
EMIR_LINE_CAP = 0.25  # EMIR Art. 44: one group provides at most a quarter of credit lines
SHARE_ATOL = 1e-9
START_TS = 1_763_712_000.0

def decoded(topic: str, value: dict[str, Any]) -> Any:
    """The message as the service's parser reads it, from the bytes a producer would send;
    it must carry no field outside the contract."""
    message = decode(topic, None, encode(value))
    assert not isinstance(message, Rejection), message
    assert set(value) <= {f.name for f in msgspec.structs.fields(MESSAGE_TYPES[topic])}
    return message


@pytest.fixture(scope="module")
def demo() -> Market:
    return Market.build(DEMO, seed=11)


@pytest.fixture(scope="module")
def large() -> Market:
    return Market.build(LARGE, seed=11)


def test_scale_presets_are_the_benchmark_scales() -> None:
    assert SCALES == {"demo": DEMO, "large": LARGE, "xl": XL}
    assert (LARGE.members, LARGE.groups, LARGE.instruments, LARGE.scenarios) == (
        300, 150, 5000, 1000)
    with pytest.raises(ValueError):
        MarketScale(members=3, groups=4, instruments=1, scenarios=1)


def test_the_same_seed_builds_the_same_market() -> None:
    a, b = Market.build(DEMO, seed=5), Market.build(DEMO, seed=5)
    assert a.reference_messages() == b.reference_messages()
    np.testing.assert_array_equal(a.target_position, b.target_position)
    assert Market.build(DEMO, seed=6).reference_messages() != a.reference_messages()


def test_the_same_seed_and_calls_give_the_same_feed(demo: Market) -> None:
    one, two = Feed(demo, seed=1, start_ts=START_TS), Feed(demo, seed=1, start_ts=START_TS)
    assert one.encoded(10_000) == two.encoded(10_000)
    assert one.events(5_000) == two.events(5_000)
    assert Feed(demo, seed=2).encoded(1_000) != Feed(demo, seed=1).encoded(1_000)


def test_values_and_bytes_are_the_same_events(demo: Market) -> None:
    as_values = Feed(demo, seed=3, start_ts=START_TS, settle_every=50).events(9_000)
    as_bytes = Feed(demo, seed=3, start_ts=START_TS, settle_every=50).encoded(9_000)
    for topic in FEED_TOPICS:
        expected = [(k.encode(), v) for t, k, v in as_values if t == topic]
        assert [(k, msgspec.json.decode(v)) for k, v in as_bytes[topic]] == expected


def test_shapes_and_ranges(large: Market) -> None:
    n_m, n_i, n_s = LARGE.members, LARGE.instruments, LARGE.scenarios
    assert large.shocks.shape == (n_s, n_i) and large.shocks.dtype == np.float64
    assert large.default_shock.shape == (n_s,)
    assert large.default_fund.shape == large.settlement_obligation.shape == (n_m,)
    assert large.book.shape == large.target_position.shape
    assert len(set(large.member_ids)) == n_m and large.member_ids[0] == "M0001"
    assert large.instrument_ids[0] == "I00001" and large.scenario_ids[-1] == "S1000"
    assert set(large.group_ids) == {f"G{g:03d}" for g in range(1, LARGE.groups + 1)}
    assert set(np.unique(large.multiplier)) <= {1.0, 10.0, 50.0, 100.0, 1000.0}
    assert large.initial_price.min() >= 5.0 and large.initial_price.max() <= 5000.0
    assert (large.default_fund > 0).all() and (large.settlement_obligation > 0).all()
    assert (large.shocks > -1.0).all()
    assert large.skin_in_the_game > 0 and large.other_prefunded > 0


def test_scenarios_look_historical(large: Market) -> None:
    typical = np.median(np.abs(large.shocks))
    assert 0.005 < typical < 0.05  # a few percent
    worst_market = large.default_shock.min()
    assert -0.30 <= worst_market <= -0.12  # crash days
    # Common factors: instruments move together across scenarios.
    corr = np.asarray(np.corrcoef(large.shocks[:, :50].T))
    assert np.median(corr[np.triu_indices(50, 1)]) > 0.3
    # Fat tails: far more 4-sigma days than a normal distribution gives.
    z = (large.default_shock - large.default_shock.mean()) / large.default_shock.std()
    assert (np.abs(z) > 4).mean() > 1e-3


def test_group_sizes_are_zipf_like(demo: Market, large: Market) -> None:
    for market, biggest in ((demo, 3), (large, 10)):
        sizes = np.bincount(market.group_of_member, minlength=market.scale.groups)
        assert sizes.min() >= 1 and sizes.sum() == market.scale.members
        assert sizes.max() >= biggest
        assert (sizes == 1).sum() >= market.scale.groups // 3


def test_every_member_belongs_to_exactly_one_group(large: Market) -> None:
    members = [v for t, _, v in large.reference_messages() if t == "members"]
    assert [m["member"] for m in members] == list(large.member_ids)
    groups = {m["member"]: m["group"] for m in members}
    assert len(groups) == LARGE.members and set(groups.values()) == set(large.group_ids)


def test_bigger_groups_contribute_more(large: Market) -> None:
    sizes = np.bincount(large.group_of_member)[large.group_of_member]
    assert np.median(large.default_fund[sizes >= 5]) > 2 * np.median(large.default_fund[sizes == 1])


def test_resources_cover_every_type(large: Market) -> None:
    resources = large.liquid_resources
    assert {r.type for r in resources} == set(LIQUID_TYPES)
    provided = [r for r in resources if r.provider is not None]
    assert [r.type for r in provided] == ["committed_credit_line"]
    sizes = np.bincount(large.group_of_member)
    provider_group = large.group_of_member[large.member_ids.index(provided[0].provider)]
    assert sizes[provider_group] == sizes.max()
    lines = sum(r.amount for r in resources if r.type == "committed_credit_line")
    assert provided[0].amount <= EMIR_LINE_CAP * lines + SHARE_ATOL * lines


def test_resources_are_of_the_order_of_cover2(large: Market) -> None:
    prefunded = large.default_fund.sum() + large.skin_in_the_game + large.other_prefunded
    assert 1.0 < prefunded / large.reference_cover2 < 2.0
    qualifying = sum(r.amount for r in large.liquid_resources
                     if r.type not in ("uncommitted_line", "other"))
    assert 1.0 < qualifying / large.reference_liquidity_cover2 < 2.0


def test_event_mix(large: Market) -> None:
    n = 100_000
    counts = {t: len(v) for t, v in Feed(large, seed=1).encoded(n).items()}
    for topic, share in zip(FEED_TOPICS, BENCH_MIX, strict=False):
        assert abs(counts[topic] / n - share) < MIX_TOLERANCE
    assert counts["settlements"] == 0


def test_settlements_when_asked(demo: Market) -> None:
    events = Feed(demo, settle_every=1_000).events(5_000)
    at = [i for i, (t, _, _) in enumerate(events) if t == "settlements"]
    assert at == [999, 1999, 2999, 3999, 4999]
    for i in at:
        assert events[i][1:] == ("*", {"member": "*", "ts": i / 1000.0})


def test_event_time_follows_the_rate(demo: Market) -> None:
    feed = Feed(demo, start_ts=START_TS, rate=2_000.0)
    ts = [v["ts"] for _, _, v in feed.events(3_000) + feed.events(3_000)]
    np.testing.assert_allclose(ts, START_TS + np.arange(6_000) / 2_000.0, rtol=0, atol=TIME_ATOL)


def test_prices_stay_positive_and_trades_trade_near_the_mark(large: Market) -> None:
    feed = Feed(large, seed=4)
    marks = dict(zip(large.instrument_ids, large.initial_price.tolist(), strict=True))
    for _ in range(4):
        for topic, key, value in feed.events(50_000):
            if topic == "prices":
                assert value["price"] > 0 and key == value["instrument"]
                marks[key] = value["price"]
            elif topic == "trades":
                assert abs(value["price"] / marks[value["instrument"]] - 1) < 0.01


def test_trade_ids_are_unique_per_member(demo: Market) -> None:
    feed = Feed(demo, seed=8)
    seen = Counter((v["member"], v["trade_id"]) for _ in range(3)
                   for t, _, v in feed.events(20_000) if t == "trades")
    assert seen and max(seen.values()) == 1


def test_each_member_trades_its_own_book(large: Market) -> None:
    traded: dict[str, set[str]] = defaultdict(set)
    for t, key, v in Feed(large, seed=2).events(100_000):
        if t == "trades":
            assert key == v["member"]
            traded[key].add(v["instrument"])
    width = large.book.shape[1]
    assert max(len(s) for s in traded.values()) <= width < LARGE.instruments // 10
    busiest = Counter(v["member"] for t, _, v in Feed(large, seed=2).events(50_000)
                      if t == "trades").most_common()
    assert busiest[0][1] > 10 * busiest[len(busiest) // 2][1]  # big members trade more


def test_margin_leaves_some_members_exposed(demo: Market) -> None:
    """An independent brute-force monitor: positions, marks, VM and IM from the feed."""
    m_of = {m: i for i, m in enumerate(demo.member_ids)}
    j_of = {j: i for i, j in enumerate(demo.instrument_ids)}
    positions = np.zeros((DEMO.members, DEMO.instruments))
    marks, vm, im = demo.initial_price.copy(), np.zeros(DEMO.members), np.zeros(DEMO.members)
    k = demo.multiplier
    prefunded = demo.default_fund.sum() + demo.skin_in_the_game + demo.other_prefunded
    ratios, exposed = [], []
    feed = Feed(demo, seed=0, settle_every=20_000)
    for _ in range(12):
        for topic, _, v in feed.events(5_000):
            if topic == "trades":
                a, j = m_of[v["member"]], j_of[v["instrument"]]
                vm[a] += v["quantity"] * k[j] * (marks[j] - v["price"])
                positions[a, j] += v["quantity"]
            elif topic == "prices":
                j = j_of[v["instrument"]]
                vm += positions[:, j] * k[j] * (v["price"] - marks[j])
                marks[j] = v["price"]
            elif topic == "collateral":
                im[m_of[v["member"]]] = v["initial_margin"]
                assert v["cash"] <= v["initial_margin"]
            else:
                vm[:] = 0.0
        loss = -(vm[:, None] + (positions * k * marks) @ demo.shocks.T)
        exposure = np.maximum(loss - im[:, None], 0.0)
        by_group = np.zeros((DEMO.groups, DEMO.scenarios))
        np.add.at(by_group, demo.group_of_member, exposure)
        cover2 = max(by_group[g1, s] + by_group[g2, s] for s in range(DEMO.scenarios)
                     for g1 in range(DEMO.groups) for g2 in range(g1 + 1, DEMO.groups))
        ratios.append(prefunded / cover2)
        exposed.append(int((exposure.max(axis=1) > 0).sum()))
    assert min(exposed) > 0 and max(exposed) < DEMO.members
    assert 1.0 < float(np.median(ratios)) < 3.0  # headroom positive, of the order of cover-2


def test_reference_messages_follow_the_contract(demo: Market) -> None:
    messages = demo.reference_messages()
    assert [t for t, _, _ in messages] == (
        ["instruments"] * DEMO.instruments + ["members"] * DEMO.members
        + ["scenarios"] * DEMO.scenarios + ["resources"])
    for topic, key, value in messages:
        msg = decoded(topic, value)
        assert key == getattr(msg, topic.rstrip("s"), "resources")
    scenario = decoded("scenarios", messages[DEMO.instruments + DEMO.members][2])
    np.testing.assert_array_equal(list(scenario.shocks.values()), demo.shocks[0])
    assert list(scenario.shocks) == list(demo.instrument_ids)


def test_feed_messages_follow_the_contract(demo: Market) -> None:
    feed = Feed(demo, start_ts=START_TS, settle_every=97)
    for topic, key, value in feed.opening_prices() + feed.events(20_000):
        msg = decoded(topic, value)
        assert key == getattr(msg, "instrument" if topic == "prices" else "member")


small_scales = st.builds(
    lambda members, groups, instruments, scenarios: MarketScale(
        members, min(groups, members), instruments, scenarios),
    st.integers(1, 30), st.integers(1, 30), st.integers(1, 40), st.integers(1, 20))


@settings(max_examples=40, deadline=None)
@given(scale=small_scales, seed=st.integers(0, 2**32 - 1), feed_seed=st.integers(0, 100))
def test_any_seed_and_small_scale_gives_valid_messages(
        scale: MarketScale, seed: int, feed_seed: int) -> None:
    market = Market.build(scale, seed)
    assert np.bincount(market.group_of_member, minlength=scale.groups).min() >= 1
    assert np.isfinite(market.shocks).all() and np.isfinite(market.default_fund).all()
    feed = Feed(market, feed_seed, start_ts=START_TS, settle_every=50)
    for topic, _, value in market.reference_messages() + feed.events(300):
        decoded(topic, value)
    assert sum(len(v) for v in feed.encoded(300).values()) == 300
