"""The book: marks, variation margin, stale events, settlement and notional changes.

Small hand-computed books with exact answers, and Hypothesis sequences of batches
checked against a loop that applies every event one at a time by the rules of
``docs/methodology.md`` and :mod:`risk.settlement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.book import BlockChange, Book, PairChange, newest_per_key
from risk.model import BoolArray, FloatArray, IndexArray
from risk.settlement import NO_MARK, PRICE_MARK, TRADE_MARK
from tests.tolerances import MONEY_ATOL, MONEY_RTOL

N_MEMBERS, N_INSTRUMENTS = 3, 3


def ints(*values: int) -> IndexArray:
    return np.array(values, dtype=np.intp)


def floats(*values: float) -> FloatArray:
    return np.array(values, dtype=np.float64)


def bools(*values: bool) -> BoolArray:
    return np.array(values, dtype=np.bool_)


def book_of(n_members: int = N_MEMBERS, n_instruments: int = N_INSTRUMENTS) -> Book:
    book = Book()
    book.reserve(n_members, n_instruments)
    return book


def trade(book: Book, members: IndexArray, instruments: IndexArray, quantity: FloatArray,
          price: FloatArray, ts: FloatArray) -> tuple[BlockChange | None, PairChange]:
    """Trades booked at their own price, as the CCP does: unpriced instruments are
    marked at their newest trade price first."""
    marked = book.mark_unpriced(instruments, price, ts)
    return marked, book.apply_trades(members, instruments, quantity, price, None)


NO_LATER = (ints(), ints(), floats(), floats())


def vm_from_state(book: Book) -> FloatArray:
    """``sum_j k_j * (q * p - cost)`` per member, from positions, marks and cost."""
    n, k = book.n_members, book.n_instruments
    return ((book.position[:n, :k] * book.mark[:k] - book.cost[:n, :k])
            * book.multiplier[:k]).sum(axis=1)


def dense(change: BlockChange | PairChange | None, n_members: int,
          n_instruments: int) -> FloatArray:
    """A notional change as a (members, instruments) matrix."""
    out = np.zeros((n_members, n_instruments))
    if isinstance(change, BlockChange):
        np.add.at(out, np.ix_(change.members, change.instruments), change.notional)
    elif isinstance(change, PairChange):
        np.add.at(out, (change.members, change.instruments), change.notional)
    return out


def assert_money(actual: FloatArray | float, expected: FloatArray | float) -> None:
    np.testing.assert_allclose(actual, expected, rtol=MONEY_RTOL, atol=MONEY_ATOL)


# Trades and marks


def test_trades_on_an_unpriced_instrument_mark_it_at_the_newest_trade_price() -> None:
    book = book_of()
    marked = book.mark_unpriced(ints(0, 0), floats(100, 105), floats(1, 2))
    pairs = book.apply_trades(ints(0, 1), ints(0, 0), floats(2, -1), floats(100, 105), None)

    assert book.mark[0] == 105 and book.trade_ts[0] == 2
    assert bool(book.has_mark[0]) and not bool(book.has_price[0])
    # Member 0 bought 2 at 100 and is marked at 105; member 1 sold at the mark.
    assert_money(book.variation_margin[:2], floats(10, 0))
    assert_money(book.position[:2, 0], floats(2, -1))
    assert_money(book.cost[:2, 0], floats(200, -105))
    assert not book.settled_quantity.any()
    # Nobody held the instrument before the batch, so only the traded contracts count.
    assert marked is not None and len(marked.members) == 0
    assert marked.instruments.tolist() == [0]
    assert pairs.members.tolist() == [0, 1] and pairs.instruments.tolist() == [0, 0]
    assert_money(pairs.notional, floats(210, -105))

    # A newer trade still moves the mark of an unpriced instrument, holders with it.
    marked, pairs = trade(book, ints(2), ints(0), floats(1), floats(110), floats(3))
    assert book.mark[0] == 110
    assert_money(book.variation_margin[:3], floats(20, -5, 0))
    # The holders' notional moved by 5 a contract; member 2's contract is new.
    assert_money(dense(marked, 3, 3)[:, 0], floats(10, -5, 0))
    assert_money(dense(pairs, 3, 3)[:, 0], floats(0, 0, 110))


def test_mark_unpriced_goes_by_event_time() -> None:
    book = book_of()
    # Equal event times: the later in the batch wins.
    marked = book.mark_unpriced(ints(0, 1, 0), floats(100, 50, 101), floats(5, 2, 5))
    assert marked is not None and sorted(marked.instruments.tolist()) == [0, 1]
    assert book.mark[:2].tolist() == [101, 50] and book.trade_ts[:2].tolist() == [5, 2]
    book.apply_trades(ints(0), ints(0), floats(2), floats(100), None)
    assert_money(book.variation_margin[0], 2 * (101 - 100))

    # A trade older than the one marked at, arriving later, moves nothing.
    marked = book.mark_unpriced(ints(0), floats(90), floats(4))
    assert book.mark[0] == 101 and book.trade_ts[0] == 5
    assert_money(dense(marked, 3, 3), np.zeros((3, 3)))
    assert_money(book.variation_margin[0], 2.0)

    # A newer one does, and holders' VM and notional with it.
    marked = book.mark_unpriced(ints(0), floats(103), floats(6))
    assert book.mark[0] == 103 and book.trade_ts[0] == 6
    assert marked is not None and marked.members.tolist() == [0]
    assert_money(dense(marked, 3, 3)[:, 0], floats(2 * 2, 0, 0))
    assert_money(book.variation_margin[0], 2 * (103 - 100))

    # Within a batch, an older trade after a newer one is ignored too.
    book.mark_unpriced(ints(0, 0), floats(110, 104), floats(8, 7))
    assert book.mark[0] == 110 and book.trade_ts[0] == 8
    assert_money(book.variation_margin[0], 2 * (110 - 100))

    # A price beats every trade price, whatever the event times.
    book.apply_prices(ints(0), floats(105), floats(1))
    assert book.mark[0] == 105
    assert book.mark_unpriced(ints(0), floats(120), floats(9)) is None
    assert book.mark[0] == 105 and book.trade_ts[0] == 8
    assert_money(book.variation_margin[0], 2 * (105 - 100))
    # In a mixed batch only the unpriced instrument moves.
    marked = book.mark_unpriced(ints(0, 1), floats(130, 55), floats(10, 3))
    assert marked is not None and marked.instruments.tolist() == [1]
    assert book.mark[:2].tolist() == [105, 55] and book.trade_ts[:2].tolist() == [8, 3]
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))


def test_marks_reports_kind_event_time_and_price() -> None:
    book = book_of(2, 3)
    book.apply_prices(ints(0), floats(20), floats(2))
    book.mark_unpriced(ints(0, 1), floats(19, 7), floats(3, 1))
    marks = book.marks()

    assert marks.kind.tolist() == [PRICE_MARK, TRADE_MARK, NO_MARK]
    assert marks.ts.tolist() == [2, 1, -np.inf]
    assert marks.price.tolist() == [20, 7, 0]
    # A copy: changing it leaves the book alone.
    marks.price[0] = 99
    assert book.mark[0] == 20


def test_a_priced_instrument_keeps_its_mark_and_a_trade_adds_x_k_p_minus_t() -> None:
    book = book_of()
    book.set_multiplier(0, 10.0)
    book.apply_prices(ints(0), floats(100), floats(1))
    marked, _ = trade(book, ints(0, 1), ints(0, 0), floats(3, -2), floats(98, 101),
                      floats(2, 3))

    assert marked is None
    assert book.mark[0] == 100
    # 3 * 10 * (100 - 98) and -2 * 10 * (100 - 101).
    assert_money(book.variation_margin[:2], floats(60, 20))
    assert_money(book.position[:2, 0], floats(3, -2))
    assert_money(book.cost[:2, 0], floats(3 * 98, -2 * 101))


def test_a_mark_move_adds_q_k_dp() -> None:
    book = book_of()
    book.set_multiplier(1, 100.0)
    book.apply_prices(ints(1), floats(50), floats(0))
    book.apply_trades(ints(0, 1), ints(1, 1), floats(4, -3), floats(50, 50), None)
    book.apply_prices(ints(1), floats(52.5), floats(1))

    # 4 * 100 * 2.5 and -3 * 100 * 2.5.
    assert_money(book.variation_margin[:3], floats(1000, -750, 0))
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))


def test_the_first_price_of_an_instrument_moves_no_vm() -> None:
    book = book_of()
    change, stale = book.apply_prices(ints(2), floats(70), floats(3))

    assert not stale.any()
    assert book.mark[2] == 70 and bool(book.has_price[2])
    assert_money(book.variation_margin[:3], floats(0, 0, 0))
    assert len(change.members) == 0 and change.instruments.tolist() == [2]


# Stale prices and collateral


def test_apply_prices_ignores_older_prices_and_reports_them() -> None:
    book = book_of()
    trade(book, ints(0), ints(0), floats(1), floats(100), floats(0))
    book.apply_prices(ints(0), floats(101), floats(5))

    change, stale = book.apply_prices(ints(0), floats(99), floats(4))
    assert stale.tolist() == [True]
    assert book.mark[0] == 101 and book.price_ts[0] == 5
    assert len(change.instruments) == 0
    assert_money(book.variation_margin[0], 1.0)

    # An equal time is applied.
    _, stale = book.apply_prices(ints(0), floats(103), floats(5))
    assert stale.tolist() == [False]
    assert book.mark[0] == 103
    assert_money(book.variation_margin[0], 3.0)


def test_stale_prices_within_one_batch_are_judged_in_arrival_order() -> None:
    book = book_of()
    trade(book, ints(0), ints(0), floats(2), floats(100), floats(0))
    change, stale = book.apply_prices(ints(0, 1, 0, 0, 1), floats(101, 7, 102, 103, 8),
                                      floats(3, 2, 1, 3, 1))

    # Instrument 0: ts 3 applies, ts 1 is older than it, ts 3 again applies.
    # Instrument 1: ts 2 applies, ts 1 is older.
    assert stale.tolist() == [False, False, True, False, True]
    assert book.mark[0] == 103 and book.mark[1] == 7
    assert book.price_ts[:2].tolist() == [3.0, 2.0]
    assert_money(book.variation_margin[0], 2 * (103 - 100))
    assert sorted(change.instruments.tolist()) == [0, 1]


def test_apply_collateral_keeps_the_newest_state_per_member() -> None:
    book = book_of()
    changed, stale = book.apply_collateral(ints(1, 0, 1), floats(10, 20, 30), floats(1, 2, 3),
                                           floats(5, 1, 4))
    assert stale.tolist() == [False, False, True]
    assert sorted(changed.tolist()) == [0, 1]
    assert book.initial_margin[:2].tolist() == [20, 10]
    assert book.cash[:2].tolist() == [2, 1]
    assert book.collateral_ts[:3].tolist() == [1, 5, -np.inf]

    changed, stale = book.apply_collateral(ints(1, 0), floats(40, 50), floats(4, 5),
                                           floats(2, 1))
    assert stale.tolist() == [True, False]
    assert changed.tolist() == [0]
    assert book.initial_margin[:2].tolist() == [50, 10]
    assert book.cash[:2].tolist() == [5, 1]


# Settlement: resettle, remark and settled-side trades


def test_resettle_books_contracts_at_the_marks_at_t_and_later_trades_at_their_price() -> None:
    """Member 0 is settled through T = 3, when the marks were 102 and 48.

    Instrument 0 (multiplier 10): bought 3 at 100 at ts 1, and 1 at 104 at ts 5 (after
    T); marked at 106 now. Instrument 1 (multiplier 1): sold 2 at 50 at ts 1; marked
    at 47 now. Before: VM = 10 * (4 * 106 - 404) + (-2 * 47 + 100) = 200 + 6 = 206.

    After: settled = (4 - 1, -2) = (3, -2); cost = (3 * 102 + 104, -2 * 48) = (410, -96);
    VM = 10 * (424 - 410) + (-94 + 96) = 142, which is 206 less what was paid through T:
    10 * 3 * (102 - 100) + (-2) * (48 - 50) = 64. Member 1 is not touched.
    """
    book = book_of()
    book.set_multiplier(0, 10.0)
    trade(book, ints(0, 0, 1), ints(0, 1, 0), floats(3, -2, 1), floats(100, 50, 100),
          floats(1, 1, 1))
    book.apply_prices(ints(0, 1), floats(102, 48), floats(2, 2))
    trade(book, ints(0), ints(0), floats(1), floats(104), floats(5))
    book.apply_prices(ints(0, 1), floats(106, 47), floats(6, 4))
    assert_money(book.variation_margin[:2], floats(206, 60))

    book.resettle(ints(0), (ints(0), ints(0), floats(1), floats(104)), floats(102, 48, 0))
    assert_money(book.settled_quantity[0, :2], floats(3, -2))
    assert_money(book.cost[0, :2], floats(410, -96))
    assert_money(book.variation_margin[:2], floats(142, 60))
    assert_money(book.settled_quantity[1, :2], floats(0, 0))
    assert_money(book.cost[1, :2], floats(100, 0))
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))
    # Positions and marks do not move, nor does any notional.
    assert_money(book.position[:2, :2], np.array([[4, -2], [1, 0]]))
    assert book.mark[:2].tolist() == [106, 47]

    # Settled through now, with no later trades: every contract is settled-side, at the
    # current marks, and nothing is left unsettled. Resettling replaces, never adds.
    book.resettle(ints(0, 1), NO_LATER, book.mark.copy())
    assert_money(book.variation_margin[:3], floats(0, 0, 0))
    assert_money(book.cost[:2, :2], np.array([[4 * 106, -2 * 47], [106, 0]]))
    assert_money(book.settled_quantity[:2, :2], book.position[:2, :2])

    # From there VM accrues from the settled marks only.
    book.apply_prices(ints(0), floats(107), floats(7))
    assert_money(book.variation_margin[:2], floats(10 * 4 * 1, 10 * 1 * 1))


def test_remark_reprices_settled_side_contracts_only() -> None:
    """Member 0 is settled through T = 4 at the mark 102 (price at ts 3), with 3
    contracts (multiplier 10); 1 more bought at 103 after T. The mark is 104 now:
    VM = 10 * (3 * (104 - 102) + (104 - 103)) = 70, cost = 306 + 103 = 409.

    A late price 101 at ts 3.5 moves p(T) by -1: the 3 settled-side contracts cost
    3 less (406) and VM = 10 * (4 * 104 - 406) = 100. The later contract does not move.
    """
    book = book_of()
    book.set_multiplier(0, 10.0)
    book.apply_prices(ints(0), floats(100), floats(1))
    book.apply_trades(ints(0, 1), ints(0, 0), floats(3, 2), floats(100, 100), None)
    book.apply_prices(ints(0), floats(102), floats(3))
    book.resettle(ints(0), NO_LATER, floats(102, 0, 0))
    book.apply_prices(ints(0), floats(104), floats(5))
    book.apply_trades(ints(0), ints(0), floats(1), floats(103), None)
    assert_money(book.variation_margin[:2], floats(70, 80))
    assert_money(book.cost[:2, 0], floats(409, 200))
    assert_money(book.settled_quantity[:2, 0], floats(3, 0))

    # Member 1 has no settled-side contracts and nobody holds instrument 1.
    book.remark(ints(0, 1), ints(0, 1), floats(-1, 3))
    assert_money(book.cost[:2, :2], np.array([[406, 0], [200, 0]]))
    assert_money(book.variation_margin[:2], floats(100, 80))
    assert_money(book.settled_quantity[:2, 0], floats(3, 0))
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))
    assert book.mark[0] == 104


def test_settled_side_trades_are_booked_at_the_settled_mark() -> None:
    """Member 0 is settled through T at the mark 102 (multiplier 10) with 3 contracts
    bought at 100; the mark is 106 now: VM = 10 * 3 * 4 = 120.

    Then, in one batch: member 0 buys 2 at 99 at ts <= T (settled-side: booked at 102),
    member 1 (not settled) sells 1 at 101, and member 0 buys 1 at 105 after T.
    VM(0) += 10 * (2 * (106 - 102) + (106 - 105)) = 90, so 210; cost(0) = 306 + 204 + 105
    = 615, and 10 * (6 * 106 - 615) = 210. VM(1) = -10 * (106 - 101) = -50.
    """
    book = book_of()
    book.set_multiplier(0, 10.0)
    book.apply_prices(ints(0), floats(102), floats(2))
    book.apply_trades(ints(0), ints(0), floats(3), floats(100), None)
    book.resettle(ints(0), NO_LATER, floats(102, 0, 0))
    book.apply_prices(ints(0), floats(106), floats(6))
    assert_money(book.variation_margin[0], 120)

    pairs = book.apply_trades(ints(0, 1, 0), ints(0, 0, 0), floats(2, -1, 1),
                              floats(102, 101, 105), bools(True, False, False))
    assert_money(book.variation_margin[:2], floats(210, -50))
    assert_money(book.cost[:2, 0], floats(615, -101))
    assert_money(book.position[:2, 0], floats(6, -1))
    assert_money(book.settled_quantity[:2, 0], floats(5, 0))
    assert pairs.members.tolist() == [0, 1] and pairs.instruments.tolist() == [0, 0]
    assert_money(pairs.notional, floats(3 * 10 * 106, -10 * 106))

    # With no mask no contract is settled-side.
    book.apply_trades(ints(0), ints(0), floats(-4), floats(106), None)
    assert_money(book.settled_quantity[:2, 0], floats(5, 0))
    assert_money(book.position[0, 0], 2)
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))


# Multipliers, forgetting and room


def test_set_multiplier_moves_vm_and_notional() -> None:
    book = book_of()
    book.apply_prices(ints(0), floats(20), floats(0))
    book.apply_trades(ints(0, 2), ints(0, 0), floats(3, -1), floats(18, 20), None)
    before = book.notional()
    change = book.set_multiplier(0, 5.0)

    # VM: 3 * (20 - 18) = 6 at multiplier 1 becomes 30 at 5.
    assert_money(book.variation_margin[:3], floats(30, 0, 0))
    assert_money(book.notional()[:, 0], floats(300, 0, -100))
    assert change.members.tolist() == [0, 2] and change.instruments.tolist() == [0]
    assert_money(dense(change, 3, 3), book.notional() - before)

    # An instrument nobody holds changes no VM and no notional.
    change = book.set_multiplier(1, 7.0)
    assert len(change.members) == 0
    assert book.multiplier[1] == 7.0
    assert_money(book.variation_margin[:3], floats(30, 0, 0))


def test_forget_drops_members_and_keeps_the_others() -> None:
    book = book_of()
    trade(book, ints(0, 1), ints(0, 0), floats(1, 2), floats(10, 10), floats(0, 0))
    book.apply_prices(ints(0), floats(12), floats(1))
    book.apply_collateral(ints(0, 1), floats(5, 6), floats(1, 2), floats(3, 3))
    book.resettle(ints(1), NO_LATER, book.mark.copy())
    assert book.settled_quantity[1, 0] == 2
    book.apply_prices(ints(0), floats(13), floats(2))
    book.forget(ints(1))

    for array in (book.position, book.cost, book.settled_quantity):
        assert not array[1].any()
    assert (book.variation_margin[1], book.initial_margin[1], book.cash[1]) == (0, 0, 0)
    assert book.collateral_ts[1] == -np.inf
    assert_money(book.variation_margin[0], 3.0)
    assert book.position[0, 0] == 1 and book.initial_margin[0] == 5
    # The forgotten member's next collateral is fresh even if older than the last one.
    _, stale = book.apply_collateral(ints(1), floats(7), floats(0), floats(0))
    assert stale.tolist() == [False]


def test_reserve_grows_capacity_and_keeps_the_data() -> None:
    book = book_of(2, 2)
    book.set_multiplier(1, 10.0)
    trade(book, ints(0, 1), ints(1, 0), floats(2, -3), floats(5, 7), floats(1, 1))
    book.apply_prices(ints(1), floats(6), floats(4))
    book.apply_collateral(ints(1), floats(9), floats(3), floats(2))
    book.resettle(ints(0), NO_LATER, floats(5.5, 0))
    snapshot = {name: getattr(book, name).copy() for name in (
        "position", "cost", "settled_quantity", "mark", "multiplier", "trade_ts",
        "variation_margin", "initial_margin")}

    capacity = book.position.shape
    book.reserve(40, 30)
    assert (book.n_members, book.n_instruments) == (40, 30)
    assert book.position.shape[0] >= 40 and book.position.shape[1] >= 30
    assert book.position.shape != capacity
    for name, before in snapshot.items():
        after = getattr(book, name)
        assert_money(after[tuple(slice(0, n) for n in before.shape)], before)
    assert not book.position[2:40].any() and not book.position[:, 2:30].any()
    assert not book.settled_quantity[2:40].any() and not book.settled_quantity[:, 2:30].any()
    assert (book.multiplier[2:30] == 1.0).all()
    assert (book.price_ts[2:30] == -np.inf).all() and not book.has_mark[2:30].any()
    assert (book.trade_ts[2:30] == -np.inf).all()
    assert (book.collateral_ts[2:40] == -np.inf).all()
    assert book.notional().shape == (40, 30)
    assert len(book.marks().kind) == 30 and (book.marks().kind[2:] == NO_MARK).all()
    assert_money(book.variation_margin[:40], vm_from_state(book))


# newest_per_key against one event at a time

events = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5).map(float)), max_size=20)
applied_times = st.lists(st.sampled_from([-np.inf, 0.0, 2.0, 4.0]), min_size=4, max_size=4)


@settings(max_examples=150, deadline=None)
@given(events, applied_times)
def test_newest_per_key_equals_one_at_a_time(batch: list[tuple[int, float]],
                                             applied: list[float]) -> None:
    keys = np.array([k for k, _ in batch], dtype=np.intp)
    ts = np.array([t for _, t in batch], dtype=np.float64)
    winners, stale = newest_per_key(keys, ts, np.array(applied))

    newest, applied_at, expected_stale = list(applied), {}, []
    for i, (k, t) in enumerate(batch):
        expected_stale.append(t < newest[k])
        if t >= newest[k]:
            newest[k], applied_at[k] = t, i
    assert stale.tolist() == expected_stale
    assert sorted(winners.tolist()) == sorted(applied_at.values())
    assert winners.dtype == np.intp


# Sequences of batches against a loop


class LoopBook:
    """The book in nested lists, one event at a time, each rule written out."""

    def __init__(self, n_members: int, n_instruments: int) -> None:
        self.q = [[0.0] * n_instruments for _ in range(n_members)]
        self.cost = [[0.0] * n_instruments for _ in range(n_members)]
        self.settled = [[0.0] * n_instruments for _ in range(n_members)]
        self.k = [1.0] * n_instruments
        self.mark = [0.0] * n_instruments
        self.has_mark = [False] * n_instruments
        self.has_price = [False] * n_instruments
        self.price_ts = [-np.inf] * n_instruments
        self.trade_ts = [-np.inf] * n_instruments
        self.vm = [0.0] * n_members
        self.collateral = [(0.0, 0.0, -np.inf)] * n_members
        # Trades booked at their own price: (member, instrument, quantity, price).
        self.trades: list[tuple[int, int, float, float]] = []

    def move(self, j: int, price: float) -> None:
        if self.has_mark[j]:
            for m in range(len(self.vm)):
                self.vm[m] += self.q[m][j] * self.k[j] * (price - self.mark[j])
        self.mark[j], self.has_mark[j] = price, True

    def mark_unpriced(self, j: int, price: float, ts: float) -> None:
        if not self.has_price[j] and ts >= self.trade_ts[j]:
            self.move(j, price)
            self.trade_ts[j] = ts

    def book(self, m: int, j: int, x: float, booked: float, settled: bool) -> None:
        self.vm[m] += x * self.k[j] * (self.mark[j] - booked)
        self.q[m][j] += x
        self.cost[m][j] += x * booked
        if settled:
            self.settled[m][j] += x
        else:
            self.trades.append((m, j, x, booked))

    def price(self, j: int, price: float, ts: float) -> bool:
        if ts < self.price_ts[j]:
            return True
        self.move(j, price)
        self.has_price[j], self.price_ts[j] = True, ts
        return False

    def post(self, m: int, initial_margin: float, cash: float, ts: float) -> bool:
        if ts < self.collateral[m][2]:
            return True
        self.collateral[m] = (initial_margin, cash, ts)
        return False

    def resettle(self, m: int, later: list[tuple[int, int, float, float]],
                 price_at: tuple[float, ...]) -> None:
        for j in range(len(self.k)):
            after = [(x, t) for by, i, x, t in later if (by, i) == (m, j)]
            self.settled[m][j] = self.q[m][j] - sum(x for x, _ in after)
            self.cost[m][j] = self.settled[m][j] * price_at[j] + sum(x * t for x, t in after)
        self.vm[m] = sum(self.k[j] * (self.q[m][j] * self.mark[j] - self.cost[m][j])
                         for j in range(len(self.k)))

    def remark(self, m: int, j: int, move: float) -> None:
        self.cost[m][j] += self.settled[m][j] * move
        self.vm[m] -= self.k[j] * self.settled[m][j] * move

    def set_multiplier(self, j: int, k: float) -> None:
        for m in range(len(self.vm)):
            self.vm[m] += (k - self.k[j]) * (self.q[m][j] * self.mark[j] - self.cost[m][j])
        self.k[j] = k

    def forget(self, m: int) -> None:
        n = len(self.k)
        self.q[m], self.cost[m], self.settled[m] = [0.0] * n, [0.0] * n, [0.0] * n
        self.vm[m] = 0.0
        self.collateral[m] = (0.0, 0.0, -np.inf)
        self.trades = [t for t in self.trades if t[0] != m]

    def notional(self) -> FloatArray:
        return np.array([[self.q[m][j] * self.k[j] * self.mark[j] for j in range(len(self.k))]
                         for m in range(len(self.vm))])

    def marks(self) -> tuple[list[int], list[float], list[float]]:
        """Kind, event time and price of each instrument's mark."""
        kind = [PRICE_MARK if p else TRADE_MARK if h else NO_MARK
                for p, h in zip(self.has_price, self.has_mark, strict=True)]
        ts = [p if h else t for p, t, h in zip(self.price_ts, self.trade_ts, self.has_price,
                                               strict=True)]
        return kind, ts, self.mark


