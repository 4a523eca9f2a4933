"""A deterministic synthetic CCP: reference data, scenarios, resources and an event feed.

Pure: numpy, msgspec and the standard library; time comes in as a parameter.

>>> market = Market.build(DEMO, seed=7)
>>> len(market.member_ids), market.shocks.shape
(40, (100, 200))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from risk.ccp import Ccp
from risk.cover import largest_rows
from risk.model import Instrument, LiquidityType, LiquidResource, Member, Resources, Scenario
from streams import topics

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Value = dict[str, Any]
Message = tuple[str, str, Value]  # (topic without prefix, key, value)
Keyed = list[tuple[str, Value]]


@dataclass(frozen=True)
class MarketScale:
    """How big the synthetic CCP is."""

    members: int
    groups: int
    instruments: int
    scenarios: int

    def __post_init__(self) -> None:
        sizes = (self.members, self.groups, self.instruments, self.scenarios)
        if min(sizes) < 1 or self.groups > self.members:
            raise ValueError(f"invalid market scale {self}")


DEMO = MarketScale(members=40, groups=24, instruments=200, scenarios=100)
LARGE = MarketScale(members=300, groups=150, instruments=5000, scenarios=1000)
XL = MarketScale(members=1000, groups=500, instruments=20000, scenarios=2000)
SCALES = {"demo": DEMO, "large": LARGE, "xl": XL}

FEED_TOPICS = (topics.TRADES, topics.PRICES, topics.COLLATERAL, topics.SETTLEMENTS)
REFERENCE_TOPICS = (topics.INSTRUMENTS, topics.MEMBERS, topics.SCENARIOS, topics.RESOURCES)
BENCH_MIX = (0.70, 0.25, 0.05)  # trades, prices, collateral
LIQUID_TYPES = tuple(t.value for t in LiquidityType)
MULTIPLIERS = (1.0, 10.0, 50.0, 100.0, 1000.0)
# Gives a large CCP a cover-2 in the billions, as in public quantitative disclosures.
GROSS_NOTIONAL_UNIT = 2e9
# Resources over the reference cover-2 of the target books: headroom positive but of
# the same order as cover-2, so that a pushed feed breaches it and alerts fire.
CREDIT_COVER, LIQUIDITY_COVER = 1.35, 1.2
# Intraday-sized moves: about 1% an hour per instrument at the demo rate.
PRICE_TICK, PRICE_STEP_VOL, TRADE_SLIPPAGE = 1e-4, 1.5e-4, 1e-4
TRADE_PULL = 0.5  # share of its gap to target that a slot closes in each chunk it trades
# Median IM over the worst stress loss of the target book: below one, as stress scenarios
# go beyond the margin's confidence level, so most members have some SLOM in a crash.
MARGIN_COVER = 0.85
# Books move towards their targets once per chunk they trade in: a chunk small enough to
# converge quickly, big enough for numpy to pay off.
CHUNK = 4096
_ENCODER = msgspec.json.Encoder()


def _ids(prefix: str, n: int, width: int) -> tuple[str, ...]:
    width = max(width, len(str(n)))
    return tuple(f"{prefix}{i:0{width}d}" for i in range(1, n + 1))


def _cover2(by_group_scenario: F64) -> float:
    """Same-scenario sum of the two largest groups, worst scenario: (n_groups, n_scenarios)."""
    return float(largest_rows(by_group_scenario, 2).sum(axis=0).max())


def stress_loss(notional: F64, book: I64, shocks_by_instrument: F64) -> F64:
    """Each member's loss under every scenario (n_members, n_scenarios) from its signed
    notional (n_members, width) in the instruments of ``book``; ``shocks_by_instrument``
    is (n_instruments, n_scenarios)."""
    return -np.stack([notional[m] @ shocks_by_instrument[book[m]] for m in range(book.shape[0])])


def _by_group(by_member: F64, group_of_member: I64, n_groups: int) -> F64:
    out = np.zeros((n_groups, by_member.shape[1]))
    np.add.at(out, group_of_member, by_member)
    return out


def _scenarios(rng: np.random.Generator, n_s: int, n_i: int) -> tuple[F64, F64, list[str]]:
    """Fat-tailed market, sector and rates factors with per-instrument loadings.

    Returns shocks (n_s, n_i), default shocks (n_s,): the market move, and descriptions.
    """
    n_sectors = 11
    sector = rng.integers(0, n_sectors, n_i)
    beta, rates_beta = rng.normal(1.0, 0.35, n_i), rng.normal(0.0, 0.5, n_i)
    idio_vol = rng.uniform(0.004, 0.02, n_i)
    market = np.clip(0.012 * rng.standard_t(3, n_s), -0.12, 0.12)
    sectors = 0.008 * rng.standard_t(4, (n_s, n_sectors))
    rates = 0.006 * rng.standard_t(4, n_s)
    # Idiosyncratic noise is Gaussian within a day but its scale is fat-tailed across
    # days (a t mixture): volatile days are volatile for every name, and it is cheap.
    regime = np.sqrt(4.0 / rng.chisquare(4.0, n_s))
    crashes = rng.choice(n_s, max(1, n_s // 40), replace=False)
    market[crashes] = -rng.uniform(0.12, 0.30, crashes.size)
    market[crashes[1::4]] *= -0.6  # some rallies, so that short books are stressed too
    regime[crashes] = 2.0
    market = market.round(6)
    shocks = np.empty((n_s, n_i))
    for lo in range(0, n_s, 256):  # blocks bound the temporaries at the xl scale
        s = slice(lo, min(lo + 256, n_s))
        block = idio_vol * regime[s, None] * rng.standard_normal((s.stop - lo, n_i))
        block += market[s, None] * beta + sectors[s][:, sector] + rates[s, None] * rates_beta
        shocks[s] = np.clip(block, -0.9, 1.0).round(6)
    days = rng.permutation(max(n_s, 20 * 365))[:n_s].tolist()
    last, crash = dt.date(2024, 12, 31), set(crashes.tolist())
    descriptions = [
        f"hypothetical {'crash' if m < 0 else 'rally'}: market {m:+.1%}" if s in crash
        else f"historical {last - dt.timedelta(days=d)}: market {m:+.1%}"
        for s, (m, d) in enumerate(zip(market.tolist(), days, strict=True))
    ]
    return shocks, market, descriptions


def _liquidity_plan(provider: str, line_share: float) -> list[tuple[str, str, float, str | None]]:
    """Name, type, share of the qualifying total and provider of each liquid resource.

    The shares of qualifying types add up to one; the last two lines do not qualify.
    """
    return [
        ("Central bank deposits", "central_bank_cash", 0.33, None),
        ("Cash at commercial banks", "commercial_bank_cash", 0.10, None),
        (f"Committed line from {provider}", "committed_credit_line", line_share, provider),
        ("Syndicated committed credit facility", "committed_credit_line", 0.28 - line_share, None),
        ("Committed repo facility", "committed_repo", 0.15, None),
        ("Committed FX swap lines", "committed_fx_swap", 0.05, None),
        ("Bonds with prearranged funding", "prearranged_funding_collateral", 0.09, None),
        ("Uncommitted repo lines", "uncommitted_line", 0.12, None),
        ("Equities held by the CCP", "other", 0.04, None),
    ]


def _books(rng: np.random.Generator, size: F64, popularity: F64,
           contract_value: F64) -> tuple[I64, I64]:
    """Each member's instruments (n_members, width) and target positions in contracts.

    A Gumbel top-k draw biased to popular instruments, ordered so that a member's
    biggest positions (Zipf over its slots) sit in its most popular names.
    """
    n_m, n_i = size.size, popularity.size
    width = min(n_i, max(8, min(200, n_i // 25)))
    book = np.empty((n_m, width), np.int64)
    for m in range(n_m):
        keys = np.log(popularity) + rng.gumbel(size=n_i)
        top = np.argpartition(-keys, width - 1)[:width]
        book[m] = top[np.argsort(-keys[top])]
    slot_weight = 1.0 / np.arange(1, width + 1)
    sign = np.where(rng.random((n_m, width)) < 0.55, 1, -1)
    notional = sign * (size * GROSS_NOTIONAL_UNIT)[:, None] * (slot_weight / slot_weight.sum())
    target = np.rint(notional / contract_value[book]).astype(np.int64)
    return book, np.where(target == 0, sign, target)


@dataclass(frozen=True, eq=False)
class Market:
    """A synthetic CCP, deterministic from ``(scale, seed)``; build it with `Market.build`.

    Per member (n_members,): ``group_of_member`` (index into ``group_ids``),
    ``default_fund``, ``settlement_obligation``, ``margin_rate`` (IM per unit of gross
    notional), ``cash_share`` (cash part of IM), ``activity`` (trading probabilities).
    Per instrument (n_instruments,): ``multiplier``, ``initial_price``, ``popularity``
    (price-tick probabilities). Books (n_members, book_width): ``book`` (instrument
    indices) and ``target_position`` (signed contracts). ``shocks`` (n_scenarios,
    n_instruments) relative moves, ``default_shock`` (n_scenarios,). The reference
    cover-2 figures are those of the target books at initial prices and target margin:
    the resources are sized on them.
    """

    scale: MarketScale
    seed: int
    member_ids: tuple[str, ...]
    member_names: tuple[str, ...]
    group_ids: tuple[str, ...]
    group_of_member: I64
    default_fund: F64
    settlement_obligation: F64
    margin_rate: F64
    cash_share: F64
    activity: F64
    instrument_ids: tuple[str, ...]
    multiplier: F64
    initial_price: F64
    popularity: F64
    book: I64
    target_position: I64
    scenario_ids: tuple[str, ...]
    scenario_descriptions: tuple[str, ...]
    shocks: F64
    default_shock: F64
    skin_in_the_game: float
    other_prefunded: float
    liquid_resources: tuple[LiquidResource, ...]
    reference_cover2: float
    reference_liquidity_cover2: float

    @classmethod
    def build(cls, scale: MarketScale, seed: int) -> Market:
        """Build the market of ``scale`` from ``seed``."""
        rng = np.random.default_rng([seed, 0])
        n_m, n_g, n_i = scale.members, scale.groups, scale.instruments
        # Zipf-like group sizes: a few giants with many affiliates, a tail of singletons.
        zipf = 1.0 / np.arange(1, n_g + 1) ** 1.1
        sizes = 1 + rng.multinomial(n_m - n_g, zipf / zipf.sum())
        group_of_member = rng.permutation(np.repeat(rng.permutation(n_g), sizes)).astype(np.int64)
        group_size = np.bincount(group_of_member, minlength=n_g)
        size = rng.lognormal(0.0, 0.9, n_m) * np.sqrt(group_size[group_of_member])

        multiplier = rng.choice(MULTIPLIERS, n_i, p=[0.3, 0.25, 0.2, 0.15, 0.1])
        price = np.clip(rng.lognormal(np.log(100.0), 1.2, n_i), 5.0, 5000.0).round(2)
        popularity = 1.0 / rng.permutation(np.arange(1, n_i + 1)) ** 0.9
        popularity /= popularity.sum()
        shocks, default_shock, descriptions = _scenarios(rng, scale.scenarios, n_i)
        book, target = _books(rng, size, popularity, multiplier * price)

        # Margin and default fund are sized, as at a CCP, on each book's stress loss.
        value = target * (multiplier * price)[book]
        gross = np.abs(value).sum(axis=1)
        loss = stress_loss(value, book, np.ascontiguousarray(shocks.T))
        worst = np.maximum(loss.max(axis=1), 1e-6 * gross)
        margin_rate = worst * rng.lognormal(np.log(MARGIN_COVER), 0.3, n_m) / gross
        margin = margin_rate * gross
        exposure = np.maximum(loss - margin[:, None], 0.0)
        floor = 0.05 * float(worst.max())  # so that a tiny or over-margined market has resources
        cover2 = max(_cover2(_by_group(exposure, group_of_member, n_g)), floor)
        prefunded = CREDIT_COVER * cover2
        df_weight = worst * rng.lognormal(0.0, 0.3, n_m)
        default_fund = (0.85 * prefunded * df_weight / df_weight.sum()).round(2)
        obligation = (worst * rng.lognormal(np.log(0.3), 0.5, n_m)).round(2)
        cash_share = rng.uniform(0.3, 0.7, n_m)

        member_ids = _ids("M", n_m, 4)
        giant = np.flatnonzero(group_of_member == np.argmax(group_size))
        provider = member_ids[giant[np.argmax(size[giant])]]
        need = np.maximum(loss + (obligation - cash_share * margin)[:, None], 0.0)
        drain = _by_group(need, group_of_member, n_g)
        line_share = 0.07  # a quarter of the committed lines (0.28): the EMIR Art. 44 cap
        # Solved so that qualifying / (drain with the member's line) stays at LIQUIDITY_COVER
        # or above: the line is lost with its provider's group.
        qualifying = LIQUIDITY_COVER * max(_cover2(drain), floor)
        qualifying /= 1.0 - LIQUIDITY_COVER * line_share
        drain[group_of_member[member_ids.index(provider)]] += line_share * qualifying
        resources = tuple(
            LiquidResource(name, LiquidityType(liquidity_type), round(share * qualifying, 2), who)
            for name, liquidity_type, share, who in _liquidity_plan(provider, line_share))
        houses = ("Alpine", "Harbour", "Meridian", "Northgate", "Crescent", "Summit", "Baltic")
        names = tuple(f"{houses[g % 7]} {g // 7 + 1} {('AG', 'Ltd', 'LLC', 'SA')[m % 4]}"
                      for m, g in enumerate(group_of_member.tolist()))
        return cls(
            scale=scale, seed=seed, member_ids=member_ids, member_names=names,
            group_ids=_ids("G", n_g, 3), group_of_member=group_of_member,
            default_fund=default_fund, settlement_obligation=obligation,
            margin_rate=margin_rate, cash_share=cash_share, activity=size / size.sum(),
            instrument_ids=_ids("I", n_i, 5), multiplier=multiplier, initial_price=price,
            popularity=popularity, book=book, target_position=target,
            scenario_ids=_ids("S", scale.scenarios, 4), scenario_descriptions=tuple(descriptions),
            shocks=shocks, default_shock=default_shock,
            skin_in_the_game=round(0.05 * prefunded, 2), other_prefunded=round(0.10 * prefunded, 2),
            liquid_resources=resources, reference_cover2=cover2,
            reference_liquidity_cover2=_cover2(drain),
        )

    def reference_messages(self) -> list[Message]:
        """Instruments, members, scenarios, then resources, as ``(topic, key, value)``."""
        out: list[Message] = [
            (topics.INSTRUMENTS, i, {"instrument": i, "multiplier": k})
            for i, k in zip(self.instrument_ids, self.multiplier.tolist(), strict=True)
        ]
        out += [(topics.MEMBERS, member, {
            "member": member, "group": self.group_ids[g], "default_fund": df,
            "settlement_obligation": so, "name": name,
        }) for member, name, g, df, so in zip(
            self.member_ids, self.member_names, self.group_of_member.tolist(),
            self.default_fund.tolist(), self.settlement_obligation.tolist(), strict=True)]
        out += [(topics.SCENARIOS, s, {
            "scenario": s, "description": text, "default_shock": default,
            "shocks": dict(zip(self.instrument_ids, shocks.tolist(), strict=True)),
        }) for s, text, default, shocks in zip(
            self.scenario_ids, self.scenario_descriptions, self.default_shock.tolist(),
            self.shocks, strict=True)]
        lines = [{k: v for k, v in vars(r).items() if v is not None} for r in self.liquid_resources]
        lines = [{**line, "type": str(line["type"])} for line in lines]
        out.append((topics.RESOURCES, topics.RESOURCES, {
            "skin_in_the_game": self.skin_in_the_game, "other_prefunded": self.other_prefunded,
            "liquid_resources": lines,
        }))
        return out


class Feed:
    """Trades, prices, collateral and settlements of a `Market`, generated in chunks.

    Deterministic given ``(market, seed)`` and the sequence of calls, whether events
    are taken as values or encoded. Event ``i`` of the feed's life has
    ``ts = start_ts + i / rate``, unless given its time (`encoded_at`); with
    ``settle_every = k > 0`` every k-th event is ``{"member": "*"}``, settling
    everyone's variation margin.

    Three settings may change between calls, as they do from day to day in a history:
    ``target`` (n_members, width), the positions (contracts) members trade towards;
    ``price_vol`` (n_instruments,), the standard deviation of a price tick's log move;
    ``extra_margin`` (n_members,), collateral posted over the margin model's, such as
    an intraday call met in cash.
    """

    def __init__(self, market: Market, seed: int = 0, *, start_ts: float = 0.0,
                 rate: float = 1000.0, mix: tuple[float, float, float] = BENCH_MIX,
                 settle_every: int = 0) -> None:
        self.market, self.start_ts, self.rate = market, start_ts, rate
        self.settle_every = settle_every
        self.target = market.target_position
        self.price_vol = np.full(market.scale.instruments, PRICE_STEP_VOL)
        self.extra_margin = np.zeros(market.scale.members)
        self._mix_cdf = np.cumsum(mix) / sum(mix)
        self._rng = np.random.default_rng([market.seed, seed, 1])
        self._price = market.initial_price.copy()
        self._position = np.zeros_like(market.target_position)  # (n_members, book_width)
        self._margin = np.zeros(market.scale.members)  # the initial margin last posted
        self._activity_cdf = np.cumsum(market.activity)
        slot_weight = 1.0 / np.arange(1, market.book.shape[1] + 1)
        self._slot_cdf = np.cumsum(slot_weight) / slot_weight.sum()
        self._popularity_cdf = np.cumsum(market.popularity)
        self._issued = self._trades = 0

    def opening_prices(self) -> list[Message]:
        """A price for every instrument at ``start_ts``: the marks before the first event."""
        ids, prices = self.market.instrument_ids, self.market.initial_price.tolist()
        return [(topics.PRICES, i, {"instrument": i, "price": p, "ts": self.start_ts})
                for i, p in zip(ids, prices, strict=True)]

    def events(self, n: int) -> list[Message]:
        """The next ``n`` events as ``(topic, key, value)``, in event-time order."""
        out: list[Message] = []
        for topic_of_event, by_topic in self._chunks(self._next_times(n)):
            queues = [iter(keyed) for keyed in by_topic]
            out += [(FEED_TOPICS[k], *next(queues[k])) for k in topic_of_event.tolist()]
        return out

    def encoded(self, n: int) -> dict[str, list[tuple[bytes, bytes]]]:
        """The next ``n`` events encoded: topic -> [(key, value)] as bytes, in ts order."""
        return self.encoded_at(self._next_times(n))

    def encoded_at(self, ts: F64) -> dict[str, list[tuple[bytes, bytes]]]:
        """Events at the (increasing) event times ``ts``, encoded as by `encoded`."""
        out: dict[str, list[tuple[bytes, bytes]]] = {t: [] for t in FEED_TOPICS}
        for _, by_topic in self._chunks(ts):
            for topic, keyed in zip(FEED_TOPICS, by_topic, strict=True):
                if keyed:  # msgspec escapes newlines inside JSON, so lines split cleanly
                    values = _ENCODER.encode_lines([v for _, v in keyed]).split(b"\n")
                    out[topic] += zip([k.encode() for k, _ in keyed], values, strict=False)
        return out

    @property
    def marks(self) -> F64:
        """The latest price of every instrument (n_instruments,), read-only."""
        return _read_only(self._price)

    @property
    def margin(self) -> F64:
        """The initial margin each member posted last (n_members,), read-only."""
        return _read_only(self._margin)

    def notional(self) -> F64:
        """Each member's signed notional per slot of its book at the marks: (n_members, width)."""
        mk = self.market
        return self._position * (mk.multiplier * self._price)[mk.book]

    def open_book(self, ts: float) -> list[Message]:
        """Trades at the marks that bring every position to its target, and every member's
        collateral for the book, all at ``ts``: where a history starts from."""
        mk = self.market
        missing = self.target - self._position
        m, b = np.nonzero(missing)
        self._position[m, b] += missing[m, b]
        j = mk.book[m, b]
        trades = self._trade_messages(m, j, missing[m, b], self._price[j], [ts] * m.size)
        return ([(topics.TRADES, *trade) for trade in trades]
                + self.collateral(np.arange(mk.scale.members), ts))

    def move_prices(self, move: F64, ts: float) -> tuple[list[Message], F64]:
        """Every instrument whose relative ``move`` (n_instruments,) is not zero, repriced at
        ``ts``: the price messages, and what the moves gain each member (n_members,)."""
        mk, j = self.market, np.flatnonzero(move)
        before = self._price.copy()
        self._price[j] = np.maximum((before[j] * (1.0 + move[j])).round(4), PRICE_TICK)
        gain = (self._position * (mk.multiplier * (self._price - before))[mk.book]).sum(axis=1)
        iids = mk.instrument_ids
        return [(topics.PRICES, iids[ji], {"instrument": iids[ji], "price": p, "ts": ts})
                for ji, p in zip(j.tolist(), self._price[j].tolist(), strict=True)], gain

    def collateral(self, members: I64, ts: float) -> list[Message]:
        """The collateral states of ``members`` at ``ts``."""
        return [(topics.COLLATERAL, *state)
                for state in self._collateral_of(members, [ts] * members.size)]

    def _next_times(self, n: int) -> F64:
        return self.start_ts + (self._issued + np.arange(n)) / self.rate

    def _chunks(self, ts: F64) -> Iterator[tuple[I64, list[Keyed]]]:
        for lo in range(0, ts.size, CHUNK):
            size = min(CHUNK, ts.size - lo)
            index = self._issued + np.arange(size)
            self._issued += size
            kind = np.searchsorted(self._mix_cdf, self._rng.random(size), side="right")
            kind = np.minimum(kind, 2)
            if self.settle_every > 0:
                kind[(index + 1) % self.settle_every == 0] = 3
            times = ts[lo:lo + size].tolist()
            ts_by_kind = [[times[i] for i in np.flatnonzero(kind == k).tolist()]
                          for k in range(4)]
            yield kind, [
                self._trades_at(ts_by_kind[0]), self._prices_at(ts_by_kind[1]),
                self._collateral_at(ts_by_kind[2]),
                [("*", {"member": "*", "ts": t}) for t in ts_by_kind[3]],
            ]

    def _trades_at(self, ts: list[float]) -> Keyed:
        # Each trade pulls its (member, slot) towards the target book, plus noise; the
        # pull is shared by the chunk's trades on that slot so that none overshoots.
        mk, rng, n = self.market, self._rng, len(ts)
        width = mk.book.shape[1]
        m = np.minimum(np.searchsorted(self._activity_cdf, rng.random(n)), mk.scale.members - 1)
        b = np.minimum(np.searchsorted(self._slot_cdf, rng.random(n)), width - 1)
        per_slot = np.bincount(m * width + b, minlength=mk.book.size)[m * width + b]
        target = self.target[m, b]
        drift = TRADE_PULL * (target - self._position[m, b]) / per_slot
        qty = np.rint(drift + rng.normal(0.0, 1.0 + 0.02 * np.abs(target))).astype(np.int64)
        qty = np.where(qty == 0, np.where(rng.random(n) < 0.5, -1, 1), qty)
        np.add.at(self._position, (m, b), qty)
        j = mk.book[m, b]
        price = self._price[j] * (1.0 + TRADE_SLIPPAGE * rng.standard_normal(n))
        return self._trade_messages(m, j, qty, np.maximum(price.round(4), PRICE_TICK), ts)

    def _trade_messages(self, m: I64, j: I64, qty: I64, price: F64, ts: list[float]) -> Keyed:
        first, self._trades = self._trades + 1, self._trades + len(ts)
        ids, iids = self.market.member_ids, self.market.instrument_ids
        return [(ids[mi], {"trade_id": f"T{t}", "member": ids[mi], "instrument": iids[ji],
                           "quantity": q, "price": p, "ts": e})
                for t, mi, ji, q, p, e in zip(range(first, first + len(ts)), m.tolist(),
                                              j.tolist(), qty.tolist(), price.tolist(), ts,
                                              strict=True)]

    def _prices_at(self, ts: list[float]) -> Keyed:
        # Geometric random walks; ticks of one instrument within a chunk chain on each other.
        mk, rng, n = self.market, self._rng, len(ts)
        j = np.searchsorted(self._popularity_cdf, rng.random(n))
        j = np.minimum(j, mk.scale.instruments - 1)
        step = self.price_vol[j] * rng.standard_normal(n)
        order = np.argsort(j, kind="stable")
        js, step, cum = j[order], step[order], np.cumsum(step[order])
        starts = np.flatnonzero(np.r_[True, js[1:] != js[:-1]]) if n else js
        run = np.repeat(cum[starts] - step[starts], np.diff(np.r_[starts, n]))
        walked = np.maximum((self._price[js] * np.exp(cum - run)).round(4), PRICE_TICK)
        ends = np.r_[starts[1:], n] - 1 if n else js
        self._price[js[ends]] = walked[ends]
        price = np.empty(n)
        price[order] = walked
        iids = mk.instrument_ids
        return [(iids[ji], {"instrument": iids[ji], "price": p, "ts": e})
                for ji, p, e in zip(j.tolist(), price.tolist(), ts, strict=True)]

    def _collateral_at(self, ts: list[float]) -> Keyed:
        return self._collateral_of(self._rng.integers(0, self.market.scale.members, len(ts)), ts)

    def _collateral_of(self, m: I64, ts: list[float]) -> Keyed:
        # IM tracks each member's gross notional at the marks, cash is a share of it; extra
        # margin is posted in cash.
        mk = self.market
        gross = np.abs(self.notional()).sum(axis=1)
        im = mk.margin_rate[m] * gross[m] * self._rng.lognormal(0.0, 0.05, m.size)
        cash = (im * mk.cash_share[m] + self.extra_margin[m]).round(2)
        im = (im + self.extra_margin[m]).round(2)
        latest, last = np.unique(m[::-1], return_index=True)  # each member's last state
        self._margin[latest] = im[::-1][last]
        ids = mk.member_ids
        return [(ids[mi], {"member": ids[mi], "initial_margin": i, "cash": c, "ts": e})
                for mi, i, c, e in zip(m.tolist(), im.tolist(), cash.tolist(), ts, strict=True)]


def _read_only(array: F64) -> F64:
    """A view of ``array`` that cannot change it."""
    view = array.view()
    view.flags.writeable = False
    return view


def load_reference(ccp: Ccp, market: Market) -> None:
    """The market's reference data, scenarios and resources, straight into a core."""
    for m, g, df, so in zip(market.member_ids, market.group_of_member.tolist(),
                            market.default_fund.tolist(), market.settlement_obligation.tolist(),
                            strict=True):
        ccp.upsert_member(Member(m, market.group_ids[g], df, so))
    for i, k in zip(market.instrument_ids, market.multiplier.tolist(), strict=True):
        ccp.upsert_instrument(Instrument(i, k))
    for s, shocks, default in zip(market.scenario_ids, market.shocks,
                                  market.default_shock.tolist(), strict=True):
        ccp.upsert_scenario(Scenario(s, dict(zip(market.instrument_ids, shocks.tolist(),
                                                 strict=True)), default))
    ccp.set_resources(Resources(market.skin_in_the_game, market.other_prefunded,
                                market.liquid_resources))
