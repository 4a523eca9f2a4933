"""The incremental, vectorised core equals the plain full recompute."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.ccp import Ccp
from risk.cover import Cover
from risk.model import Collateral, Instrument, Member, Prices, Resources, Scenario, Trades
from risk.plain import PlainCcp, plain_results
from risk.results import Results
from tests.property import strategies as s
from tests.tolerances import MONEY_ATOL, MONEY_RTOL


def apply_hot(ccp: Ccp, plain: PlainCcp, events: list[object]) -> None:
    for e in events:
        if isinstance(e, s.Trade):
            plain.trade(e.member, e.instrument, e.quantity, e.price, e.ts)
        elif isinstance(e, s.Price):
            plain.price(e.instrument, e.price, e.ts)
        elif isinstance(e, s.PostCollateral):
            plain.post_collateral(e.member, e.initial_margin, e.cash, e.ts)
    tr = [e for e in events if isinstance(e, s.Trade)]
    pr = [e for e in events if isinstance(e, s.Price)]
    co = [e for e in events if isinstance(e, s.PostCollateral)]
    ccp.apply_prices(Prices([e.instrument for e in pr], np.array([e.price for e in pr]),
                            np.array([e.ts for e in pr])))
    ccp.apply_trades(Trades([e.member for e in tr], [e.instrument for e in tr],
                            np.array([e.quantity for e in tr]), np.array([e.price for e in tr]),
                            np.array([e.ts for e in tr], dtype=np.float64)))
    ccp.apply_collateral(Collateral(
        [e.member for e in co], np.array([e.initial_margin for e in co]),
        np.array([e.cash for e in co]), np.array([e.ts for e in co])))


def apply_reference(ccp: Ccp, plain: PlainCcp, e: object) -> None:
    if isinstance(e, Member):
        ccp.upsert_member(e)
        plain.upsert_member(e)
    elif isinstance(e, Instrument):
        ccp.upsert_instrument(e)
        plain.upsert_instrument(e)
    elif isinstance(e, Scenario):
        ccp.upsert_scenario(e)
        plain.upsert_scenario(e)
    elif isinstance(e, Resources):
        ccp.set_resources(e)
        plain.set_resources(e)
    elif isinstance(e, s.Settle):
        ccp.settle(e.member, e.ts)
        plain.settle(e.member, e.ts)
    elif isinstance(e, s.RemoveMember):
        ccp.remove_member(e.member)
        plain.remove_member(e.member)
    elif isinstance(e, s.RemoveScenario):
        ccp.remove_scenario(e.scenario)
        plain.remove_scenario(e.scenario)


def by_scenario(snap: Results, matrix: np.ndarray, order: tuple[str, ...]) -> np.ndarray:
    columns = [snap.scenarios.index(name) for name in order]
    return matrix[:, columns].reshape(len(snap.groups), len(order))


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def assert_same_cover(got: Cover, want: Cover, matrix: np.ndarray, scenarios: tuple[str, ...],
                      tol: float) -> None:
    """Amounts agree; names agree wherever the answer is not a tie within ``tol``."""
    assert close(got.amount, want.amount, tol)
    assert close(got.cover1, want.cover1, tol)
    if matrix.size == 0:
        return
    padded = np.sort(np.vstack([matrix, np.zeros((2, matrix.shape[1]))]), axis=0)
    pair_sums = padded[-1] + padded[-2]
    if np.sum(pair_sums >= pair_sums.max() - 2 * tol) == 1:
        assert got.scenario == want.scenario
        column = np.sort(matrix[:, scenarios.index(want.scenario)])[::-1]
        gaps = np.abs(np.diff(np.r_[column, 0.0]))[:2]
        if np.all(gaps > 2 * tol):
            assert [t.group for t in got.top] == [t.group for t in want.top]
        for g, w in zip(got.top, want.top, strict=True):
            assert close(g.amount, w.amount, tol)


def assert_same(got: Results, want: Results) -> None:
    assert got.groups == want.groups
    assert sorted(got.scenarios) == sorted(want.scenarios)
    assert {g: sorted(m) for g, m in got.members_by_group.items()} == \
        {g: sorted(m) for g, m in want.members_by_group.items()}
    exposure = by_scenario(got, got.exposure_by_group_scenario, want.scenarios)
    drain = by_scenario(got, got.drain_by_group_scenario, want.scenarios)
    scale = max(1.0, float(np.abs(want.exposure_by_group_scenario).max(initial=0.0)),
                float(np.abs(want.drain_by_group_scenario).max(initial=0.0)))
    tol = MONEY_ATOL + MONEY_RTOL * scale
    np.testing.assert_allclose(exposure, want.exposure_by_group_scenario, rtol=0, atol=tol)
    np.testing.assert_allclose(drain, want.drain_by_group_scenario, rtol=0, atol=tol)
    assert_same_cover(got.credit.cover, want.credit.cover, want.exposure_by_group_scenario,
                      want.scenarios, tol)
    assert_same_cover(got.liquidity.cover, want.liquidity.cover, want.drain_by_group_scenario,
                      want.scenarios, tol)
    np.testing.assert_array_equal(got.margin_level_by_group, want.margin_level_by_group)
    assert close(got.credit.prefunded, want.credit.prefunded, tol)
    assert close(got.credit.worst_group_mode, want.credit.worst_group_mode, 2 * tol)
    assert close(got.credit.default_fund_minimum, want.credit.default_fund_minimum, 2 * tol)
    assert got.liquidity.qualifying_by_type == pytest.approx(
        {k: want.liquidity.qualifying_by_type.get(k, 0.0)
         for k in got.liquidity.qualifying_by_type}, abs=tol)


def play(ccp: Ccp, plain: PlainCcp, steps: list[tuple[object, bool]],
         check: bool = True) -> None:
    """Each step to both; with ``check``, the same results wherever a step publishes."""
    for step, publish in steps:
        if isinstance(step, list):
            apply_hot(ccp, plain, step)
        else:
            apply_reference(ccp, plain, step)
        if publish and check:
            assert_same(ccp.publish(now=0.0)[0], plain_results(plain))


@settings(max_examples=300, deadline=None)
@given(s.steps)
def test_incremental_core_equals_full_recompute(steps: list[tuple[object, bool]]) -> None:
    ccp, plain = Ccp(), PlainCcp()
    play(ccp, plain, steps)
    assert_same(ccp.publish(now=0.0)[0], plain_results(plain))


@settings(max_examples=100, deadline=None)
@given(s.steps, st.integers(0, 13), st.integers(1, 3))
def test_recompute_from_positions_changes_nothing(steps: list[tuple[object, bool]],
                                                  cut: int, slice_size: int) -> None:
    """A recompute in slices: after each slice, and once done, the same results."""
    ccp, plain = Ccp(), PlainCcp()
    play(ccp, plain, steps[: cut + 1], check=False)
    ccp.recompute()
    refreshes = 0
    with patch("risk.ccp.RECOMPUTE_SLICE", slice_size):
        while True:
            assert_same(ccp.publish(now=0.0)[0], plain_results(plain))
            refreshes += 1
            if not ccp.recomputing:
                break
    assert refreshes == max(1, -(-ccp.stress.n_scenarios // slice_size))
