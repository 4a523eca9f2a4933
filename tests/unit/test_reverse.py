"""The reverse-stress multiplier k*: small books whose answers are exact.

Each book is also checked against the plain model (``risk/plain_reverse.py``), which
computes k* in exact fractions by walking every breakpoint.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from risk.cover import GroupAmount, same_scenario_cover
from risk.plain_reverse import PlainReverseBook, Side, multiplier
from risk.reverse import (
    AffineBook,
    Multiplier,
    cover2_by_scenario,
    credit_book,
    liquidity_book,
    multiplier_to_exhaustion,
)
from tests.tolerances import MONEY_ATOL

# Worked example 1 of docs/methodology.md: losses at k = 1 (vm = 0, pnl = -loss).
MEMBERS = ("A1", "A2", "B", "C", "D")
GROUP = {"A1": "A", "A2": "A", "B": "B", "C": "C", "D": "D"}
SCENARIOS = ("S1", "S2", "S3")
LOSS = {"A1": (70, 20, 90), "A2": (45, 10, 80), "B": (100, 150, 30), "C": (40, 120, 55),
        "D": (25, 60, 10)}
IM = {"A1": 40, "A2": 30, "B": 60, "C": 50, "D": 20}
PREFUNDED = 155.0
# Near k = 1 only S2 crosses: B + C = (150k - 60) + (120k - 50) = 155.
K_STAR = 53 / 54
# k* is computed to rounding; the tests ask for 1e-12.
K_RTOL = 1e-12


def arrays(members: tuple[str, ...], values: dict[str, float]) -> np.ndarray:
    return np.array([float(values.get(m, 0.0)) for m in members])


def worked_credit(vm: dict[str, float] | None = None) -> AffineBook:
    pnl = -np.array([LOSS[m] for m in MEMBERS], dtype=float)
    return credit_book(arrays(MEMBERS, vm or {}), pnl, arrays(MEMBERS, IM),
                       [GROUP[m] for m in MEMBERS], SCENARIOS)


def plain_book(members: tuple[str, ...], group: dict[str, str], scenarios: tuple[str, ...],
               pnl: np.ndarray, vm: dict[str, float] | None = None,
               **by_member: dict[str, float]) -> PlainReverseBook:
    provided = by_member.pop("provided", {})
    return PlainReverseBook(
        scenarios=scenarios, group={m: group[m] for m in members}, vm=vm or {},
        pnl={(m, s): float(pnl[i, j]) for i, m in enumerate(members)
             for j, s in enumerate(scenarios)},
        provided=provided, **by_member)


def assert_same(fast: Multiplier | None, plain: PlainReverseBook, side: Side,
                resources: float) -> None:
    """The fast result equals the plain model's: k*, scenario, groups and amounts."""
    exact = multiplier(plain, side, resources)
    if exact is None:
        assert fast is None
        return
    assert fast is not None
    assert fast.k == pytest.approx(float(exact.k), rel=K_RTOL, abs=0.0)
    assert fast.scenario == exact.scenario
    assert [t.group for t in fast.top] == [g for g, _ in exact.top]
    assert [t.amount for t in fast.top] == pytest.approx([float(a) for _, a in exact.top],
                                                         abs=MONEY_ATOL)


def test_the_worked_example_crosses_in_s2_at_53_54() -> None:
    book = worked_credit()
    result = multiplier_to_exhaustion(book, PREFUNDED)

    assert result is not None
    assert result.k == pytest.approx(K_STAR, rel=K_RTOL, abs=0.0)
    assert result.scenario == "S2"
    assert result.top == (GroupAmount("B", pytest.approx(150 * K_STAR - 60)),
                          GroupAmount("C", pytest.approx(120 * K_STAR - 50)))
    assert sum(t.amount for t in result.top) == pytest.approx(PREFUNDED, abs=MONEY_ATOL)
    assert result.evaluations <= 12
    pnl = -np.array([LOSS[m] for m in MEMBERS], dtype=float)
    assert_same(result, plain_book(MEMBERS, GROUP, SCENARIOS, pnl, initial_margin=IM),
                "credit", PREFUNDED)


def test_cover2_by_scenario_is_the_cover2_of_the_scaled_book() -> None:
    # At k = 1 the book is worked example 1: cover-2 160 in S2.
    book = worked_credit()
    totals = cover2_by_scenario(book, 1.0)

    assert totals == pytest.approx([85, 160, 105], abs=MONEY_ATOL)
    assert cover2_by_scenario(book, K_STAR).max() == pytest.approx(PREFUNDED, abs=MONEY_ATOL)
    assert cover2_by_scenario(book, 0.0) == pytest.approx([0, 0, 0], abs=MONEY_ATOL)
    # The same ranking as the service's.
    exposure = np.array([[30 + 15, 0, 100], [40, 90, 0], [0, 70, 5], [5, 40, 0]], dtype=float)
    cover = same_scenario_cover(exposure, ("A", "B", "C", "D"), SCENARIOS)
    assert cover.amount == pytest.approx(totals.max())


