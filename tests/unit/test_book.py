"""The book: marks, variation margin, stale events, settlement and notional changes.

Small hand-computed books with exact answers, and Hypothesis sequences of batches
checked against a loop that applies every event one at a time by the rules of
``docs/methodology.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.book import BlockChange, Book, PairChange, last_per_key, newest_per_key
from risk.model import FloatArray, IndexArray
from tests.tolerances import MONEY_ATOL, MONEY_RTOL

N_MEMBERS, N_INSTRUMENTS = 3, 3


def ints(*values: int) -> IndexArray:
    return np.array(values, dtype=np.intp)


def floats(*values: float) -> FloatArray:
    return np.array(values, dtype=np.float64)


def book_of(n_members: int = N_MEMBERS, n_instruments: int = N_INSTRUMENTS) -> Book:
    book = Book()
    book.reserve(n_members, n_instruments)
    return book


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


def test_trades_on_an_unpriced_instrument_mark_it_at_the_latest_trade_price() -> None:
    book = book_of()
    marked, pairs = book.apply_trades(ints(0, 1), ints(0, 0), floats(2, -1), floats(100, 105))

    assert book.mark[0] == 105
    assert bool(book.has_mark[0]) and not bool(book.has_price[0])
    # Member 0 bought 2 at 100 and is marked at 105; member 1 sold at the mark.
    assert_money(book.variation_margin[:2], floats(10, 0))
    # Nobody held the instrument before the batch, so only the traded contracts count.
    assert marked is not None and len(marked.members) == 0
    assert pairs.members.tolist() == [0, 1] and pairs.instruments.tolist() == [0, 0]
    assert_money(pairs.notional, floats(210, -105))

    # A later trade still moves the mark of an unpriced instrument, holders with it.
    book.apply_trades(ints(2), ints(0), floats(1), floats(110))
    assert book.mark[0] == 110
    assert_money(book.variation_margin[:3], floats(20, -5, 0))


def test_a_priced_instrument_keeps_its_mark_and_a_trade_adds_x_k_p_minus_t() -> None:
    book = book_of()
    book.set_multiplier(0, 10.0)
    book.apply_prices(ints(0), floats(100), floats(1))
    marked, _ = book.apply_trades(ints(0, 1), ints(0, 0), floats(3, -2), floats(98, 101))

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
    book.apply_trades(ints(0, 1), ints(1, 1), floats(4, -3), floats(50, 50))
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
    book.apply_trades(ints(0), ints(0), floats(1), floats(100))
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
    book.apply_trades(ints(0), ints(0), floats(2), floats(100))
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


# Settlement, multipliers, forgetting and room


def test_settle_zeroes_vm_and_records_what_it_added_to_cost() -> None:
    book = book_of()
    book.set_multiplier(0, 10.0)
    book.apply_trades(ints(0, 0, 1), ints(0, 1, 0), floats(2, -1, 1), floats(100, 40, 100))
    book.apply_prices(ints(0, 1), floats(103, 38), floats(1, 1))
    assert_money(book.variation_margin[:2], floats(2 * 10 * 3 + 2, 10 * 3))

    book.settle(ints(0))
    assert_money(book.variation_margin[:2], floats(0, 30))
    assert_money(book.cost[0, :2], floats(2 * 103, -38))
    assert_money(book.settled[0, :2], floats(2 * 103 - 200, -38 + 40))
    assert_money(book.settled[1, :2], floats(0, 0))
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))

    # After settlement VM accrues from the settled marks only.
    book.apply_prices(ints(0), floats(104), floats(2))
    assert_money(book.variation_margin[:2], floats(2 * 10 * 1, 10 * 4))


def test_add_settled_lowers_vm_by_multiplier_times_amount() -> None:
    book = book_of()
    book.set_multiplier(1, 10.0)
    book.apply_trades(ints(0, 1), ints(1, 1), floats(1, 1), floats(50, 50))
    book.apply_prices(ints(1), floats(53), floats(1))
    book.add_settled(ints(0, 1), ints(1, 1), floats(2.5, -1))

    assert_money(book.variation_margin[:2], floats(30 - 25, 30 + 10))
    assert_money(book.cost[:2, 1], floats(52.5, 49))
    assert_money(book.settled[:2, 1], floats(2.5, -1))
    assert_money(book.variation_margin[: book.n_members], vm_from_state(book))


def test_set_multiplier_moves_vm_and_notional() -> None:
    book = book_of()
    book.apply_prices(ints(0), floats(20), floats(0))
    book.apply_trades(ints(0, 2), ints(0, 0), floats(3, -1), floats(18, 20))
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
    book.apply_trades(ints(0, 1), ints(0, 0), floats(1, 2), floats(10, 10))
    book.apply_prices(ints(0), floats(12), floats(1))
    book.apply_collateral(ints(0, 1), floats(5, 6), floats(1, 2), floats(3, 3))
    book.settle(ints(1))
    book.apply_prices(ints(0), floats(13), floats(2))
    book.forget(ints(1))

    for array in (book.position, book.cost, book.settled):
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
    book.apply_trades(ints(0, 1), ints(1, 0), floats(2, -3), floats(5, 7))
    book.apply_prices(ints(1), floats(6), floats(4))
    book.apply_collateral(ints(1), floats(9), floats(3), floats(2))
    snapshot = {name: getattr(book, name).copy() for name in (
        "position", "cost", "mark", "multiplier", "variation_margin", "initial_margin")}

    capacity = book.position.shape
    book.reserve(40, 30)
    assert (book.n_members, book.n_instruments) == (40, 30)
    assert book.position.shape[0] >= 40 and book.position.shape[1] >= 30
    assert book.position.shape != capacity
    for name, before in snapshot.items():
        after = getattr(book, name)
        assert_money(after[tuple(slice(0, n) for n in before.shape)], before)
    assert not book.position[2:40].any() and not book.position[:, 2:30].any()
    assert (book.multiplier[2:30] == 1.0).all()
    assert (book.price_ts[2:30] == -np.inf).all() and not book.has_mark[2:30].any()
    assert (book.collateral_ts[2:40] == -np.inf).all()
    assert book.notional().shape == (40, 30)
    assert_money(book.variation_margin[:40], vm_from_state(book))


# newest_per_key and last_per_key against one event at a time

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


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=20))
def test_last_per_key_finds_each_keys_last_occurrence(keys: list[int]) -> None:
    distinct, last = last_per_key(np.array(keys, dtype=np.intp))

    expected = {k: i for i, k in enumerate(keys)}
    assert distinct.tolist() == sorted(expected)
    assert last.tolist() == [expected[k] for k in sorted(expected)]


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
        self.price_ts = [-np.inf] * n_instruments
        self.vm = [0.0] * n_members
        self.collateral = [(0.0, 0.0, -np.inf)] * n_members

    def move(self, j: int, price: float) -> None:
        if self.has_mark[j]:
            for m in range(len(self.vm)):
                self.vm[m] += self.q[m][j] * self.k[j] * (price - self.mark[j])
        self.mark[j], self.has_mark[j] = price, True

    def trade(self, m: int, j: int, x: float, t: float) -> None:
        if self.price_ts[j] == -np.inf:
            self.move(j, t)
        self.vm[m] += x * self.k[j] * (self.mark[j] - t)
        self.q[m][j] += x
        self.cost[m][j] += x * t

    def price(self, j: int, price: float, ts: float) -> bool:
        if ts < self.price_ts[j]:
            return True
        self.move(j, price)
        self.price_ts[j] = ts
        return False

    def post(self, m: int, initial_margin: float, cash: float, ts: float) -> bool:
        if ts < self.collateral[m][2]:
            return True
        self.collateral[m] = (initial_margin, cash, ts)
        return False

    def settle(self, m: int) -> None:
        self.vm[m] = 0.0
        for j in range(len(self.k)):
            marked = self.q[m][j] * self.mark[j]
            self.settled[m][j] += marked - self.cost[m][j]
            self.cost[m][j] = marked

    def add_settled(self, m: int, j: int, amount: float) -> None:
        self.cost[m][j] += amount
        self.settled[m][j] += amount
        self.vm[m] -= self.k[j] * amount

    def set_multiplier(self, j: int, k: float) -> None:
        for m in range(len(self.vm)):
            self.vm[m] += (k - self.k[j]) * (self.q[m][j] * self.mark[j] - self.cost[m][j])
        self.k[j] = k

    def forget(self, m: int) -> None:
        n = len(self.k)
        self.q[m], self.cost[m], self.settled[m] = [0.0] * n, [0.0] * n, [0.0] * n
        self.vm[m] = 0.0
        self.collateral[m] = (0.0, 0.0, -np.inf)

    def notional(self) -> FloatArray:
        return np.array([[self.q[m][j] * self.k[j] * self.mark[j] for j in range(len(self.k))]
                         for m in range(len(self.vm))])


@dataclass(frozen=True)
class Op:
    kind: str
    rows: tuple[tuple[float, ...], ...]


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


ops = st.one_of(
    op("trades", st.tuples(member, instrument, quantity, price), max_size=6),
    op("trades", st.tuples(member, instrument, quantity, price), max_size=6),
    op("prices", st.tuples(instrument, price, ts)),
    op("prices", st.tuples(instrument, price, ts)),
    op("collateral", st.tuples(member, price, price, ts)),
    op("settle", st.tuples(member), max_size=2, unique=True),
    op("add_settled", st.tuples(member, instrument, st.integers(-40, 40).map(lambda x: x / 2)),
       max_size=3, unique=True),
    op("multiplier", st.tuples(instrument, st.sampled_from([0.5, 1.0, 10.0, 100.0])), 1),
    op("forget", st.tuples(member), max_size=2, unique=True),
)


def column(rows: tuple[tuple[float, ...], ...], i: int, index: bool = False) -> np.ndarray:
    return np.array([r[i] for r in rows], dtype=np.intp if index else np.float64)


@settings(max_examples=60, deadline=None)
@given(st.lists(ops, min_size=1, max_size=10))
def test_batches_equal_one_event_at_a_time(sequence: list[Op]) -> None:
    book, plain = book_of(), LoopBook(N_MEMBERS, N_INSTRUMENTS)
    for step in sequence:
        rows, before = step.rows, book.notional()
        changes: list[BlockChange | PairChange | None] = []
        if step.kind == "trades":
            changes.extend(book.apply_trades(column(rows, 0, True), column(rows, 1, True),
                                             column(rows, 2), column(rows, 3)))
            for m, j, x, t in rows:
                plain.trade(int(m), int(j), x, t)
        elif step.kind == "prices":
            change, stale = book.apply_prices(column(rows, 0, True), column(rows, 1),
                                              column(rows, 2))
            changes.append(change)
            assert stale.tolist() == [plain.price(int(j), p, t) for j, p, t in rows]
        elif step.kind == "collateral":
            _, stale = book.apply_collateral(column(rows, 0, True), column(rows, 1),
                                             column(rows, 2), column(rows, 3))
            assert stale.tolist() == [plain.post(int(m), im, c, t) for m, im, c, t in rows]
        elif step.kind == "settle":
            book.settle(column(rows, 0, True))
            for (m,) in rows:
                plain.settle(int(m))
        elif step.kind == "add_settled":
            book.add_settled(column(rows, 0, True), column(rows, 1, True), column(rows, 2))
            for m, j, amount in rows:
                plain.add_settled(int(m), int(j), amount)
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
        assert_money(book.settled[:n, :k], plain.settled)
        assert_money(book.mark[:k], plain.mark)
        assert_money(book.multiplier[:k], plain.k)
        assert_money(book.variation_margin[:n], plain.vm)
        assert_money(book.variation_margin[:n], vm_from_state(book))
        assert_money(book.initial_margin[:n], [c[0] for c in plain.collateral])
        assert_money(book.cash[:n], [c[1] for c in plain.collateral])
        assert_money(book.notional(), plain.notional())
        reported = sum((dense(c, n, k) for c in changes), np.zeros((n, k)))
        assert_money(reported, book.notional() - before)


@pytest.mark.parametrize("prices_first", [False, True])
def test_prices_and_trades_in_either_order_leave_the_same_book(prices_first: bool) -> None:
    """Prices decide marks and trades only mark what has no price, so the VM does not
    depend on whether the trades or the prices came first."""
    book = book_of()
    prices = (ints(0, 0), floats(50, 40), floats(2, 1))
    trades = (ints(0, 1), ints(0, 0), floats(2, -2), floats(45, 47))
    if prices_first:
        book.apply_prices(*prices)
        book.apply_trades(*trades)
    else:
        book.apply_trades(*trades)
        book.apply_prices(*prices)

    assert book.mark[0] == 50
    assert_money(book.variation_margin[:2], floats(2 * (50 - 45), -2 * (50 - 47)))
