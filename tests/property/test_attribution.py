"""The attribution's evaluation equals the plain model, and its steps add up to the change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.attribution import FAMILIES, POSITIONS, Figures, attribute, figures, inputs_of
from risk.ccp import Ccp
from risk.plain import PlainCcp, plain_results
from tests.property import strategies as s
from tests.property.test_ccp_matches_plain import apply_hot, play
from tests.tolerances import MONEY_ATOL, MONEY_RTOL


def close(got: float, want: float) -> bool:
    return abs(got - want) <= MONEY_ATOL + MONEY_RTOL * abs(want)


@settings(max_examples=150, deadline=None)
@given(s.steps)
def test_figures_of_the_inputs_equal_the_plain_model(steps: list[tuple[object, bool]]) -> None:
    ccp, plain = Ccp(), PlainCcp()
    play(ccp, plain, steps, check=False)
    got, want = figures(inputs_of(ccp)), plain_results(plain)
    assert close(got.credit_cover2, want.credit.cover2)
    assert close(got.prefunded, want.credit.prefunded)
    assert close(got.liquidity_cover2, want.liquidity.cover2)
    assert close(got.qualifying, want.liquidity.qualifying)


@settings(max_examples=150, deadline=None)
@given(s.steps, s.steps)
def test_steps_add_up_to_the_whole_change(first: list[tuple[object, bool]],
                                          then: list[tuple[object, bool]]) -> None:
    ccp, plain = Ccp(), PlainCcp()
    play(ccp, plain, first, check=False)
    before = inputs_of(ccp)
    play(ccp, plain, then, check=False)
    after = inputs_of(ccp)
    attribution = attribute(before, after)
    assert attribution.start == figures(before)
    want = plain_results(plain)
    assert close(attribution.end.credit_cover2, want.credit.cover2)
    assert close(attribution.end.liquidity_headroom, want.liquidity.headroom)
    change, total = attribution.end.minus(attribution.start), attribution.by_family()
    assert [family for family, _ in total] == list(FAMILIES)
    for name in ("credit_cover2", "credit_headroom", "liquidity_cover2", "liquidity_headroom"):
        summed = sum(getattr(c, name) for _, c in total)
        assert close(summed, getattr(change, name))
    assert all((step.group is None) == (step.family != POSITIONS) for step in attribution.steps)


@settings(max_examples=60, deadline=None)
@given(s.steps, st.lists(s.marks, min_size=1, max_size=6))
def test_a_move_of_prices_alone_is_all_in_the_prices_step(
        first: list[tuple[object, bool]], marks: list[s.Price]) -> None:
    ccp, plain = Ccp(), PlainCcp()
    play(ccp, plain, first, check=False)
    before = inputs_of(ccp)
    apply_hot(ccp, plain, [s.Price(m.instrument, m.price, 1000.0 + m.ts) for m in marks])
    attribution = attribute(before, inputs_of(ccp))
    for family, change in attribution.by_family():
        if family != "prices":
            assert change == Figures(0, 0, 0, 0).minus(Figures(0, 0, 0, 0))
