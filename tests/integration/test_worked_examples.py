"""The worked examples of docs/methodology.md through the real broker and a real worker."""

from __future__ import annotations

import pytest

from tests.fixtures import messages_with_losses
from tests.integration.cluster import Feed, Spawn, eventually
from tests.tolerances import MONEY_ATOL, MULTIPLIER_RTOL, REPORT_ATOL
from tests.unit.test_worked_examples import (
    AFFILIATES,
    QUARTERS,
    expected_report,
    quarter_book,
    quarter_resources,
)

pytestmark = pytest.mark.integration


async def send_all(feed: Feed, messages: list[tuple[str, str | None, object]]) -> None:
    for topic, key, value in messages:
        await feed.send(topic, value, key)
    await feed.flush()


async def test_credit_with_affiliates(spawn: Spawn, feed: Feed) -> None:
    worker = await spawn().healthy()
    await send_all(feed, messages_with_losses(
        **AFFILIATES, groups={"A1": "A", "A2": "A"},
        resources={"skin_in_the_game": 15, "liquid_resources": []}))

    def cover2() -> dict | None:
        status, document = worker.get("/cover2")
        if status == 200 and document["credit"]["prefunded"] == 155 and \
                document["scenarios"] == 3 and document["counts"]["trades"] == 5:
            return document
        return None

    credit = (await eventually(cover2, what="the example's book applied"))["credit"]
    assert credit["cover2"] == pytest.approx(160, abs=MONEY_ATOL)
    assert credit["scenario"] == "S2"
    assert credit["top"] == [{"group": "B", "exposure": 90.0}, {"group": "C", "exposure": 70.0}]
    assert credit["cover1"] == pytest.approx(100, abs=MONEY_ATOL)
    assert credit["headroom"] == pytest.approx(-5, abs=MONEY_ATOL)
    assert credit["coverage_ratio"] == pytest.approx(155 / 160)
    assert credit["worst_group_mode"]["cover2"] == pytest.approx(190, abs=MONEY_ATOL)

    status, metrics = worker.get("/metrics")
    assert status == 200
    assert "ccp_credit_cover2 160.0" in metrics
    assert "ccp_credit_headroom -5.0" in metrics
    assert 'ccp_credit_top_exposure{group="B",rank="1"} 90.0' in metrics
    assert 'ccp_credit_top_exposure{group="C",rank="2"} 70.0' in metrics

    # The stress-testing desk on the same example: concentration in S2, defaults to
    # exhaustion, the waterfall of B and C, and the same from /what-if and /metrics.
    desk = worker.get("/cover2")[1]["credit"]
    assert desk["concentration"]["total"] == pytest.approx(200, abs=MONEY_ATOL)
    assert desk["concentration"]["top2_share"] == pytest.approx(0.8, abs=MONEY_ATOL)
    assert desk["concentration"]["hhi"] == pytest.approx(0.365, abs=MONEY_ATOL)
    exhaustion = desk["reverse_stress"]["defaults_to_exhaustion"]
    assert (exhaustion["groups"], exhaustion["scenario"]) == (2, "S2")
    layers = {layer["layer"]: layer["used"] for layer in desk["waterfall"]}
    assert layers == pytest.approx({"defaulters_default_fund": 75, "skin_in_the_game": 15,
                                    "survivors_default_fund": 65, "other_prefunded": 0,
                                    "uncovered": 5}, abs=MONEY_ATOL)
    status, what_if = worker.get("/what-if?default=B&default=C")
    assert status == 200 and what_if["credit"]["scenario"] == "S2"
    assert {layer["layer"]: layer["used"] for layer in what_if["credit"]["waterfall"]} == \
        pytest.approx(layers, abs=MONEY_ATOL)
    assert worker.get("/what-if?default=Z")[0] == 400

    def multiplier() -> dict | None:
        return worker.get("/cover2")[1]["credit"]["reverse_stress"]["multiplier"]

    k_star = await eventually(multiplier, what="the reverse stress test worked out")
    assert k_star["k"] == pytest.approx(53 / 54, rel=MULTIPLIER_RTOL)
    assert k_star["scenario"] == "S2"
    assert [t["group"] for t in k_star["top"]] == ["B", "C"]
    assert "ccp_credit_reverse_stress_multiplier 0.98148" in worker.get("/metrics")[1]
    assert "ccp_credit_concentration_top2_share 0.8" in metrics
    assert "ccp_credit_defaults_to_exhaustion 2.0" in metrics
    assert 'ccp_credit_waterfall_used{layer="uncovered"} 5.0' in metrics

    status, group = worker.get("/groups/A")
    assert status == 200
    assert group["members"] == ["A1", "A2"]
    assert group["worst_scenario"] == "S3" and group["margin_level"] in ("none", "warning",
                                                                          "call")
    assert worker.get("/groups") == (200, {"groups": ["A", "B", "C", "D"]})
    assert "/cover2" in worker.get("/")[1]["endpoints"]
    assert worker.get("/cover2")[1]["as_of_iso"].endswith("+00:00")
    assert group["exposure"] == {"S1": 45.0, "S2": 0.0, "S3": 100.0}


