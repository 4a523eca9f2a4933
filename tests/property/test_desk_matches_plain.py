"""The desk's vectorised figures equal the plain model's loops, exact ties included.

Random (groups x scenarios) matrices of small integers make ties between groups,
between scenarios and between a sum and the prefunded resources common, so the
documented tie-breaks and the strict "more than" are exercised. Scenario ids
are shuffled against the columns, so id order is not column order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from risk.cover import same_scenario_cover
from risk.desk import (
    UnknownGroupError,
    concentration,
    cover2_waterfall,
    default_fund_by_group,
    defaults_to_exhaustion,
    waterfall,
    what_if,
)
from risk.model import FloatArray, Resources
from risk.plain import (
    plain_concentration,
    plain_cover2_waterfall,
    plain_defaults_to_exhaustion,
    plain_waterfall,
    plain_what_if,
)
from risk.results import CreditResult, LiquidityResult, Results
from tests.fixtures import ccp_with_losses
from tests.property.strategies import loss_books
from tests.tolerances import MONEY_ATOL, MONEY_RTOL

# Small integers (and halves) make exact ties common.
small = st.integers(0, 6).map(float)
halves = st.integers(0, 12).map(lambda x: x / 2)
money = st.floats(0, 1e5, allow_nan=False).map(lambda x: round(x, 2))
matrices = st.tuples(st.integers(0, 6), st.integers(0, 5)).flatmap(
    lambda shape: hnp.arrays(np.float64, shape, elements=small))
float_matrices = st.tuples(st.integers(1, 6), st.integers(1, 5)).flatmap(
    lambda shape: hnp.arrays(np.float64, shape, elements=money))


def ids(prefix: str, n: int, data: st.DataObject) -> list[str]:
    """Group ids in row order (sorted, as in results); scenario ids shuffled."""
    names = [f"{prefix}{i}" for i in range(n)]
    return names if prefix == "G" else data.draw(st.permutations(names))


def tolerance(*amounts: float) -> float:
    return MONEY_ATOL + MONEY_RTOL * max(1.0, *(abs(a) for a in amounts))


def results_of(exposure: FloatArray, drain: FloatArray, scenarios: list[str],
               qualifying: dict[str, float]) -> Results:
    """Results around given matrices, covers ranked by the core's own ranking."""
    groups = tuple(f"G{i}" for i in range(exposure.shape[0]))
    credit = CreditResult(
        cover=same_scenario_cover(exposure, groups, scenarios), default_fund=0.0,
        prefunded=0.0, worst_group_mode=0.0, worst_group_top=(),
        default_fund_minimum=0.0, default_fund_minimum_scenario=None)
    return Results(
        sequence=1, as_of=0.0, credit=credit,
        liquidity=LiquidityResult(same_scenario_cover(drain, groups, scenarios), qualifying),
        groups=groups, scenarios=tuple(scenarios), exposure_by_group_scenario=exposure,
        drain_by_group_scenario=drain, members_by_group={g: (g,) for g in groups},
        margin_level_by_group=np.zeros(len(groups), dtype=np.intp))


@settings(max_examples=200, deadline=None)
@given(matrices, st.data())
def test_concentration(matrix: FloatArray, data: st.DataObject) -> None:
    scenarios = ids("S", matrix.shape[1], data)
    binding = data.draw(st.none() | st.sampled_from(scenarios)) if scenarios else None
    cover2 = data.draw(halves)
    got = concentration(matrix, scenarios, binding, cover2)
    want = plain_concentration(matrix, scenarios, binding, cover2)

    assert got.total == pytest.approx(want.total, abs=tolerance(want.total))
    assert (got.top2_share is None) == (want.top2_share is None) == (want.total == 0.0)
    assert (got.hhi is None) == (want.hhi is None)
    if want.top2_share is not None and want.hhi is not None:
        assert got.top2_share == pytest.approx(want.top2_share, abs=MONEY_ATOL)
        assert got.hhi == pytest.approx(want.hhi, abs=MONEY_ATOL)
        assert 0.0 < got.hhi <= 1.0 + MONEY_ATOL


@settings(max_examples=300, deadline=None)
@given(matrices, st.integers(-2, 40).map(lambda x: x / 2), st.data())
def test_defaults_to_exhaustion(matrix: FloatArray, prefunded: float,
                                data: st.DataObject) -> None:
    groups, scenarios = ids("G", matrix.shape[0], data), ids("S", matrix.shape[1], data)
    got = defaults_to_exhaustion(matrix, groups, scenarios, prefunded)
    want = plain_defaults_to_exhaustion(matrix, groups, scenarios, prefunded)

    # Small integers are exact: the same count, scenario, sum and names.
    assert got == want
    if got is not None:
        assert got.loss > prefunded
        assert sorted(matrix[:, scenarios.index(got.scenario)], reverse=True)[:got.groups] == \
            [matrix[groups.index(g), scenarios.index(got.scenario)] for g in got.defaulters]