def test_already_exhausted_at_zero() -> None:
    # B already lost 500 (vm -500): its exposure with no shock at all, 440, is over 155.
    book = worked_credit(vm={"B": -500.0})
    result = multiplier_to_exhaustion(book, PREFUNDED)

    assert result is not None
    assert result.k == 0.0
    # Every scenario is over 155 at k = 0: the first by id is reported.
    assert result.scenario == "S1"
    assert [t.group for t in result.top] == ["B", "A"]
    assert result.top[0].amount == pytest.approx(440.0)
    assert result.top[1].amount == 0.0


def test_exhausted_just_past_zero_is_zero() -> None:
    # One member exactly at the resources at k = 0, rising with k: k* = inf{...} = 0.
    book = credit_book(np.array([-100.0]), np.array([[-1.0]]), np.zeros(1), ["M"], ["S"])
    result = multiplier_to_exhaustion(book, 100.0)

    assert result is not None
    assert (result.k, result.scenario, result.top) == (0.0, "S", (GroupAmount("M", 100.0),))


def test_never_exhausted_when_every_member_gains_everywhere() -> None:
    gains = np.array([LOSS[m] for m in MEMBERS], dtype=float)  # pnl = +loss: all gain
    book = credit_book(np.zeros(5), gains, arrays(MEMBERS, IM), [GROUP[m] for m in MEMBERS],
                       SCENARIOS)

    assert multiplier_to_exhaustion(book, 0.0) is None
    assert multiplier_to_exhaustion(book, PREFUNDED) is None


def test_huge_resources_are_still_crossed_when_a_loss_grows() -> None:
    # Only B in S2 grows without bound... and the rest gains: k* = (P + 60) / 150.
    pnl = np.array([LOSS[m] for m in MEMBERS], dtype=float)
    pnl[MEMBERS.index("B"), 1] *= -1
    book = credit_book(np.zeros(5), pnl, arrays(MEMBERS, IM), [GROUP[m] for m in MEMBERS],
                       SCENARIOS)
    result = multiplier_to_exhaustion(book, 1e12)

    assert result is not None
    assert result.k == pytest.approx((1e12 + 60) / 150, rel=K_RTOL)
    assert (result.scenario, [t.group for t in result.top]) == ("S2", ["B", "A"])


def test_scenarios_crossing_at_the_same_k_go_by_id() -> None:
    # Columns out of id order: S9 first, then S1 and S5; S9 and S1 cross together at k = 2
    # with different groups, S5 later.
    members = ("X", "Y", "Z")
    group = {m: m for m in members}
    scenarios = ("S9", "S1", "S5")
    loss = np.array([[10.0, 0.0, 4.0],
                     [0.0, 10.0, 4.0],
                     [0.0, 0.0, 1.0]])
    book = credit_book(np.zeros(3), -loss, np.zeros(3), list(members), scenarios)
    result = multiplier_to_exhaustion(book, 20.0)

    assert result is not None
    assert result.k == pytest.approx(2.0, rel=K_RTOL)
    assert result.scenario == "S1"
    assert [t.group for t in result.top] == ["Y", "X"]
    assert_same(result, plain_book(members, group, scenarios, -loss), "credit", 20.0)


def test_equal_groups_rank_by_id() -> None:
    # One scenario, three identical groups: k* = 1 with the first two ids.
    book = credit_book(np.zeros(3), -np.full((3, 1), 5.0), np.zeros(3), ["c", "b", "a"], ["S"])
    result = multiplier_to_exhaustion(book, 10.0)

    assert result is not None
    assert result.k == pytest.approx(1.0, rel=K_RTOL)
    assert [t.group for t in result.top] == ["a", "b"]


def test_a_gaining_member_lowers_its_group_until_its_floor() -> None:
    # Group A: A1 loses 10 per unit of k; A2 already lost 30 (vm -30) and gains 20 per
    # unit of k. Each member is floored alone, so A = 30 - 10k until A2 reaches 0 at
    # k = 1.5, then 10k. With B = 4k, cover-2 = 30 - 6k, then 14k: 40 at k = 20/7.
    # (Netting A1 against A2 would give A = max(0, 30 - 10k) and k* = 10.)
    members = ("A1", "A2", "B")
    group = {"A1": "A", "A2": "A", "B": "B"}
    pnl = np.array([[-10.0], [20.0], [-4.0]])
    vm = {"A2": -30.0}
    book = credit_book(arrays(members, vm), pnl, np.zeros(3), [group[m] for m in members],
                       ["S"])

    assert cover2_by_scenario(book, 1.0) == pytest.approx([24.0])
    assert cover2_by_scenario(book, 2.0) == pytest.approx([28.0])
    result = multiplier_to_exhaustion(book, 40.0)
    assert result is not None
    assert result.k == pytest.approx(20 / 7, rel=K_RTOL)
    assert result.top == (GroupAmount("A", pytest.approx(200 / 7)),
                          GroupAmount("B", pytest.approx(80 / 7)))
    assert_same(result, plain_book(members, group, ("S",), pnl, vm), "credit", 40.0)


