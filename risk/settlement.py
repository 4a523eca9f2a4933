"""Settlements by event time: each trade and mark move on its side of a settlement,
however the topics interleave.

A settlement ``{"member": m, "ts": T}`` settles the variation margin of every trade
and mark move of ``m`` with event time ``<= T``; a member is *settled through* the
latest such ``T``, its own or everyone's (``"*"``). For a member settled through
``T``, a trade of ``x`` at price ``t`` costs ``x * p(T)`` if its event time is
``<= T`` (what it made up to ``T`` was paid) and ``x * t`` otherwise. ``p(T)``, the
instrument's mark at event time ``T``, is its newest price with event time ``<= T``
or, if it had none by then, its newest trade price with event time ``<= T`` (among
equal event times, the later to arrive). The book's unsettled variation margin,
``k * (q * mark - cost)``, is then what the rule leaves unsettled.

A message may arrive after others newer than it. :class:`Settlements` keeps what
places it exactly:

- the marks at every settlement time in effect, and how many contracts of each
  position are settled-side: a late trade, or a late price that changes ``p(T)``,
  is placed exactly however late it is;
- each instrument's marks and the trades since the *horizon*, the later of the last
  ``"*"`` settlement and the newest event time less the settlement window: a
  settlement placed after newer events is exact when it is not older than the
  horizon. One that is older, and would change anything, is refused, never placed
  approximately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from risk.ids import grown
from risk.model import BoolArray, FloatArray, IndexArray

# Kinds of mark: a price beats a trade price, whatever their event times.
NO_MARK, TRADE_MARK, PRICE_MARK = -1, 0, 1
# The marks of at most this many batches leave for the floor at each move of the horizon: a
# day's, at once, held the worker for about 50 ms at the large scale.
PRUNE_BATCHES = 32


class Outcome(StrEnum):
    """What a settlement did."""

    APPLIED = "applied"
    STALE = "stale"  # every member it names was already settled through a later time
    LATE = "late"  # older than the horizon: refused


@dataclass
class Marks:
    """Each instrument's mark at one event time: kind (``NO_MARK`` if none), event
    time and price; (instruments,) each."""

    kind: np.ndarray
    ts: FloatArray
    price: FloatArray

    @classmethod
    def none(cls, n: int) -> Marks:
        """No mark for any of ``n`` instruments."""
        return cls(np.full(n, NO_MARK, dtype=np.int8), np.full(n, -np.inf), np.zeros(n))

    def grown(self, n: int) -> Marks:
        """These marks, with room for ``n`` instruments."""
        return Marks(grown(self.kind, n, 0, NO_MARK), grown(self.ts, n, 0, -np.inf),
                     grown(self.price, n, 0, 0.0))

    def copy(self) -> Marks:
        """An independent copy."""
        return Marks(self.kind.copy(), self.ts.copy(), self.price.copy())

    def fold(self, instruments: IndexArray, kind: np.ndarray, ts: FloatArray,
             price: FloatArray) -> IndexArray:
        """Take each listed instrument's newest of the marks given (in arrival order) where
        it is at least as new as the one held; returns the instruments whose mark was
        taken."""
        if not len(instruments):
            return instruments
        order = np.lexsort((np.arange(len(instruments)), ts, kind, instruments))
        ordered = instruments[order]
        last = order[np.r_[ordered[1:] != ordered[:-1], True]]
        j = instruments[last]
        newer = (kind[last] > self.kind[j]) | ((kind[last] == self.kind[j])
                                              & (ts[last] >= self.ts[j]))
        taken: IndexArray = j[newer]
        last = last[newer]
        self.kind[taken], self.ts[taken], self.price[taken] = kind[last], ts[last], price[last]
        return taken


class _Chunks:
    """Records kept in arrival order, one chunk of arrays per batch; chunks whose newest
    event time is at or before a horizon leave from the front."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, tuple[np.ndarray, ...]]] = []

    def append(self, ts: FloatArray, *columns: np.ndarray) -> None:
        if len(ts):
            self.chunks.append((float(ts.max()), (ts, *columns)))

    def concatenated(self, width: int, after: float = -math.inf) -> tuple[np.ndarray, ...]:
        """Every column of the chunks whose newest event time is after ``after``."""
        chunks = [columns for newest, columns in self.chunks if newest > after]
        if not chunks:
            return tuple(np.zeros(0) for _ in range(width))
        return tuple(np.concatenate(column) for column in zip(*chunks, strict=True))

    def leave(self, horizon: float, at_most: int | None = None) -> list[tuple[np.ndarray, ...]]:
        """Drop the leading chunks wholly at or before ``horizon`` (``at_most``: no more
        than that many); returns them."""
        most = len(self.chunks) if at_most is None else min(at_most, len(self.chunks))
        gone = 0
        while gone < most and self.chunks[gone][0] <= horizon:
            gone += 1
        left = [columns for _, columns in self.chunks[:gone]]
        del self.chunks[:gone]
        return left


