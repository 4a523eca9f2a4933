"""Scenario P&L: incremental updates equal ``notional @ shock`` recomputed in full.

Hand-computed P&L, scenario replacement and removal, and Hypothesis sequences of
notional changes and book batches checked against a loop over members, instruments
and scenarios.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from risk.book import BlockChange, Book, PairChange
from risk.ccp import Ccp
from risk.model import FloatArray, IndexArray, Scenario, Trades
from risk.stress import StressPnl
from tests.tolerances import MONEY_ATOL, MONEY_RTOL


def ints(*values: int) -> IndexArray:
    return np.array(values, dtype=np.intp)


def floats(*values: float) -> FloatArray:
    return np.array(values, dtype=np.float64)


def assert_money(actual: FloatArray | float, expected: FloatArray | float) -> None:
    np.testing.assert_allclose(actual, expected, rtol=MONEY_RTOL, atol=MONEY_ATOL)


def loop_pnl(notional: FloatArray, shock: FloatArray) -> FloatArray:
    """``pnl[m, s] = sum_j notional[m, j] * shock[j, s]``, one term at a time."""
    n_m, n_j = notional.shape
    n_s = shock.shape[1]
    pnl = np.zeros((n_m, n_s))
    for m in range(n_m):
        for s in range(n_s):
            for j in range(n_j):
                pnl[m, s] += notional[m, j] * shock[j, s]
    return pnl


def stress_of(n_members: int, shocks: FloatArray) -> StressPnl:
    """A StressPnl with one scenario ``S{s}`` per column of ``shocks`` (instruments, scenarios)."""
    stress = StressPnl()
    stress.reserve(n_members, shocks.shape[0])
    for s in range(shocks.shape[1]):
        assert stress.set_scenario(f"S{s}", shocks[:, s], 0.0) == s
    return stress


def test_pairs_and_blocks_move_pnl_by_notional_times_shock() -> None:
    # Instruments 0, 1; scenarios down 10% / up 5%, and a crash of 50% in instrument 1.
    stress = stress_of(3, np.array([[-0.1, 0.0], [0.05, -0.5]]))
    stress.apply_pairs(PairChange(ints(0, 0, 2), ints(0, 1, 1), floats(1000, 200, -400)))

    assert_money(stress.pnl[:3, :2], [[-100 + 10, -100], [0, 0], [-20, 200]])

    stress.apply_block(BlockChange(ints(1, 2), ints(1), floats(300, 400)[:, None]))
    assert_money(stress.pnl[:3, :2], [[-90, -100], [15, -150], [0, 0]])


def test_an_empty_change_moves_nothing() -> None:
    stress = stress_of(2, np.array([[0.2]]))
    stress.apply_pairs(PairChange(ints(), ints(), floats()))
    stress.apply_block(BlockChange(ints(), ints(0), np.zeros((0, 1))))
    assert not stress.pnl.any()


def test_set_scenario_replaces_an_existing_one_and_leaves_pnl_to_reprice() -> None:
    stress = stress_of(2, np.array([[0.1, -0.2], [0.0, 0.3]]))
    notional = np.array([[100.0, 50.0], [-20.0, 10.0]])
    stress.reprice(notional, ints(0, 1))
    assert_money(stress.pnl[:2, :2], [[10, -5], [-2, 7]])

    assert stress.set_scenario("S1", floats(0.5, 0.5), 0.25) == 1
    assert stress.n_scenarios == 2
    assert_money(stress.shock[:2, 1], floats(0.5, 0.5))
    assert stress.default_shock[1] == 0.25
    assert_money(stress.pnl[:2, :2], [[10, -5], [-2, 7]])  # not yet repriced

    stress.reprice(notional, ints(1))
    assert_money(stress.pnl[:2, :2], [[10, 75], [-2, -5]])


def test_a_new_scenario_takes_the_next_column_and_new_instruments_its_default() -> None:
    stress = stress_of(1, np.array([[0.1], [0.2]]))
    assert stress.set_scenario("T", floats(-0.3, -0.4), -0.05) == 1
    assert stress.scenarios.names == ["S0", "T"]

    stress.reserve(2, 40)  # past the initial capacity of the shock matrix
    assert stress.shock.shape[0] >= 40
    assert_money(stress.shock[:2, :2], [[0.1, -0.3], [0.2, -0.4]])
    assert_money(stress.shock[2:40, 0], np.zeros(38))
    assert_money(stress.shock[2:40, 1], np.full(38, -0.05))

    stress.apply_block(BlockChange(ints(1), ints(0, 39), np.array([[10.0, 1000.0]])))
    assert_money(stress.pnl[1, :2], floats(1, -3 - 50))


def test_a_scenario_added_first_gives_instruments_reserved_later_its_default() -> None:
    stress = stress_of(1, np.array([[0.1]]))
    stress.set_scenario("U", floats(0.3), 0.07)
    stress.reserve(1, 3)
    assert_money(stress.shock[:3, 1], floats(0.3, 0.07, 0.07))
    assert_money(stress.shock[:3, 0], floats(0.1, 0.0, 0.0))


def test_remove_scenario_moves_the_last_column_into_the_freed_one() -> None:
    stress = stress_of(2, np.array([[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]]))
    stress.set_scenario("S2", floats(0.3, -0.3), 0.03)
    notional = np.array([[10.0, 20.0], [30.0, 40.0]])
    stress.reprice(notional, ints(0, 1, 2))
    before = stress.pnl[:2, :3].copy()

    assert stress.remove_scenario("S0") == (0, 2)
    assert stress.scenarios.names == ["S2", "S1"] and stress.n_scenarios == 2
    assert_money(stress.shock[:2, :2], [[0.3, 0.2], [-0.3, -0.2]])
    assert stress.default_shock[0] == 0.03
    assert_money(stress.pnl[:2, :2], before[:, [2, 1]])
    assert not stress.pnl[:, 2].any() and not stress.shock[:, 2].any()

    # Removing the last column only clears it.
    assert stress.remove_scenario("S1") == (1, 1)
    assert stress.scenarios.names == ["S2"]
    assert_money(stress.pnl[:2, 0], before[:, 2])
    assert not stress.pnl[:, 1].any()


def test_reserve_keeps_pnl_of_existing_members() -> None:
    stress = stress_of(2, np.array([[0.5]]))
    stress.apply_pairs(PairChange(ints(1), ints(0), floats(8)))
    stress.reserve(50, 1)
    assert stress.pnl.shape[0] >= 50
    assert_money(stress.pnl[:50, 0], np.r_[0.0, 4.0, np.zeros(48)])


# Random notional changes against the full recompute

N_MEMBERS, N_INSTRUMENTS = 4, 3
shocks = st.integers(1, 3).flatmap(lambda n_s: hnp.arrays(
    np.float64, (N_INSTRUMENTS, n_s),
    elements=st.integers(-500, 500).map(lambda x: x / 1000)))
notionals = st.integers(-10_000, 10_000).map(float)


@st.composite
def pair_changes(draw: st.DrawFn) -> PairChange:
    """Pairs in ascending member order; members may have one pair or several."""
    pairs = draw(st.lists(st.tuples(st.integers(0, N_MEMBERS - 1),
                                    st.integers(0, N_INSTRUMENTS - 1)),
                          max_size=8, unique=True))
    pairs.sort(key=lambda pair: pair[0])
    return PairChange(np.array([m for m, _ in pairs], dtype=np.intp),
                      np.array([j for _, j in pairs], dtype=np.intp),
                      np.array(draw(st.lists(notionals, min_size=len(pairs),
                                             max_size=len(pairs))), dtype=np.float64))


@st.composite
def block_changes(draw: st.DrawFn) -> BlockChange:
    members = draw(st.lists(st.integers(0, N_MEMBERS - 1), unique=True))
    instruments = draw(st.lists(st.integers(0, N_INSTRUMENTS - 1), min_size=1, unique=True))
    notional = draw(hnp.arrays(np.float64, (len(members), len(instruments)),
                               elements=notionals))
    return BlockChange(np.array(members, dtype=np.intp), np.array(instruments, dtype=np.intp),
                       notional)


@settings(max_examples=80, deadline=None)
@given(shocks, st.lists(pair_changes() | block_changes(), max_size=6))
def test_changes_keep_pnl_equal_to_the_full_recompute(
        shock: FloatArray, changes: list[PairChange | BlockChange]) -> None:
    stress = stress_of(N_MEMBERS, shock)
    notional = np.zeros((N_MEMBERS, N_INSTRUMENTS))
    for change in changes:
        if isinstance(change, PairChange):
            stress.apply_pairs(change)
            for m, j, amount in zip(change.members, change.instruments, change.notional,
                                    strict=True):
                notional[m, j] += amount
        else:
            stress.apply_block(change)
            for a, m in enumerate(change.members):
                for b, j in enumerate(change.instruments):
                    notional[m, j] += change.notional[a, b]
        assert_money(stress.pnl[:N_MEMBERS, :stress.n_scenarios], loop_pnl(notional, shock))

    repriced = stress_of(N_MEMBERS, shock)
    repriced.reprice(notional, np.arange(shock.shape[1]))
    assert_money(repriced.pnl[:N_MEMBERS, :shock.shape[1]], loop_pnl(notional, shock))


book_batches = st.one_of(
    st.lists(st.tuples(st.integers(0, N_MEMBERS - 1), st.integers(0, N_INSTRUMENTS - 1),
                       st.sampled_from([-5.0, -1.0, 0.0, 2.0, 7.0]),
                       st.integers(2, 200).map(lambda x: x / 2)),
             min_size=1, max_size=6).map(lambda rows: ("trades", rows)),
    st.lists(st.tuples(st.integers(0, N_INSTRUMENTS - 1), st.integers(2, 200).map(
        lambda x: x / 2), st.integers(0, 4).map(float)),
             min_size=1, max_size=4).map(lambda rows: ("prices", rows)),
    st.tuples(st.integers(0, N_INSTRUMENTS - 1), st.sampled_from([1.0, 10.0, 50.0])).map(
        lambda row: ("multiplier", [row])),
)


@settings(max_examples=60, deadline=None)
@given(shocks, st.lists(book_batches, min_size=1, max_size=8))
def test_book_batches_keep_pnl_equal_to_the_full_recompute(
        shock: FloatArray, batches: list[tuple[str, list[tuple[float, ...]]]]) -> None:
    book, stress = Book(), stress_of(N_MEMBERS, shock)
    book.reserve(N_MEMBERS, N_INSTRUMENTS)
    for kind, rows in batches:
        if kind == "trades":
            instruments = np.array([r[1] for r in rows], dtype=np.intp)
            price = np.array([r[3] for r in rows])
            marked = book.mark_unpriced(instruments, price, np.zeros(len(rows)))
            if marked is not None:
                stress.apply_block(marked)
            stress.apply_pairs(book.apply_trades(
                np.array([r[0] for r in rows], dtype=np.intp), instruments,
                np.array([r[2] for r in rows]), price, None))
        elif kind == "prices":
            change, _ = book.apply_prices(np.array([r[0] for r in rows], dtype=np.intp),
                                          np.array([r[1] for r in rows]),
                                          np.array([r[2] for r in rows]))
            stress.apply_block(change)
        else:
            ((j, k),) = rows
            stress.apply_block(book.set_multiplier(int(j), k))
        assert_money(stress.pnl[:N_MEMBERS, :stress.n_scenarios],
                     loop_pnl(book.notional(), shock))


def test_a_scenario_sent_again_unchanged_is_recognised() -> None:
    shocks = np.array([[0.1, -0.2], [0.05, 0.3], [-0.4, 0.0]])
    stress = stress_of(2, shocks)
    same, default = shocks[:, 0].copy(), float(stress.default_shock[0])
    assert stress.holds("S0", same, default)
    moved = same.copy()
    moved[1] += 1e-12
    assert not stress.holds("S0", moved, default)
    assert not stress.holds("S0", same, default + 0.01)
    assert not stress.holds("S9", same, default)


def test_a_member_who_closes_every_position_has_no_scenario_pnl_left() -> None:
    """Sold 20 at 1, bought back at 100 (the trade marks the instrument at 100), under a 7%
    shock: the increments are -1.4, -138.6 and +140, which leave about 3e-14 in floating
    point; a member holding nothing loses nothing."""
    ccp = Ccp()
    ccp.upsert_scenario(Scenario("S0", {}, 0.07))
    for quantity, price, ts in ((-20.0, 1.0, 0.0), (20.0, 100.0, 60.0)):
        ccp.apply_trades(Trades(["M0"], ["I0"], np.array([quantity]), np.array([price]),
                                np.array([ts])))
    assert ccp.stress.pnl[ccp.members.get("M0"), 0] == 0.0
