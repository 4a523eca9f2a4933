"""The stress-testing desk's figures: concentration, defaults to exhaustion, waterfall, what-if.

The worked credit example of docs/methodology.md with its exact answers, the edge
cases of each definition (nothing exposed, no scenarios, a sum equal to the
prefunded resources, ties), and the cover-2 waterfall's uncovered layer against
the credit headroom on random books.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.desk import (
    LAYERS,
    Concentration,
    DefaultsToExhaustion,
    Layer,
    UnknownGroupError,
    concentration,
    cover2_waterfall,
    credit_concentration,
    credit_defaults_to_exhaustion,
    default_fund_by_group,
    defaults_to_exhaustion,
    liquidity_concentration,
    waterfall,
    what_if,
)
from risk.model import LiquidityType, LiquidResource, Resources
from risk.results import Results
from tests.fixtures import ccp_with_losses
from tests.property.strategies import loss_books
from tests.tolerances import MONEY_ATOL, MONEY_RTOL
from tests.unit.test_worked_examples import AFFILIATES

SITG = 15.0


def worked_example(resources: Resources | None = None) -> tuple[Results, dict[str, float]]:
    """The affiliates example published, and each group's default fund contributions."""
    ccp = ccp_with_losses(**AFFILIATES, groups={"A1": "A", "A2": "A"},
                          resources=resources or Resources(skin_in_the_game=SITG))
    return ccp.publish(now=0.0)[0], default_fund_by_group(ccp.reference.values())


def used(layers: tuple[Layer, ...]) -> list[float]:
    return [layer.used for layer in layers]


def money(expected: Any) -> Any:
    return pytest.approx(expected, abs=MONEY_ATOL)


# -- the worked example ------------------------------------------------------------------


def test_worked_example_group_exposures_and_default_fund() -> None:
    results, df = worked_example()

    assert results.groups == ("A", "B", "C", "D")
    assert results.scenarios == ("S1", "S2", "S3")
    np.testing.assert_allclose(results.exposure_by_group_scenario,
                               [[45, 0, 100], [40, 90, 0], [0, 70, 5], [5, 40, 0]],
                               rtol=0, atol=MONEY_ATOL)
    assert df == money({"A": 50, "B": 40, "C": 35, "D": 15})
    assert results.credit.cover2 == money(160)
    assert results.credit.prefunded == money(155)


def test_worked_example_concentration_in_the_binding_scenario() -> None:
    results, _ = worked_example()
    got = credit_concentration(results)

    # S2: B 90 + C 70 + D 40 + A 0 = 200; shares 0.45, 0.35, 0.2.
    assert got.total == money(200)
    assert got.top2_share == pytest.approx(0.8, abs=MONEY_ATOL)
    assert got.hhi == pytest.approx(0.45**2 + 0.35**2 + 0.2**2, abs=MONEY_ATOL)
    assert got.hhi == pytest.approx(0.365, abs=MONEY_ATOL)


def test_worked_example_liquidity_concentration_has_its_own_binding_scenario() -> None:
    results, _ = worked_example()
    got = liquidity_concentration(results)

    # No cash, no obligations, no lines: the drain is the group's loss. S2 binds:
    # B 150 + C 120 = 270 of A 30 + B 150 + C 120 + D 60 = 360.
    assert results.liquidity.cover.scenario == "S2"
    assert got.total == money(360)
    assert got.top2_share == pytest.approx(0.75, abs=MONEY_ATOL)
    assert got.hhi == pytest.approx((30**2 + 150**2 + 120**2 + 60**2) / 360**2, abs=MONEY_ATOL)


def test_worked_example_two_defaults_exhaust_the_prefunded_resources() -> None:
    results, _ = worked_example()

    # S2: 90 + 70 = 160 > 155. S1: 45 + 40 + 5 = 90 and S3: 100 + 5 = 105 never exceed it.
    got = credit_defaults_to_exhaustion(results)
    assert got is not None
    assert (got.groups, got.scenario, got.defaulters) == (2, "S2", ("B", "C"))
    assert got.loss == money(160)