def test_exactly_at_the_resources_over_an_interval_is_not_over_them() -> None:
    # A1 rises by 2 per unit of k while A2 falls by 2: group A is exactly 5 = P on
    # [0, 2], then A1 alone, 1 + 2k. Rounding must not cross before k = 2.
    book = credit_book(np.array([-1.0, -4.0]), np.array([[-2.0], [2.0]]), np.zeros(2),
                       ["A", "A"], ["S"])
    result = multiplier_to_exhaustion(book, 5.0)

    assert result is not None
    assert result.k == pytest.approx(2.0, rel=K_RTOL)
    assert result.top == (GroupAmount("A", pytest.approx(5.0)),)


def test_liquidity_with_a_providers_line_and_cash() -> None:
    # A: needs 13,000 per unit of k plus SO 2,000 less cash 1,000; B: 11,000 per unit of k
    # and provides a 4,000 line; C: 9,000 per unit of k; a non-member group X provides
    # 500. At k = 1 the drains are A 14,000, B 15,000, C 9,000, X 500: 29,000 <= 30,000.
    # A + B = (1,000 + 13,000k) + (4,000 + 11,000k) = 30,000 at k = 25/24.
    members = ("A", "B", "C")
    group = {m: m for m in members}
    pnl = np.array([[-13_000.0], [-11_000.0], [-9_000.0]])
    cash, obligation, provided = {"A": 1_000.0}, {"A": 2_000.0}, {"B": 4_000.0, "X": 500.0}
    book = liquidity_book(np.zeros(3), pnl, arrays(members, cash),
                          arrays(members, obligation), list(members), ["S"], provided)

    assert book.groups == ("A", "B", "C", "X")
    assert cover2_by_scenario(book, 1.0) == pytest.approx([29_000.0])
    result = multiplier_to_exhaustion(book, 30_000.0)
    assert result is not None
    assert result.k == pytest.approx(25 / 24, rel=K_RTOL)
    assert result.top == (
        GroupAmount("B", pytest.approx(4_000 + 11_000 * 25 / 24)),
        GroupAmount("A", pytest.approx(1_000 + 13_000 * 25 / 24)))
    assert_same(result, plain_book(members, group, ("S",), pnl, cash=cash,
                                   settlement_obligation=obligation, provided=provided),
                "liquidity", 30_000.0)


def test_liquidity_lines_alone_can_exhaust_at_zero() -> None:
    # Two providers' lines alone drain more than the QLR: k* = 0 whatever the market.
    book = liquidity_book(np.zeros(1), np.array([[0.0]]), np.zeros(1), np.zeros(1), ["M"],
                          ["S"], {"P1": 60.0, "P2": 50.0})
    result = multiplier_to_exhaustion(book, 100.0)

    assert result is not None
    assert (result.k, [t.group for t in result.top]) == (0.0, ["P1", "P2"])


def test_nothing_to_rank_is_none() -> None:
    empty = credit_book(np.zeros(2), np.zeros((2, 0)), np.zeros(2), ["A", "B"], [])
    assert multiplier_to_exhaustion(empty, 1.0) is None


def test_books_are_checked() -> None:
    with pytest.raises(ValueError, match="sorted"):
        AffineBook(np.zeros(1), np.zeros((1, 1)), np.zeros(1, dtype=np.intp), ("b", "a"),
                   ("S",), np.zeros(2))
    with pytest.raises(ValueError, match="members"):
        AffineBook(np.zeros(2), np.zeros((1, 1)), np.zeros(2, dtype=np.intp), ("a",),
                   ("S",), np.zeros(1))
    with pytest.raises(ValueError, match="negative"):
        AffineBook(np.zeros(1), np.zeros((1, 1)), np.zeros(1, dtype=np.intp), ("a",),
                   ("S",), -np.ones(1))
    with pytest.raises(ValueError, match="finite"):
        multiplier_to_exhaustion(worked_credit(), float("nan"))


def test_the_plain_model_states_the_example_exactly() -> None:
    pnl = -np.array([LOSS[m] for m in MEMBERS], dtype=float)
    exact = multiplier(plain_book(MEMBERS, GROUP, SCENARIOS, pnl, initial_margin=IM),
                       "credit", PREFUNDED)

    assert exact is not None
    assert exact.k == Fraction(53, 54)
    assert exact.top == (("B", Fraction(150 * 53, 54) - 60), ("C", Fraction(120 * 53, 54) - 50))
