"""Positions, marks, variation margin and collateral: incremental and batched.

The book reports what each batch did to members' notionals (contracts x
multiplier x mark) so that :mod:`risk.stress` can move scenario P&L with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.ids import grown
from risk.model import BoolArray, FloatArray, IndexArray
from risk.settlement import NO_MARK, PRICE_MARK, TRADE_MARK, Marks


@dataclass(frozen=True)
class BlockChange:
    """A dense change of notional: every listed holder in every listed instrument.

    Parameters
    ----------
    members : (h,) member indices
    instruments : (j,) instrument indices
    notional : (h, j) change of contracts x multiplier x mark
    """

    members: IndexArray
    instruments: IndexArray
    notional: FloatArray


@dataclass(frozen=True)
class PairChange:
    """A sparse change of notional, one (member, instrument) pair per entry.

    Parameters
    ----------
    members : (n,) member indices, ascending
    instruments : (n,) instrument indices
    notional : (n,) change of contracts x multiplier x mark
    """

    members: IndexArray
    instruments: IndexArray
    notional: FloatArray


def newest_per_key(keys: IndexArray, ts: FloatArray,
                   applied_ts: FloatArray) -> tuple[IndexArray, BoolArray]:
    """Which events of a batch apply, replayed one at a time in arrival order.

    An event is stale when it is older than the newest event applied before it
    for its key: earlier in the batch, or before the batch (``applied_ts``).

    Parameters
    ----------
    keys : (n,) key index per event, in arrival order
    ts : (n,) event times
    applied_ts : (n_keys,) newest event time applied per key, -inf if none

    Returns
    -------
    winners : (k,) position of the event that ends up applied, one per distinct
        key that has a fresh event
    stale : (n,) whether each event changes nothing
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.bool_)
    order = np.lexsort((np.arange(n), keys))
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    segment = np.cumsum(starts) - 1
    # Dense integer ranks keep the per-segment running maximum exact.
    values, ranks = np.unique(np.r_[ts[order], applied_ts[sorted_keys[starts]]],
                              return_inverse=True)
    span = len(values) + 1
    rank = segment * span + ranks[:n]
    floor = segment * span + ranks[n:][segment]
    running = np.maximum.accumulate(np.maximum(rank, floor))
    before = np.maximum(floor, np.r_[-1, running[:-1]])
    stale_sorted = rank < before
    fresh = np.flatnonzero(~stale_sorted)
    last_fresh = fresh[np.r_[segment[fresh][1:] != segment[fresh][:-1], True]] if len(fresh) \
        else fresh
    stale = np.empty(n, dtype=np.bool_)
    stale[order] = stale_sorted
    return order[last_fresh], stale