def test_worked_example_cover2_waterfall() -> None:
    results, df = worked_example()
    layers = cover2_waterfall(results, df, SITG, 0.0, results.credit.default_fund)

    assert [layer.layer for layer in layers] == list(LAYERS)
    assert [layer.size for layer in layers] == [money(75), money(15), money(65), money(0), None]
    assert used(layers) == money([75, 15, 65, 0, 5])
    assert sum(used(layers)) == money(160)
    assert layers[-1].used == money(max(0.0, -results.credit.headroom))


def test_worked_example_what_if_the_cover2_pair_defaults() -> None:
    results, df = worked_example()
    got = what_if(results, {"C", "B"}, df, SITG, 0.0, results.credit.default_fund)

    # Credit: S1 40 + 0, S2 90 + 70, S3 0 + 5. Liquidity: S1 100 + 40, S2 150 + 120, S3 30 + 55.
    assert got.groups == ("B", "C")
    assert (got.credit_scenario, got.loss_over_margin) == ("S2", money(160))
    assert used(got.waterfall) == money([75, 15, 65, 0, 5])
    assert got.uncovered == money(5)
    assert (got.liquidity_scenario, got.drain) == ("S2", money(270))
    assert got.qualifying == money(0)
    assert got.liquidity_headroom == money(-270)


def test_worked_example_what_if_the_affiliates_default() -> None:
    results, df = worked_example()
    got = what_if(results, ["A", "A"], df, SITG, 0.0, results.credit.default_fund)

    # A in S3: 100 against its own 50, SITG 15 and 35 of the survivors' 90.
    assert got.groups == ("A",)
    assert (got.credit_scenario, got.loss_over_margin) == ("S3", money(100))
    assert [layer.size for layer in got.waterfall] == [money(50), money(15), money(90),
                                                       money(0), None]
    assert used(got.waterfall) == money([50, 15, 35, 0, 0])
    assert (got.liquidity_scenario, got.drain) == ("S3", money(170))


def test_what_if_with_qualifying_liquid_resources() -> None:
    resources = Resources(skin_in_the_game=SITG, liquid_resources=(
        LiquidResource("central bank", LiquidityType.CENTRAL_BANK_CASH, 200),
        LiquidResource("line from D", LiquidityType.COMMITTED_CREDIT_LINE, 50, provider="D"),
        LiquidResource("equities", LiquidityType.OTHER, 1_000),
    ))
    results, df = worked_example(resources)
    got = what_if(results, {"D"}, df, SITG, 0.0, results.credit.default_fund)

    # D's drain is its loss plus its own line: S1 75, S2 110, S3 60; Q = 250 (equities do not
    # qualify).
    assert (got.liquidity_scenario, got.drain) == ("S2", money(110))
    assert got.qualifying == money(250)
    assert got.liquidity_headroom == money(140)


def test_what_if_nobody_defaults() -> None:
    results, df = worked_example()
    got = what_if(results, [], df, SITG, 0.0, results.credit.default_fund)

    # X = 0 in every scenario: the tie goes to the scenario id sorting first.
    assert got.groups == ()
    assert (got.credit_scenario, got.loss_over_margin) == ("S1", 0.0)
    assert used(got.waterfall) == [0.0] * 5
    assert got.waterfall[2].size == money(140)
    assert (got.liquidity_scenario, got.drain) == ("S1", 0.0)


def test_what_if_an_unknown_group_is_named() -> None:
    results, df = worked_example()

    with pytest.raises(UnknownGroupError, match="'A1'") as raised:
        what_if(results, {"B", "A1"}, df, SITG, 0.0, results.credit.default_fund)
    assert raised.value.group == "A1"
    assert isinstance(raised.value, ValueError)


def test_what_if_without_scenarios() -> None:
    results = ccp_with_losses({"A": {}, "B": {}}).publish(now=0.0)[0]
    got = what_if(results, {"A"}, {"A": 10.0}, 5.0, 0.0, 10.0)

    assert (got.credit_scenario, got.loss_over_margin) == (None, 0.0)
    assert used(got.waterfall) == [0.0] * 5
    assert (got.liquidity_scenario, got.drain) == (None, 0.0)


# -- concentration ------------------------------------------------------------------------