@settings(max_examples=150, deadline=None)
@given(float_matrices, money, st.data())
def test_defaults_to_exhaustion_of_cents(matrix: FloatArray, prefunded: float,
                                         data: st.DataObject) -> None:
    groups, scenarios = ids("G", matrix.shape[0], data), ids("S", matrix.shape[1], data)
    # Both add the largest first, so even inexact sums agree to the last bit.
    assert defaults_to_exhaustion(matrix, groups, scenarios, prefunded) == \
        plain_defaults_to_exhaustion(matrix, groups, scenarios, prefunded)


@settings(max_examples=300, deadline=None)
@given(st.one_of(halves, money), st.tuples(*[st.one_of(halves, money)] * 4))
def test_waterfall(loss: float, sizes: tuple[float, float, float, float]) -> None:
    got = waterfall(loss, *sizes)
    want = plain_waterfall(loss, *sizes)

    assert [layer.layer for layer in got] == [layer.layer for layer in want]
    assert [layer.size for layer in got] == [layer.size for layer in want]
    assert [layer.used for layer in got] == pytest.approx([layer.used for layer in want],
                                                          abs=MONEY_ATOL)
    assert sum(layer.used for layer in got) == pytest.approx(loss, abs=MONEY_ATOL)
    for layer in got[:-1]:
        assert layer.size is not None
        assert 0.0 <= layer.used <= layer.size
    assert got[-1].used == pytest.approx(max(0.0, loss - sum(sizes)), abs=MONEY_ATOL)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 6).flatmap(lambda g: st.tuples(st.just(g), st.integers(0, 5))),
       st.data())
def test_what_if(shape: tuple[int, int], data: st.DataObject) -> None:
    exposure = data.draw(hnp.arrays(np.float64, shape, elements=small))
    drain = data.draw(hnp.arrays(np.float64, shape, elements=small))
    scenarios = ids("S", shape[1], data)
    qualifying = data.draw(st.dictionaries(st.sampled_from(["cash", "repo"]), halves))
    results = results_of(exposure, drain, scenarios, qualifying)
    df = data.draw(st.dictionaries(st.sampled_from(results.groups or ("G0",)), halves))
    total = float(sum(df.values())) + data.draw(st.sampled_from([0.0, 0.5, 7.0]))
    sitg, other = data.draw(halves), data.draw(halves)
    defaulting = data.draw(st.sets(st.sampled_from([*results.groups, "G9", "X"])))
    args: tuple[Any, ...] = (results, defaulting, df, sitg, other, total)

    if defaulting - set(results.groups):
        with pytest.raises(UnknownGroupError) as got_error:
            what_if(*args)
        with pytest.raises(UnknownGroupError) as want_error:
            plain_what_if(*args)
        assert got_error.value.group in defaulting - set(results.groups)
        assert want_error.value.group in defaulting - set(results.groups)
        return
    got, want = what_if(*args), plain_what_if(*args)

    assert got == want  # small integers and halves are exact
    assert sum(layer.used for layer in got.waterfall) == pytest.approx(
        got.loss_over_margin, abs=MONEY_ATOL)


@settings(max_examples=100, deadline=None)
@given(matrices, st.data())
def test_what_if_the_cover2_pair_defaults_is_the_cover2_waterfall(
        exposure: FloatArray, data: st.DataObject) -> None:
    scenarios = ids("S", exposure.shape[1], data)
    results = results_of(exposure, exposure, scenarios, {})
    df = {g: data.draw(halves) for g in results.groups}
    total, sitg, other = float(sum(df.values())), data.draw(halves), data.draw(halves)
    pair = results.credit.cover.top
    layers = cover2_waterfall(results, df, sitg, other, total)

    assert layers == plain_cover2_waterfall(results, df, sitg, other, total)
    if results.credit.cover.scenario is not None:
        # The pair's own worst scenario may differ only by an equal amount.
        wanted = what_if(results, {t.group for t in pair}, df, sitg, other, total)
        assert wanted.loss_over_margin == sum(t.amount for t in pair)
        assert wanted.waterfall == layers
    assert layers[-1].used == pytest.approx(
        max(0.0, results.credit.cover2 - (total + sitg + other)), abs=MONEY_ATOL)


books = loss_books(money, members=5)


@settings(max_examples=60, deadline=None)
@given(books, money, money)
def test_cover2_waterfall_of_real_books(book: dict[str, Any], sitg: float,
                                        other: float) -> None:
    ccp = ccp_with_losses(**book, resources=Resources(sitg, other))
    results = ccp.publish(now=0.0)[0]
    df = default_fund_by_group(ccp.reference.values())
    args = (results, df, sitg, other, results.credit.default_fund)
    got, want = cover2_waterfall(*args), plain_cover2_waterfall(*args)

    tol = tolerance(results.credit.prefunded, results.credit.cover2)
    assert [layer.used for layer in got] == pytest.approx([layer.used for layer in want],
                                                          abs=tol)
    assert got[-1].used == pytest.approx(max(0.0, -results.credit.headroom), abs=tol)
    assert sum(layer.used for layer in got) == pytest.approx(results.credit.cover2, abs=tol)