class MarkHistory:
    """Every instrument's marks since the horizon, and its newest mark before it.

    Attributes
    ----------
    floor : the newest mark at or before the horizon
    first_price_ts : (instruments,) the oldest event time of a price received; a trade
        is a mark (``TRADE_MARK``) only if it is older than that
    """

    def __init__(self) -> None:
        self.floor = Marks.none(0)
        self.first_price_ts: FloatArray = np.zeros(0)
        self._marks = _Chunks()

    def reserve(self, n_instruments: int) -> None:
        self.floor = self.floor.grown(n_instruments)
        self.first_price_ts = grown(self.first_price_ts, n_instruments, 0, np.inf)

    def record(self, instruments: IndexArray, kind: int, ts: FloatArray,
               price: FloatArray) -> None:
        """Marks received, in arrival order."""
        if kind == PRICE_MARK and len(ts):
            np.minimum.at(self.first_price_ts, instruments, ts)
        self._marks.append(ts, instruments, np.full(len(ts), kind, dtype=np.int8), price)

    def at(self, t: float, current: Marks) -> Marks:
        """Every instrument's mark at event time ``t`` (not before the horizon), given the
        ``current`` marks (the newest of all)."""
        marks = current.copy()
        back = marks.ts > t
        if back.any():
            n, floor = len(back), self.floor
            marks.kind[back], marks.ts[back], marks.price[back] = \
                floor.kind[:n][back], floor.ts[:n][back], floor.price[:n][back]
            ts, instruments, kind, price = self._marks.concatenated(4)
            instruments = instruments.astype(np.intp)
            kept = (ts <= t) & back[instruments] if len(ts) else np.zeros(0, dtype=np.bool_)
            marks.fold(instruments[kept], kind[kept].astype(np.int8), ts[kept], price[kept])
        return marks

    def prune(self, horizon: float) -> None:
        """Keep the marks after ``horizon``, and the newest at or before it: the marks of
        at most :data:`PRUNE_BATCHES` batches are folded into the floor at a time, the rest
        at the next calls (marks kept longer change nothing)."""
        leaving = self._marks.leave(horizon, PRUNE_BATCHES)
        if leaving:
            ts, instruments, kind, price = (np.concatenate(column)
                                            for column in zip(*leaving, strict=True))
            self.floor.fold(instruments, kind, ts, price)


class TradeLog:
    """The trades since the horizon: member, instrument, event time, quantity, price."""

    def __init__(self) -> None:
        self._trades = _Chunks()

    def record(self, members: IndexArray, instruments: IndexArray, ts: FloatArray,
               quantity: FloatArray, price: FloatArray) -> None:
        """Trades applied, in arrival order."""
        self._trades.append(ts, members.astype(np.int32), instruments.astype(np.int32),
                            quantity, price)

    def after(self, t: float, members: BoolArray) -> tuple[IndexArray, IndexArray, FloatArray,
                                                          FloatArray]:
        """The trades of ``members`` (a mask over member numbers) with event time after
        ``t``: (members, instruments, quantity, price)."""
        ts, m, j, quantity, price = self._trades.concatenated(5, after=t)
        m = m.astype(np.intp)
        chosen = (ts > t) & members[m] if len(ts) else np.zeros(0, dtype=np.bool_)
        return m[chosen], j[chosen].astype(np.intp), quantity[chosen], price[chosen]

    def prune(self, horizon: float) -> None:
        """Drop trades at or before ``horizon`` (whole batches)."""
        self._trades.leave(horizon)

    def renumber(self, gone: int, moved: int) -> None:
        """Drop the trades of member ``gone``; member ``moved`` takes its number."""
        self.forget(np.array([gone]))
        for _, (_, m, *_) in self._trades.chunks:
            m[m == moved] = gone

    def forget(self, members: IndexArray) -> None:
        """Drop the trades of ``members``."""
        for i, (newest, (ts, m, *rest)) in enumerate(self._trades.chunks):
            kept = ~np.isin(m, members)
            self._trades.chunks[i] = (newest, (ts[kept], m[kept], *(c[kept] for c in rest)))