def test_concentration_is_undefined_when_nothing_is_exposed() -> None:
    matrix = np.zeros((3, 2))
    assert concentration(matrix, ["S1", "S2"], "S1", 0.0) == Concentration(0.0, None, None)


def test_concentration_without_a_binding_scenario() -> None:
    assert concentration(np.zeros((2, 0)), [], None, 0.0) == Concentration(0.0, None, None)
    results = ccp_with_losses({"A": {}}).publish(now=0.0)[0]
    assert credit_concentration(results) == Concentration(0.0, None, None)
    assert liquidity_concentration(results) == Concentration(0.0, None, None)


def test_concentration_of_one_group_is_total() -> None:
    got = concentration(np.array([[0.0, 7.0]]), ["S1", "S2"], "S2", 7.0)
    assert (got.total, got.top2_share, got.hhi) == (7.0, 1.0, 1.0)


def test_concentration_reads_the_binding_column_by_id() -> None:
    matrix = np.array([[1.0, 3.0], [1.0, 1.0]])
    got = concentration(matrix, ["S9", "S1"], "S1", 4.0)
    assert got.total == money(4)
    assert got.hhi == money(0.75**2 + 0.25**2)
    with pytest.raises(ValueError, match="'S5'"):
        concentration(matrix, ["S9", "S1"], "S5", 4.0)


# -- defaults to exhaustion ---------------------------------------------------------------


def test_a_sum_equal_to_the_prefunded_resources_does_not_exhaust_them() -> None:
    matrix = np.array([[5.0], [5.0]])
    assert defaults_to_exhaustion(matrix, ["G1", "G2"], ["S1"], 10.0) is None
    got = defaults_to_exhaustion(matrix, ["G1", "G2"], ["S1"], 9.5)
    assert got == DefaultsToExhaustion(2, "S1", 10.0, ("G1", "G2"))
    assert defaults_to_exhaustion(matrix, ["G1", "G2"], ["S1"], 5.0) == got
    got = defaults_to_exhaustion(matrix, ["G1", "G2"], ["S1"], 4.0)
    assert got == DefaultsToExhaustion(1, "S1", 5.0, ("G1",))


def test_never_exhausted() -> None:
    matrix = np.array([[1.0, 2.0], [3.0, 0.0]])
    assert defaults_to_exhaustion(matrix, ["G1", "G2"], ["S1", "S2"], 4.0) is None
    assert defaults_to_exhaustion(np.zeros((0, 2)), [], ["S1", "S2"], 0.0) is None
    assert defaults_to_exhaustion(np.zeros((2, 0)), ["G1", "G2"], [], -1.0) is None


def test_nothing_prefunded_is_exhausted_by_the_first_exposed_group() -> None:
    matrix = np.array([[0.0, 0.0], [0.0, 2.0]])
    got = defaults_to_exhaustion(matrix, ["G1", "G2"], ["S1", "S2"], 0.0)
    assert got == DefaultsToExhaustion(1, "S2", 2.0, ("G2",))


def test_fewest_defaults_first_then_the_larger_sum() -> None:
    # S1 needs one group (12 > 10); S2 and S3 need two; S3's two sum to more than S2's.
    matrix = np.array([[12.0, 6.0, 9.0], [0.0, 6.0, 9.0], [0.0, 6.0, 0.0]])
    got = defaults_to_exhaustion(matrix, ["G1", "G2", "G3"], ["S1", "S2", "S3"], 10.0)
    assert got == DefaultsToExhaustion(1, "S1", 12.0, ("G1",))

    got = defaults_to_exhaustion(matrix[:, 1:], ["G1", "G2", "G3"], ["S2", "S3"], 10.0)
    assert got == DefaultsToExhaustion(2, "S3", 18.0, ("G1", "G2"))


def test_equal_defaults_and_sums_go_to_the_scenario_id_sorting_first() -> None:
    # Two groups sum to 8 in every scenario; columns not in id order: S1, the last, wins.
    matrix = np.array([[5.0, 4.0, 4.0], [0.0, 4.0, 4.0], [3.0, 4.0, 0.0]])
    got = defaults_to_exhaustion(matrix, ["G1", "G2", "G3"], ["S3", "S2", "S1"], 7.5)
    assert got == DefaultsToExhaustion(2, "S1", 8.0, ("G1", "G2"))