@dataclass(frozen=True)
class Op:
    """A batch: ``rows`` of events; a resettle also picks ``later`` trades (indices into
    its members' own trades) and settles at ``price_at``; a remark moves ``moves``
    (instrument, move) for its members."""

    kind: str
    rows: tuple[tuple[float, ...], ...]
    later: tuple[int, ...] = ()
    price_at: tuple[float, ...] = ()
    moves: tuple[tuple[float, ...], ...] = ()


member = st.integers(0, N_MEMBERS - 1)
instrument = st.integers(0, N_INSTRUMENTS - 1)
# Halves and whole contracts keep every sum exact.
price = st.integers(2, 400).map(lambda x: x / 2)
quantity = st.sampled_from([-20.0, -5.0, -1.0, 0.0, 1.0, 3.0, 10.0])
ts = st.integers(0, 6).map(float)


def op(kind: str, row: st.SearchStrategy[tuple[float, ...]], max_size: int = 5,
       unique: bool = False) -> st.SearchStrategy[Op]:
    rows = st.lists(row, min_size=1, max_size=max_size,
                    unique_by=(lambda r: r[:2]) if unique else None)
    return rows.map(lambda r: Op(kind, tuple(r)))


# member, instrument, quantity, trade price, event time, settled-side, booked price
trade_row = st.tuples(member, instrument, quantity, price, ts, st.booleans(), price)
members = st.lists(member, min_size=1, max_size=2, unique=True).map(
    lambda ms: tuple((m,) for m in ms))