class Book:
    """Every member's positions, unsettled variation margin and collateral.

    Attributes
    ----------
    position : (member capacity, instrument capacity) signed contracts
    multiplier, mark : (instrument capacity,) contract multiplier, mark price
    price_ts, trade_ts : (instrument capacity,) event time of the price marked at, and of
        the trade price an instrument with no price yet is marked at
    variation_margin : (member capacity,) unsettled VM, gains positive; always
        ``sum_j multiplier_j * (position * mark - cost)``
    cost : (member capacity, instrument capacity) what positions cost as of the
        member's last settlement: ``sum of quantity x booked price``, a trade being booked
        at its own price, or at the mark it was settled at if it is settled-side
        (:mod:`risk.settlement`); a multiplier values the whole position whenever it
        arrives, so the book does not depend on the order of reference data and trades
    settled_quantity : (member capacity, instrument capacity) the contracts of each
        position that are settled-side, booked at the mark at the settled-through time
    initial_margin, cash : (member capacity,) post-haircut collateral and its cash part
    """

    def __init__(self) -> None:
        self.n_members = 0
        self.n_instruments = 0
        self.position: FloatArray = np.zeros((0, 0))
        self.cost: FloatArray = np.zeros((0, 0))
        self.settled_quantity: FloatArray = np.zeros((0, 0))
        self.multiplier: FloatArray = np.ones(0)
        self.mark: FloatArray = np.zeros(0)
        self.has_mark: BoolArray = np.zeros(0, dtype=np.bool_)
        self.has_price: BoolArray = np.zeros(0, dtype=np.bool_)
        self.price_ts: FloatArray = np.zeros(0)
        self.trade_ts: FloatArray = np.zeros(0)
        self.variation_margin: FloatArray = np.zeros(0)
        self.initial_margin: FloatArray = np.zeros(0)
        self.cash: FloatArray = np.zeros(0)
        self.collateral_ts: FloatArray = np.zeros(0)

    def reserve(self, n_members: int, n_instruments: int) -> None:
        """Make room for ``n_members`` members and ``n_instruments`` instruments."""
        self.position = grown(grown(self.position, n_members, 0, 0.0), n_instruments, 1, 0.0)
        self.cost = grown(grown(self.cost, n_members, 0, 0.0), n_instruments, 1, 0.0)
        self.settled_quantity = grown(grown(self.settled_quantity, n_members, 0, 0.0),
                                      n_instruments, 1, 0.0)
        self.multiplier = grown(self.multiplier, n_instruments, 0, 1.0)
        self.mark = grown(self.mark, n_instruments, 0, 0.0)
        self.has_mark = grown(self.has_mark, n_instruments, 0, False)
        self.has_price = grown(self.has_price, n_instruments, 0, False)
        self.price_ts = grown(self.price_ts, n_instruments, 0, -np.inf)
        self.trade_ts = grown(self.trade_ts, n_instruments, 0, -np.inf)
        for name in ("variation_margin", "initial_margin", "cash"):
            setattr(self, name, grown(getattr(self, name), n_members, 0, 0.0))
        self.collateral_ts = grown(self.collateral_ts, n_members, 0, -np.inf)
        self.n_members, self.n_instruments = n_members, n_instruments

    def marks(self) -> Marks:
        """Every instrument's mark now, with its kind and event time."""
        k = self.n_instruments
        priced = self.has_price[:k]
        kind = np.where(priced, PRICE_MARK, np.where(self.has_mark[:k], TRADE_MARK, NO_MARK))
        return Marks(kind.astype(np.int8), np.where(priced, self.price_ts[:k], self.trade_ts[:k]),
                     self.mark[:k].copy())

    def notional(self) -> FloatArray:
        """Contracts x multiplier x mark: (n_members, n_instruments)."""
        n, k = self.n_members, self.n_instruments
        return self.position[:n, :k] * (self.multiplier[:k] * self.mark[:k])

    def set_multiplier(self, instrument: int, multiplier: float) -> BlockChange:
        """Change an instrument's contract multiplier; holders' notional and VM move with it."""
        columns = self.position[: self.n_members, [instrument]]
        holders = np.flatnonzero(columns[:, 0])
        step = multiplier - self.multiplier[instrument]
        change = columns[holders] * (step * self.mark[instrument])
        self.variation_margin[: self.n_members] += step * (
            columns[:, 0] * self.mark[instrument] - self.cost[: self.n_members, instrument])
        self.multiplier[instrument] = multiplier
        return BlockChange(holders, np.array([instrument], dtype=np.intp), change)

    def move_marks(self, instruments: IndexArray, prices: FloatArray) -> BlockChange:
        """Mark distinct ``instruments`` at ``prices``; holders' VM and notional move."""
        move = np.where(self.has_mark[instruments], prices - self.mark[instruments], 0.0)
        weight = self.multiplier[instruments] * move
        columns = self.position[: self.n_members, instruments]
        self.variation_margin[: self.n_members] += columns @ weight
        holders = np.flatnonzero(columns.any(axis=1))
        self.mark[instruments] = prices
        self.has_mark[instruments] = True
        return BlockChange(holders, instruments, columns[holders] * weight)

    def apply_prices(self, instruments: IndexArray, prices: FloatArray,
                     ts: FloatArray) -> tuple[BlockChange, BoolArray]:
        """Apply mark prices, ignoring stale ones: (notional change, which were stale)."""
        winners, stale = newest_per_key(instruments, ts, self.price_ts)
        moved = instruments[winners]
        change = self.move_marks(moved, prices[winners])
        self.has_price[moved] = True
        self.price_ts[moved] = ts[winners]
        return change, stale

    def mark_unpriced(self, instruments: IndexArray, price: FloatArray,
                      ts: FloatArray) -> BlockChange | None:
        """Mark each instrument with no price yet at its newest trade price (by event
        time); returns the notional change, None if no instrument was unpriced."""
        unpriced = np.flatnonzero(~self.has_price[instruments])
        if not len(unpriced):
            return None
        winners, _ = newest_per_key(instruments[unpriced], ts[unpriced], self.trade_ts)
        moved, chosen = instruments[unpriced][winners], unpriced[winners]
        self.trade_ts[moved] = ts[chosen]
        return self.move_marks(moved, price[chosen])

    def apply_trades(self, members: IndexArray, instruments: IndexArray, quantity: FloatArray,
                     booked: FloatArray, settled: BoolArray | None) -> PairChange:
        """Book trades at ``booked`` prices: their own, or the mark at the member's
        settled-through time for the ``settled`` ones (settled-side; None: none).

        VM over a batch depends only on the final marks (it stays equal to
        ``k * (q * mark - cost)``), so the marks move first (:meth:`mark_unpriced`) and
        every trade is then booked at the final mark.
        """
        k = self.multiplier[instruments]
        mark = self.mark[instruments]
        self.variation_margin[: self.n_members] += np.bincount(
            members, quantity * k * (mark - booked), minlength=self.n_members)
        capacity = self.position.shape[1]
        pairs, pair_of_trade = np.unique(members * capacity + instruments, return_inverse=True)
        held_by, held_in = np.divmod(pairs, capacity)
        contracts = np.bincount(pair_of_trade, quantity, minlength=len(pairs))
        self.position[held_by, held_in] += contracts
        self.cost[held_by, held_in] += np.bincount(pair_of_trade, quantity * booked,
                                                   minlength=len(pairs))
        if settled is not None:
            self.settled_quantity[held_by, held_in] += np.bincount(
                pair_of_trade, np.where(settled, quantity, 0.0), minlength=len(pairs))
        notional = contracts * self.multiplier[held_in] * self.mark[held_in]
        return PairChange(held_by, held_in, notional)

    def apply_collateral(self, members: IndexArray, initial_margin: FloatArray, cash: FloatArray,
                         ts: FloatArray) -> tuple[IndexArray, BoolArray]:
        """Set members' latest collateral, ignoring stale states: (members changed, stale)."""
        winners, stale = newest_per_key(members, ts, self.collateral_ts)
        changed = members[winners]
        self.initial_margin[changed] = initial_margin[winners]
        self.cash[changed] = cash[winners]
        self.collateral_ts[changed] = ts[winners]
        return changed, stale

    def forget(self, members: IndexArray) -> None:
        """Drop ``members``' positions, variation margin and collateral."""
        for matrix in (self.position, self.cost, self.settled_quantity):
            matrix[members] = 0.0
        for array in (self.variation_margin, self.initial_margin, self.cash):
            array[members] = 0.0
        self.collateral_ts[members] = -np.inf

    def resettle(self, members: IndexArray, later: tuple[IndexArray, IndexArray, FloatArray,
                                                         FloatArray],
                 price_at: FloatArray) -> None:
        """``members`` are now settled through a time ``T``: each position's contracts are
        settled-side and cost ``price_at`` (the marks at ``T``), except those of the
        ``later`` trades (members, instruments, quantity, price: theirs after ``T``),
        which cost what they were traded at."""
        n = self.n_instruments
        row = np.full(self.n_members, -1, dtype=np.intp)
        row[members] = np.arange(len(members))
        by, j, quantity, price = later
        cell = row[by] * n + j
        size = len(members) * n
        after = np.bincount(cell, quantity, minlength=size).reshape(len(members), n)
        settled = self.position[members, :n] - after
        cost = settled * price_at[:n] + np.bincount(cell, quantity * price,
                                                    minlength=size).reshape(len(members), n)
        self.variation_margin[members] = (self.position[members, :n] * self.mark[:n]
                                          - cost) @ self.multiplier[:n]
        self.cost[members, :n] = cost
        self.settled_quantity[members, :n] = settled

    def remark(self, members: IndexArray, instruments: IndexArray, move: FloatArray) -> None:
        """The mark at ``members``' settled-through time moved by ``move`` in
        ``instruments``: their settled-side contracts cost that much more."""
        cells = np.ix_(members, instruments)
        change = self.settled_quantity[cells] * move
        self.cost[cells] += change
        self.variation_margin[members] -= change @ self.multiplier[instruments]
