"""The reverse-stress multiplier k* equals the plain model's, exact ties included.

Random small books (2 to 6 members in 1 to 4 groups, 1 to 4 scenarios in shuffled
column order) with half-unit amounts of both signs, so that members gain as well as
lose, floors open and close at simple fractions and ties between groups and between
scenarios are common. The plain model (``risk/plain_reverse.py``) computes k* in exact
fractions by walking every breakpoint; cover-2 around the fast k* is checked with it
too, which holds whatever either search does.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.plain_reverse import PlainReverseBook, Side, cover2, multiplier
from risk.reverse import (
    AffineBook,
    cover2_by_scenario,
    credit_book,
    liquidity_book,
    multiplier_to_exhaustion,
)
from tests.tolerances import MONEY_ATOL

GROUPS = ["G0", "G1", "G2", "G3"]
# A group that only provides liquidity, with no member.
PROVIDER = "G9"
# How close k* must be to the exact one (relative).
K_RTOL = 1e-6
# Far beyond any breakpoint of these books: where "never" is checked.
FAR = Fraction(10**6)
# Just past 0, before any breakpoint of these books (all are simple fractions).
NEAR_ZERO = Fraction(1, 10**9)

halves = st.integers(-8, 8).map(lambda x: x / 2)
amounts = st.integers(0, 8).map(lambda x: x / 2)


@dataclass(frozen=True)
class Case:
    members: tuple[str, ...]
    group: tuple[str, ...]
    scenarios: tuple[str, ...]
    vm: tuple[float, ...]
    pnl: tuple[tuple[float, ...], ...]
    initial_margin: tuple[float, ...]
    cash: tuple[float, ...]
    settlement_obligation: tuple[float, ...]
    provided: dict[str, float]
    resources: float

    def fast(self, side: Side) -> AffineBook:
        pnl = np.array(self.pnl, dtype=float).reshape(len(self.members), len(self.scenarios))
        vm = np.array(self.vm)
        if side == "credit":
            return credit_book(vm, pnl, np.array(self.initial_margin), self.group,
                               self.scenarios)
        return liquidity_book(vm, pnl, np.array(self.cash), np.array(self.settlement_obligation),
                              self.group, self.scenarios, self.provided)

    def plain(self) -> PlainReverseBook:
        return PlainReverseBook(
            scenarios=self.scenarios, group=dict(zip(self.members, self.group, strict=True)),
            vm=dict(zip(self.members, self.vm, strict=True)),
            pnl={(m, s): self.pnl[i][j] for i, m in enumerate(self.members)
                 for j, s in enumerate(self.scenarios)},
            initial_margin=dict(zip(self.members, self.initial_margin, strict=True)),
            cash=dict(zip(self.members, self.cash, strict=True)),
            settlement_obligation=dict(zip(self.members, self.settlement_obligation,
                                           strict=True)),
            provided=self.provided)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_m = draw(st.integers(2, 6))
    n_s = draw(st.integers(1, 4))
    scenarios = tuple(draw(st.permutations([f"S{i}" for i in range(n_s)])))
    per_member = st.lists(halves, min_size=n_m, max_size=n_m).map(tuple)
    non_negative = st.lists(amounts, min_size=n_m, max_size=n_m).map(tuple)
    return Case(
        members=tuple(f"M{i}" for i in range(n_m)),
        group=tuple(draw(st.lists(st.sampled_from(GROUPS), min_size=n_m, max_size=n_m))),
        scenarios=scenarios,
        vm=draw(per_member),
        pnl=tuple(draw(st.lists(st.lists(halves, min_size=n_s, max_size=n_s).map(tuple),
                                min_size=n_m, max_size=n_m))),
        initial_margin=draw(non_negative),
        cash=draw(non_negative),
        settlement_obligation=draw(non_negative),
        provided=draw(st.dictionaries(st.sampled_from([*GROUPS, PROVIDER]), amounts,
                                      max_size=2)),
        resources=draw(st.integers(0, 40).map(lambda x: x / 2)),
    )


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from(["credit", "liquidity"]))
def test_k_star_equals_the_plain_models(case: Case, side: Side) -> None:
    fast = multiplier_to_exhaustion(case.fast(side), case.resources)
    plain = case.plain()
    exact = multiplier(plain, side, case.resources)
    resources = Fraction(case.resources)

    if exact is None:
        assert fast is None
        assert cover2(plain, side, 0) <= resources
        assert cover2(plain, side, FAR) <= resources
        return
    assert fast is not None
    if exact.k == 0:
        assert fast.k == 0.0
        assert cover2(plain, side, 0) >= resources
        assert cover2(plain, side, NEAR_ZERO) > resources
    else:
        assert fast.k == pytest.approx(float(exact.k), rel=K_RTOL, abs=0.0)
        k = Fraction(fast.k)
        assert cover2(plain, side, k * (1 - Fraction(K_RTOL))) <= resources
        assert cover2(plain, side, k * (1 + Fraction(K_RTOL))) > resources
    # Names where the crossing is no tie within the tolerance: nothing else changes
    # between k* and k* (1 + K_RTOL). (Just past 0 both read the same exact order.)
    clear = exact.next_point is None or exact.next_point > exact.k * (1 + Fraction(K_RTOL))
    if exact.k == 0 or clear:
        assert fast.scenario == exact.scenario
        assert [t.group for t in fast.top] == [g for g, _ in exact.top]
        assert [t.amount for t in fast.top] == pytest.approx(
            [float(a) for _, a in exact.top], abs=MONEY_ATOL)


@settings(max_examples=100, deadline=None)
@given(cases(), st.sampled_from(["credit", "liquidity"]), st.integers(0, 16).map(lambda x: x / 4))
def test_cover2_at_k_equals_the_plain_models(case: Case, side: Side, k: float) -> None:
    fast = cover2_by_scenario(case.fast(side), k)
    plain = case.plain()

    assert float(fast.max()) == pytest.approx(float(cover2(plain, side, k)), abs=MONEY_ATOL)