async def test_liquidity_with_a_members_committed_line(spawn: Spawn, feed: Feed) -> None:
    worker = await spawn().healthy()
    resources = {"skin_in_the_game": 0, "liquid_resources": [
        {"name": "central bank", "type": "central_bank_cash", "amount": 10_000},
        {"name": "commercial banks", "type": "commercial_bank_cash", "amount": 3_000},
        {"name": "line from B", "type": "committed_credit_line", "amount": 4_000,
         "provider": "B"},
        {"name": "repo", "type": "committed_repo", "amount": 5_000},
        {"name": "bonds", "type": "prearranged_funding_collateral", "amount": 8_000},
        {"name": "uncommitted repo", "type": "uncommitted_line", "amount": 6_000},
        {"name": "equities", "type": "other", "amount": 2_000}]}
    await send_all(feed, messages_with_losses(
        {"A": {"S1": 14_000}, "B": {"S1": 11_000}, "C": {"S1": 9_000}}, resources=resources))

    def liquidity() -> dict | None:
        status, document = worker.get("/cover2")
        if status == 200 and document["liquidity"]["qualifying"] == 30_000 and \
                document["counts"]["trades"] == 3 and document["scenarios"] == 1:
            return document["liquidity"]
        return None

    result = await eventually(liquidity, what="the example's book applied")
    assert result["cover2"] == pytest.approx(29_000, abs=MONEY_ATOL)
    assert result["headroom"] == pytest.approx(1_000, abs=MONEY_ATOL)
    assert result["top"] == [{"group": "B", "drain": 15_000.0}, {"group": "A", "drain": 14_000.0}]


@pytest.mark.parametrize(("column", "quarter"), list(enumerate(QUARTERS)))
async def test_quarterly_report(spawn: Spawn, feed: Feed, column: int, quarter: str) -> None:
    worker = await spawn().healthy()
    resources = quarter_resources(quarter)
    await send_all(feed, messages_with_losses(**quarter_book(quarter), resources={
        "skin_in_the_game": resources.skin_in_the_game,
        "other_prefunded": resources.other_prefunded,
        "liquid_resources": [{"name": r.name, "type": r.type.value, "amount": r.amount}
                             for r in resources.liquid_resources]}))
    expected = expected_report(column)

    def report() -> dict | None:
        status, document = worker.get("/cover2")
        if status != 200 or document["counts"]["trades"] != 3 or document["scenarios"] != 1 \
                or document["credit"]["prefunded"] != pytest.approx(expected["prefunded"]):
            return None
        return document

    document = await eventually(report, what="the quarter's book applied")
    credit, liquidity = document["credit"], document["liquidity"]
    assert {
        "C1": credit["top"][0]["exposure"], "C2": credit["top"][1]["exposure"],
        "cover2": credit["cover2"], "prefunded": credit["prefunded"],
        "credit surplus": credit["headroom"], "L1": liquidity["top"][0]["drain"],
        "L2": liquidity["top"][1]["drain"], "liquidity cover2": liquidity["cover2"],
        "qualifying": liquidity["qualifying"], "liquidity surplus": liquidity["headroom"],
    } == pytest.approx(expected, abs=REPORT_ATOL)