def test_tied_groups_are_named_in_id_order() -> None:
    matrix = np.array([[2.0], [5.0], [2.0], [2.0]])
    got = defaults_to_exhaustion(matrix, ["G1", "G2", "G3", "G4"], ["S1"], 8.0)
    assert got == DefaultsToExhaustion(3, "S1", 9.0, ("G2", "G1", "G3"))


def test_defaults_to_exhaustion_checks_the_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        defaults_to_exhaustion(np.zeros((2, 3)), ["G1"], ["S1", "S2", "S3"], 1.0)


def test_defaults_to_exhaustion_over_a_thousand_scenarios() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.integers(0, 20, size=(150, 1_000)).astype(np.float64)
    groups = [f"G{g:03d}" for g in range(150)]
    scenarios = [f"S{s:04d}" for s in range(1_000)]
    got = defaults_to_exhaustion(matrix, groups, scenarios, 200.0)

    assert got is not None
    best = None
    for s in range(1_000):
        column = sorted(matrix[:, s], reverse=True)
        n = next(n for n in range(1, 151) if sum(column[:n]) > 200.0)
        key = (n, -sum(column[:n]), scenarios[s])
        best = key if best is None or key < best else best
    assert best is not None
    assert (got.groups, -got.loss, got.scenario) == best


# -- waterfall -----------------------------------------------------------------------------


def test_a_loss_smaller_than_the_defaulters_contributions_stops_there() -> None:
    layers = waterfall(10.0, 75.0, 15.0, 65.0, 0.0)
    assert layers == (Layer("defaulters_default_fund", 75.0, 10.0),
                      Layer("skin_in_the_game", 15.0, 0.0),
                      Layer("survivors_default_fund", 65.0, 0.0),
                      Layer("other_prefunded", 0.0, 0.0),
                      Layer("uncovered", None, 0.0))


def test_each_layer_in_turn() -> None:
    assert used(waterfall(0.0, 1.0, 2.0, 3.0, 4.0)) == [0, 0, 0, 0, 0]
    assert used(waterfall(2.0, 1.0, 2.0, 3.0, 4.0)) == [1, 1, 0, 0, 0]
    assert used(waterfall(5.0, 1.0, 2.0, 3.0, 4.0)) == [1, 2, 2, 0, 0]
    assert used(waterfall(8.0, 1.0, 2.0, 3.0, 4.0)) == [1, 2, 3, 2, 0]
    assert used(waterfall(10.0, 1.0, 2.0, 3.0, 4.0)) == [1, 2, 3, 4, 0]
    assert used(waterfall(12.5, 1.0, 2.0, 3.0, 4.0)) == [1, 2, 3, 4, 2.5]
    assert used(waterfall(3.0, 0.0, 0.0, 0.0, 0.0)) == [0, 0, 0, 0, 3]


@pytest.mark.parametrize("amounts", [(-1.0, 1.0, 1.0, 1.0, 1.0), (1.0, 1.0, -0.5, 1.0, 1.0),
                                     (1.0, 1.0, 1.0, 1.0, float("nan"))])
def test_a_negative_amount_is_refused(amounts: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        waterfall(*amounts)


# -- the cover-2 waterfall leaves uncovered what the headroom lacks -----------------------

small = st.integers(0, 60).map(float)
books = loss_books(small, members=6)


@settings(max_examples=60, deadline=None)
@given(books, small, small)
def test_cover2_waterfall_uncovered_is_the_missing_headroom(book: dict[str, Any], sitg: float,
                                                             other: float) -> None:
    ccp = ccp_with_losses(**book, resources=Resources(sitg, other))
    results = ccp.publish(now=0.0)[0]
    layers = cover2_waterfall(results, default_fund_by_group(ccp.reference.values()), sitg,
                              other, results.credit.default_fund)

    tol = MONEY_ATOL + MONEY_RTOL * max(1.0, results.credit.prefunded, results.credit.cover2)
    assert layers[-1].used == pytest.approx(max(0.0, -results.credit.headroom), abs=tol)
    assert sum(used(layers)) == pytest.approx(results.credit.cover2, abs=tol)
    assert all(layer.used >= 0.0 for layer in layers)