resettles = st.builds(
    lambda rows, later, price_at: Op("resettle", rows, tuple(later), tuple(price_at)),
    members, st.lists(st.integers(0, 50), max_size=4),
    st.lists(price, min_size=N_INSTRUMENTS, max_size=N_INSTRUMENTS))
remarks = st.builds(
    lambda rows, moves: Op("remark", rows, moves=tuple(moves)), members,
    st.lists(st.tuples(instrument, st.integers(-20, 20).map(lambda x: x / 2)), min_size=1,
             max_size=N_INSTRUMENTS, unique_by=lambda r: r[0]))

ops = st.one_of(
    op("trades", trade_row, max_size=6),
    op("trades", trade_row, max_size=6),
    op("prices", st.tuples(instrument, price, ts)),
    op("prices", st.tuples(instrument, price, ts)),
    op("collateral", st.tuples(member, price, price, ts)),
    resettles,
    remarks,
    op("multiplier", st.tuples(instrument, st.sampled_from([0.5, 1.0, 10.0, 100.0])), 1),
    op("forget", st.tuples(member), max_size=2, unique=True),
)


def column(rows: Sequence[tuple[float, ...]], i: int, index: bool = False) -> np.ndarray:
    return np.array([r[i] for r in rows], dtype=np.intp if index else np.float64)


