"""The worked examples of docs/methodology.md, with their exact answers."""

from __future__ import annotations

from typing import Any

import pytest

from risk.cover import GroupAmount
from risk.model import LiquidityType, LiquidResource, Resources
from tests.fixtures import ccp_with_losses
from tests.tolerances import MONEY_ATOL, REPORT_ATOL, STATED_RATIO_ATOL

AFFILIATES = {
    "losses": {
        "A1": {"S1": 70, "S2": 20, "S3": 90},
        "A2": {"S1": 45, "S2": 10, "S3": 80},
        "B": {"S1": 100, "S2": 150, "S3": 30},
        "C": {"S1": 40, "S2": 120, "S3": 55},
        "D": {"S1": 25, "S2": 60, "S3": 10},
    },
    "initial_margin": {"A1": 40, "A2": 30, "B": 60, "C": 50, "D": 20},
    "default_fund": {"A1": 30, "A2": 20, "B": 40, "C": 35, "D": 15},
}


def test_same_scenario_ranking_with_affiliates() -> None:
    ccp = ccp_with_losses(**AFFILIATES, groups={"A1": "A", "A2": "A"},
                          resources=Resources(skin_in_the_game=15))
    credit = ccp.publish(now=0.0)[0].credit

    assert credit.cover2 == pytest.approx(160, abs=MONEY_ATOL)
    assert credit.cover.scenario == "S2"
    assert credit.cover.top == (GroupAmount("B", 90.0), GroupAmount("C", 70.0))
    assert credit.cover.cover1 == pytest.approx(100, abs=MONEY_ATOL)
    assert (credit.cover.cover1_group, credit.cover.cover1_scenario) == ("A", "S3")
    assert credit.prefunded == pytest.approx(155, abs=MONEY_ATOL)
    assert credit.headroom == pytest.approx(-5, abs=MONEY_ATOL)
    assert credit.coverage_ratio == pytest.approx(155 / 160)


def test_the_cross_scenario_sum_is_only_the_labelled_conservative_mode() -> None:
    ccp = ccp_with_losses(**AFFILIATES, groups={"A1": "A", "A2": "A"},
                          resources=Resources(skin_in_the_game=15))
    credit = ccp.publish(now=0.0)[0].credit

    assert credit.worst_group_mode == pytest.approx(190, abs=MONEY_ATOL)
    assert [(t.group, t.scenario) for t in credit.worst_group_top] == [("A", "S3"), ("B", "S2")]
    assert credit.cover2 != pytest.approx(190)


def test_without_affiliates_cover1_is_the_largest_single_member() -> None:
    credit = ccp_with_losses(**AFFILIATES).publish(now=0.0)[0].credit

    assert credit.cover.cover1 == pytest.approx(90, abs=MONEY_ATOL)
    assert credit.cover.cover1_group == "B"


def test_default_fund_minimum_of_emir_article_42_3() -> None:
    ccp = ccp_with_losses(**AFFILIATES, groups={"A1": "A", "A2": "A"})
    credit = ccp.publish(now=0.0)[0].credit

    # S1: A 45, B 40, C 0, D 5 -> max(45, 45); S2: 90, 70, 40 -> max(90, 110);
    # S3: A 100, C 5 -> max(100, 5).
    assert credit.default_fund_minimum == pytest.approx(110, abs=MONEY_ATOL)
    assert credit.default_fund_minimum_scenario == "S2"


LIQUID_RESOURCES = Resources(liquid_resources=(
    LiquidResource("central bank", LiquidityType.CENTRAL_BANK_CASH, 10_000),
    LiquidResource("commercial banks", LiquidityType.COMMERCIAL_BANK_CASH, 3_000),
    LiquidResource("line from B", LiquidityType.COMMITTED_CREDIT_LINE, 4_000, provider="B"),
    LiquidResource("repo with a non-member", LiquidityType.COMMITTED_REPO, 5_000),
    LiquidResource("bonds, prearranged", LiquidityType.PREARRANGED_FUNDING_COLLATERAL, 8_000),
    LiquidResource("uncommitted repo", LiquidityType.UNCOMMITTED_LINE, 6_000),
    LiquidResource("equities", LiquidityType.OTHER, 2_000),
))