class Settlements:
    """What each member is settled through, and what places late messages exactly.

    Attributes
    ----------
    everyone : the latest ``"*"`` settlement's event time (members that appear later
        start settled through it)
    through : (member capacity,) each member's settled-through event time
    last_trade : (member capacity,) the event time of each member's newest trade held
    marks_at : each instrument's mark at every settled-through time in effect
    left : the settled-through times of members forgotten (by id) that are later than
        everyone's: a member that comes back is settled through it still
    horizon : settlements older than this are refused
    """

    def __init__(self) -> None:
        self.everyone = -math.inf
        self.through: FloatArray = np.zeros(0)
        self.last_trade: FloatArray = np.zeros(0)
        self.left: dict[str, float] = {}
        self.marks_at: dict[float, Marks] = {}
        self.history = MarkHistory()
        self.trades = TradeLog()
        self.horizon = -math.inf

    def reserve(self, n_members: int, n_instruments: int) -> None:
        self.through = grown(self.through, n_members, 0, self.everyone)
        self.last_trade = grown(self.last_trade, n_members, 0, -np.inf)
        self.history.reserve(n_instruments)
        self.marks_at = {t: marks.grown(n_instruments) for t, marks in self.marks_at.items()}

    def record_marks(self, instruments: IndexArray, kind: int, ts: FloatArray,
                     price: FloatArray) -> list[tuple[float, IndexArray, FloatArray]]:
        """Marks received (prices, or trades of instruments not priced by then), in arrival
        order. Returns, per settled-through time ``T`` whose marks changed, the
        instruments and how much ``p(T)`` moved."""
        self.history.record(instruments, kind, ts, price)
        moves = []
        for t, marks in self.marks_at.items():
            before = ts <= t
            if before.any():
                was = marks.price.copy()
                taken = marks.fold(instruments[before], np.full(int(before.sum()), kind,
                                                                dtype=np.int8),
                                   ts[before], price[before])
                if len(taken):
                    moves.append((t, taken, marks.price[taken] - was[taken]))
        return moves

    def booked(self, members: IndexArray, instruments: IndexArray, ts: FloatArray,
               price: FloatArray) -> tuple[BoolArray | None, FloatArray]:
        """The price each trade is booked at: ``p(T)`` where its event time is at or before
        its member's settled-through ``T`` (those are *settled-side*), its own price
        otherwise. Returns (which are settled-side, None if none; booked prices)."""
        through = self.through[members]
        settled = ts <= through
        if not settled.any():
            return None, price
        booked = price.copy()
        for t in np.unique(through[settled]).tolist():
            rows = np.flatnonzero(settled & (through == t))
            booked[rows] = self.marks_at[t].price[instruments[rows]]
        return settled, booked

    def settle(self, members: IndexArray, t: float, everyone: bool,
               current: Marks) -> tuple[Outcome, IndexArray]:
        """Settle ``members`` (with ``everyone``: every member known, and every one to
        come) through event time ``t``. Returns the outcome and the members whose
        settled-through time moved; their book rows are the caller's to redo."""
        moved = members[self.through[members] < t]
        if not len(moved) and not (everyone and t > self.everyone):
            return Outcome.STALE, moved
        if t < self.horizon:
            return Outcome.LATE, moved[:0]
        if t not in self.marks_at:
            self.marks_at[t] = self.history.at(t, current)
        if everyone:
            self.everyone = t
            np.maximum(self.through, t, out=self.through)
        else:
            self.through[moved] = t
        self.left = {name: t for name, t in self.left.items() if t > self.everyone}
        in_effect = {self.everyone, *self.left.values(), *np.unique(self.through).tolist()}
        self.marks_at = {s: marks for s, marks in self.marks_at.items() if s in in_effect}
        self.advance(self.everyone)
        return Outcome.APPLIED, moved

    def advance(self, horizon: float) -> None:
        """Move the horizon on to ``horizon`` (never back), dropping what no settlement can
        need any more."""
        if horizon > self.horizon:
            self.horizon = horizon
            self.trades.prune(horizon)
        self.history.prune(self.horizon)