def later_trades(plain: LoopBook, step: Op) -> list[tuple[int, int, float, float]]:
    """The resettled members' own trades picked as after the settlement time."""
    settled = {int(m) for (m,) in step.rows}
    own = [t for t in plain.trades if t[0] in settled]
    return [own[i] for i in sorted({i % len(own) for i in step.later})] if own else []


@settings(max_examples=100, deadline=None)
@given(st.lists(ops, min_size=1, max_size=10))
def test_batches_equal_one_event_at_a_time(sequence: list[Op]) -> None:
    book, plain = book_of(), LoopBook(N_MEMBERS, N_INSTRUMENTS)
    for step in sequence:
        rows, before = step.rows, book.notional()
        changes: list[BlockChange | PairChange | None] = []
        if step.kind == "trades":
            instruments, own = column(rows, 1, True), column(rows, 3)
            changes.append(book.mark_unpriced(instruments, own, column(rows, 4)))
            settled = np.array([r[5] for r in rows], dtype=np.bool_)
            booked = np.where(settled, column(rows, 6), own)
            changes.append(book.apply_trades(column(rows, 0, True), instruments,
                                             column(rows, 2), booked,
                                             settled if settled.any() else None))
            for m, j, x, p, t, side, at in rows:
                plain.mark_unpriced(int(j), p, t)
                plain.book(int(m), int(j), x, at if side else p, bool(side))
        elif step.kind == "prices":
            change, stale = book.apply_prices(column(rows, 0, True), column(rows, 1),
                                              column(rows, 2))
            changes.append(change)
            assert stale.tolist() == [plain.price(int(j), p, t) for j, p, t in rows]
        elif step.kind == "collateral":
            _, stale = book.apply_collateral(column(rows, 0, True), column(rows, 1),
                                             column(rows, 2), column(rows, 3))
            assert stale.tolist() == [plain.post(int(m), im, c, t) for m, im, c, t in rows]
        elif step.kind == "resettle":
            later = later_trades(plain, step)
            book.resettle(column(rows, 0, True), (
                column(later, 0, True), column(later, 1, True), column(later, 2),
                column(later, 3)), np.array(step.price_at))
            for (m,) in rows:
                plain.resettle(int(m), later, step.price_at)
        elif step.kind == "remark":
            book.remark(column(rows, 0, True), column(step.moves, 0, True),
                        column(step.moves, 1))
            for (m,) in rows:
                for j, move in step.moves:
                    plain.remark(int(m), int(j), move)
        elif step.kind == "multiplier":
            ((j, k),) = rows
            changes.append(book.set_multiplier(int(j), k))
            plain.set_multiplier(int(j), k)
        else:
            book.forget(column(rows, 0, True))
            for (m,) in rows:
                plain.forget(int(m))
            before = book.notional()  # forgetting reports no notional change

        n, k = N_MEMBERS, N_INSTRUMENTS
        assert_money(book.position[:n, :k], plain.q)
        assert_money(book.cost[:n, :k], plain.cost)
        assert_money(book.settled_quantity[:n, :k], plain.settled)
        assert_money(book.mark[:k], plain.mark)
        assert_money(book.multiplier[:k], plain.k)
        assert_money(book.variation_margin[:n], plain.vm)
        assert_money(book.variation_margin[:n], vm_from_state(book))
        assert_money(book.initial_margin[:n], [c[0] for c in plain.collateral])
        assert_money(book.cash[:n], [c[1] for c in plain.collateral])
        marks, (kind, marked_ts, marked_at) = book.marks(), plain.marks()
        assert marks.kind.tolist() == kind
        assert marks.ts.tolist() == marked_ts
        assert_money(marks.price, marked_at)
        assert_money(book.notional(), plain.notional())
        reported = sum((dense(c, n, k) for c in changes), np.zeros((n, k)))
        assert_money(reported, book.notional() - before)


@pytest.mark.parametrize("prices_first", [False, True])
def test_prices_and_trades_in_either_order_leave_the_same_book(prices_first: bool) -> None:
    """Prices decide marks and trades only mark what has no price, so the VM does not
    depend on whether the trades or the prices came first."""
    book = book_of()
    prices = (ints(0, 0), floats(50, 40), floats(2, 1))
    trades = (ints(0, 1), ints(0, 0), floats(2, -2), floats(45, 47), floats(3, 3))
    if prices_first:
        book.apply_prices(*prices)
        trade(book, *trades)
    else:
        trade(book, *trades)
        book.apply_prices(*prices)

    assert book.mark[0] == 50
    assert book.marks().kind[0] == PRICE_MARK
    assert_money(book.variation_margin[:2], floats(2 * (50 - 45), -2 * (50 - 47)))