def test_liquidity_with_a_members_committed_line() -> None:
    ccp = ccp_with_losses({"A": {"S1": 14_000}, "B": {"S1": 11_000}, "C": {"S1": 9_000}},
                          resources=LIQUID_RESOURCES)
    liquidity = ccp.publish(now=0.0)[0].liquidity

    assert liquidity.qualifying == pytest.approx(30_000, abs=MONEY_ATOL)
    assert liquidity.cover.top == (GroupAmount("B", 15_000.0), GroupAmount("A", 14_000.0))
    assert liquidity.cover2 == pytest.approx(29_000, abs=MONEY_ATOL)
    assert liquidity.headroom == pytest.approx(1_000, abs=MONEY_ATOL)
    assert liquidity.headroom != pytest.approx(5_000)
    assert liquidity.coverage_ratio == pytest.approx(1.034, abs=STATED_RATIO_ATOL)


BN = 1e9
QUARTERS = {
    # Groups X, Y, Z: credit exposure = loss - IM; liquidity need = loss + obligation.
    "Q1": {"loss": {"X": 2.0, "Y": 1.7, "Z": 1.2}, "obligation": {"X": 0.5, "Z": 1.0},
           "other_prefunded": 1.0, "qualifying": 6.0},
    "Q2": {"loss": {"X": 2.3, "Y": 1.9, "Z": 1.4}, "obligation": {"X": 0.6, "Z": 1.0},
           "other_prefunded": 1.1, "qualifying": 5.9},
}
QUARTERLY_REPORT = {
    # metric: (Q1, Q2) in bn
    "C1": (1.8, 2.1), "C2": (1.5, 1.7), "cover2": (3.3, 3.8), "prefunded": (4.5, 4.6),
    "credit surplus": (1.2, 0.8), "L1": (2.5, 2.9), "L2": (2.2, 2.4),
    "liquidity cover2": (4.7, 5.3), "qualifying": (6.0, 5.9), "liquidity surplus": (1.3, 0.6),
}


def quarter_book(quarter: str) -> dict[str, Any]:
    """The book of a quarter, as keyword arguments of ``ccp_with_losses``."""
    q = QUARTERS[quarter]
    return {"losses": {g: {"S": loss * BN} for g, loss in q["loss"].items()},
            "initial_margin": dict.fromkeys(q["loss"], 0.2 * BN),
            "settlement_obligation": {g: v * BN for g, v in q["obligation"].items()},
            "default_fund": dict.fromkeys(q["loss"], 1.0 * BN)}


def quarter_resources(quarter: str) -> Resources:
    q = QUARTERS[quarter]
    return Resources(skin_in_the_game=0.5 * BN, other_prefunded=q["other_prefunded"] * BN,
                     liquid_resources=(LiquidResource("central bank",
                                                      LiquidityType.CENTRAL_BANK_CASH,
                                                      q["qualifying"] * BN),))


def expected_report(column: int) -> dict[str, float]:
    return {metric: values[column] * BN for metric, values in QUARTERLY_REPORT.items()}


@pytest.mark.parametrize(("column", "quarter"), list(enumerate(QUARTERS)))
def test_quarterly_report(column: int, quarter: str) -> None:
    ccp = ccp_with_losses(**quarter_book(quarter), resources=quarter_resources(quarter))
    results = ccp.publish(now=0.0)[0]
    credit, liquidity = results.credit, results.liquidity
    report = {
        "C1": credit.cover.top[0].amount, "C2": credit.cover.top[1].amount,
        "cover2": credit.cover2, "prefunded": credit.prefunded,
        "credit surplus": credit.headroom, "L1": liquidity.cover.top[0].amount,
        "L2": liquidity.cover.top[1].amount, "liquidity cover2": liquidity.cover2,
        "qualifying": liquidity.qualifying, "liquidity surplus": liquidity.headroom,
    }

    assert report == pytest.approx(expected_report(column), abs=REPORT_ATOL)
    # The two largest drains are not the two largest exposures.
    assert [t.group for t in credit.cover.top] == ["X", "Y"]
    assert [t.group for t in liquidity.cover.top] == ["X", "Z"]
