"""A history of past business days of the synthetic market, for `cover2 simulate --start`.

Pure: the days, the events and their times come from the parameters alone.

Every business day (Monday to Friday, UTC) trades from 08:00 to 16:30 and ends with a
settlement of everyone's variation margin at 17:00. Over the history the members' books
grow from ``BOOK_FROM`` to ``BOOK_TO`` of their targets, and the daily volatility of
prices moves between calm, normal and stressed regimes. On the breach day, a stressed
day about 40% through, prices gap at noon against the net positions of the two largest
groups, by as much as makes their exposure ``GAP_COVER`` times the prefunded resources;
the members who lost meet their calls for it at 13:00, 14:00 and 15:00 (smallest calls
first), which brings cover-2 back under the resources, and prices come back at 16:00.

>>> [str(day) for day in business_days(dt.date(2026, 1, 3), 3)]
['2026-01-05', '2026-01-06', '2026-01-07']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np

from streams import topics
from streams.codec import encode
from streams.tools.market import BENCH_MIX, F64, I64, Feed, Market, Message, stress_loss

Encoded = list[tuple[str, bytes, bytes]]  # (topic without prefix, key, value)

HOUR = 3600.0
# Times of day, in seconds after midnight UTC.
REFERENCE_AT, OPENING_AT, BOOK_AT = 7.0 * HOUR, 7.5 * HOUR, 7.75 * HOUR
TRADING_FROM, TRADING_TO, SETTLEMENT_AT = 8.0 * HOUR, 16.5 * HOUR, 17.0 * HOUR
GAP_AT, CALLS_MET_AT, REBOUND_AT = 12.0 * HOUR, (13.0 * HOUR, 14.0 * HOUR, 15.0 * HOUR), 16.0 * HOUR
BREACH_TIMES = (GAP_AT, *CALLS_MET_AT, REBOUND_AT)
# The share of their target books the members hold on the first day and on the last: at
# the end, cover-2's daily peaks take about half to three quarters of the prefunded resources.
BOOK_FROM, BOOK_TO = 0.25, 0.6
DAILY_VOL = (0.005, 0.01, 0.02)  # a price's daily standard deviation: calm, normal, stressed
REGIME_DAYS = 15  # mean length of a volatility regime, in business days
BREACH_AT = 0.4  # where the breach day falls, as a share of the history
# The two largest groups' exposure just after the gap over the prefunded resources, as
# estimated from their books: what the core then shows is within some 0.2 of it, and
# stays over 1 until the calls are met. A gap takes at most MAX_GAP of a price.
GAP_COVER, MAX_GAP = 1.3, 0.5


def business_days(start: dt.date, n: int) -> tuple[dt.date, ...]:
    """``n`` business days from ``start`` (from the Monday after, if it is a weekend)."""
    days: list[dt.date] = []
    day = start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return tuple(days)


def at(day: dt.date, seconds: float) -> float:
    """Epoch seconds of ``seconds`` after midnight UTC on ``day``."""
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() + seconds


def _regimes(rng: np.random.Generator, n_days: int) -> I64:
    """An index into ``DAILY_VOL`` per day: normal at first, then moving to another regime
    about once every ``REGIME_DAYS`` days."""
    switch = rng.random(n_days) < 1.0 / REGIME_DAYS
    step = rng.integers(1, len(DAILY_VOL), n_days)
    regime = np.empty(n_days, np.int64)
    current = 1
    for d in range(n_days):
        current = (current + step[d]) % len(DAILY_VOL) if switch[d] else current
        regime[d] = current
    return regime


def _encoded(messages: list[Message]) -> Encoded:
    return [(topic, key.encode(), encode(value)) for topic, key, value in messages]


class History:
    """``n_days`` business days of ``market`` from ``start``, deterministic from the market
    and ``seed``.

    ``book_scale`` (n_days,) is the share of its target book each member trades towards
    on each day, ``daily_vol`` (n_days,) the daily standard deviation of prices, and
    ``breach`` the index of the breach day (None for a history of fewer than 3 days: it
    falls neither on the first nor on the last day). The reference data belongs at
    ``reference_ts``, before everything else: the first day at 07:00.
    """

    def __init__(self, market: Market, start: dt.date, n_days: int, events_per_day: int,
                 seed: int = 0) -> None:
        self.market, self.events_per_day = market, events_per_day
        self.days = business_days(start, n_days)
        rng = np.random.default_rng([market.seed, seed, 2])
        self.book_scale = np.linspace(BOOK_FROM, BOOK_TO, n_days)
        self.daily_vol = np.asarray(DAILY_VOL)[_regimes(rng, n_days)]
        self.breach = min(max(int(BREACH_AT * n_days), 1), n_days - 2) if n_days >= 3 else None
        if self.breach is not None:
            self.daily_vol[self.breach] = DAILY_VOL[-1]
        self.reference_ts = at(self.days[0], REFERENCE_AT)
        self._feed = Feed(market, seed, start_ts=at(self.days[0], OPENING_AT))
        self._settled = market.initial_price  # the marks at the last settlement
        # A price's expected ticks a day, so that its daily volatility is the regime's.
        price_share = BENCH_MIX[1] / sum(BENCH_MIX)
        self._ticks = np.maximum(market.popularity * price_share * events_per_day, 1.0)

    @property
    def breach_day(self) -> dt.date | None:
        """The day on which cover-2 exceeds the prefunded resources for a few hours."""
        return None if self.breach is None else self.days[self.breach]

    def trading_days(self) -> Iterator[tuple[dt.date, Encoded]]:
        """Each day and its messages, each topic's in event-time order: on the first day the
        opening prices (07:30) and books (07:45), then the day's events (08:00 to 16:30)
        with, on the breach day, its incidents, and the settlement of everyone (17:00)."""
        feed, n = self._feed, self.events_per_day
        for d, day in enumerate(self.days):
            feed.target = self._target(d)
            feed.price_vol = self.daily_vol[d] / np.sqrt(self._ticks)
            feed.extra_margin[:] = 0.0  # the calls met were for variation margin now settled
            out = (_encoded(feed.opening_prices() + feed.open_book(at(day, BOOK_AT))) if d == 0
                   else [])
            times = at(day, TRADING_FROM) + np.arange(n) * (TRADING_TO - TRADING_FROM) / n
            breach = d == self.breach
            pieces = (np.split(times, np.searchsorted(times, [at(day, s) for s in BREACH_TIMES]))
                      if breach else [times])
            out += self._events(pieces[0])
            # Each incident is made once the events before it are, as it depends on them.
            for incident, piece in zip(self._breach(day) if breach else (), pieces[1:],
                                       strict=True):
                out += _encoded(incident) + self._events(piece)
            self._settled = feed.marks.copy()
            settlement = (topics.SETTLEMENTS, "*", {"member": "*", "ts": at(day, SETTLEMENT_AT)})
            yield day, out + _encoded([settlement])

    def _target(self, d: int) -> I64:
        """The positions members trade towards on day ``d``: ``book_scale`` of their target
        books in notional at the initial prices, in contracts at today's marks."""
        mk = self.market
        rescaled = float(self.book_scale[d]) * (mk.initial_price / self._feed.marks)[mk.book]
        target: I64 = np.rint(rescaled * mk.target_position).astype(np.int64)
        return target

    def _events(self, ts: F64) -> Encoded:
        return [(topic, key, value) for topic, keyed in self._feed.encoded_at(ts).items()
                for key, value in keyed]

    def _breach(self, day: dt.date) -> Iterator[list[Message]]:
        """The breach day's incidents, one for each of ``BREACH_TIMES``, each made when its
        time comes: the gap, the calls met by the members who lost in it (smallest calls
        first), and prices coming back."""
        feed, gap = self._feed, self._gap()
        messages, gain = feed.move_prices(gap, at(day, GAP_AT))
        yield messages
        calls = np.maximum(-gain, 0.0)
        called = np.flatnonzero(calls > 0)
        waves = np.array_split(called[np.argsort(calls[called], kind="stable")],
                               len(CALLS_MET_AT))
        for wave, when in zip(waves, CALLS_MET_AT, strict=True):
            feed.extra_margin[wave] = calls[wave]
            yield feed.collateral(wave, at(day, when))
        yield feed.move_prices(1.0 / (1.0 + gap) - 1.0, at(day, REBOUND_AT))[0]

    def _gap(self) -> F64:
        """The gap (n_instruments,): every price held by the two largest groups (by gross
        notional) moves against their net position by one relative size.

        The size makes the two groups' exposure, in their worst scenario, ``GAP_COVER``
        times the prefunded resources: their stress losses less their IM (what they
        posted, or what the margin model asks of their books now if more: they post
        it soon) and the variation margin of their positions since the last settlement,
        plus what the gap adds (variation margin lost and the change of their stress
        losses with the marks, both linear in its size).
        """
        mk = self.market
        notional = self._feed.notional()
        gross = np.abs(notional).sum(axis=1)
        by_group = np.bincount(mk.group_of_member, gross, mk.scale.groups)
        rows = np.isin(mk.group_of_member, np.argsort(-by_group, kind="stable")[:2])
        net = np.bincount(mk.book[rows].ravel(), notional[rows].ravel(), mk.scale.instruments)
        against = -np.sign(net)
        change = notional[rows] * against[mk.book[rows]]  # of notional, per unit of size
        loss = stress_loss(notional[rows], mk.book[rows], mk.shocks.T)
        marked = notional * (1.0 - self._settled / self._feed.marks)[mk.book]  # since settled
        margin = np.maximum(self._feed.margin, mk.margin_rate * gross)  # posted, or soon
        loss -= (margin + marked.sum(axis=1))[rows, None]
        slope = stress_loss(change, mk.book[rows], mk.shocks.T) - change.sum(axis=1)[:, None]
        target = GAP_COVER * (mk.default_fund.sum() + mk.skin_in_the_game + mk.other_prefunded)
        low, high = 0.0, MAX_GAP
        for _ in range(30):  # bisection: the exposure grows with the size
            size = (low + high) / 2
            if np.maximum(loss + size * slope, 0.0).sum(axis=0).max() < target:
                low = size
            else:
                high = size
        return high * against
