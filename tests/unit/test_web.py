"""The HTTP endpoints as plain functions of the results: no faust, no Kafka."""

from __future__ import annotations

from risk.ccp import MemberRows
from risk.desk import StressDesk, stress_desk
from risk.results import Results
from streams import web
from streams.readiness import Readiness, readiness
from tests.fixtures import ccp_with_losses
from tests.tolerances import MONEY_ATOL

COUNTS = {"trades": 5, "prices": 5, "collateral": 5, "duplicates": 0, "stale": 0,
          "rejected": 0, "forwarded": 0}
LOCAL = {"local": [0], "remote": [], "missing": []}
READY = Readiness(True, "", 0.02)
LOSSES = {"A1": {"S1": 70.0, "S2": 20.0}, "A2": {"S1": 45.0, "S2": 10.0},
          "B": {"S1": 100.0, "S2": 150.0}}
GROUPS = {"A1": "A", "A2": "A"}
IM = {"A1": 40.0, "A2": 30.0, "B": 60.0}


def results() -> tuple[Results, web.Response]:
    ccp = ccp_with_losses(LOSSES, groups=GROUPS, initial_margin=IM)
    published = ccp.publish(now=1.0)[0]
    return published, web.group(published, ccp.member_rows, "A", "USD")


def test_health_is_503_until_the_worker_is_healthy() -> None:
    assert web.healthz(False, "w1") == (503, {"status": "starting", "worker": "w1"})
    assert web.healthz(True, "w1") == (200, {"status": "ok", "worker": "w1"})


def test_cover2_is_503_before_there_are_results() -> None:
    status, document = web.cover2(None, "USD", COUNTS, LOCAL, READY, never_desk, None)
    assert status == 503 and "starting" in document["error"]


def test_cover2_serves_the_results() -> None:
    published, _ = results()
    status, document = web.cover2(published, "EUR", COUNTS, LOCAL, READY,
                                  lambda: stress_desk(published), None)
    assert status == 200
    assert document["currency"] == "EUR" and document["as_of"] == 1.0
    # S1: A 30 + 15 and B 40, 85; S2: B 90 and A 0, 90.
    assert abs(document["credit"]["cover2"] - 90.0) < MONEY_ATOL
    assert document["credit"]["scenario"] == "S2"
    assert document["counts"] == COUNTS and document["complete"] is True
    assert document["ready"] is True and document["fetch_age_s"] == READY.fetch_age_s
    assert document["credit"]["reverse_stress"]["multiplier"] is None  # not worked out yet


def test_a_group_gets_its_members_and_figures_and_an_unknown_one_a_404() -> None:
    published, (status, document) = results()
    assert status == 200
    assert document["members"] == ["A1", "A2"] and document["members_here"] == ["A1", "A2"]
    assert document["worst_scenario"] == "S1"  # A: 45 in S1, 0 in S2
    assert document["margin_level"] == "call"  # 30 over IM 40 is past 20% of it
    assert abs(document["exposure"]["S1"] - (30.0 + 15.0)) < MONEY_ATOL
    status, document = web.group(published, never, "NOPE", "USD")
    assert status == 404 and document["groups"] == ["A", "B"]
    assert web.group(None, never, "A", "USD")[0] == 404


def never(group: str) -> MemberRows:
    raise AssertionError(f"the rows of {group} were not to be read")


def test_ready_only_while_assigned_settled_computed_and_fetching() -> None:
    assert readiness(True, False, True, 0.5, 10.0).ready
    for not_ready, why in ((readiness(False, False, True, 0.5, 10.0), "assigned"),
                           (readiness(True, True, True, 0.5, 10.0), "rebalancing"),
                           (readiness(True, False, False, 0.5, 10.0), "no results"),
                           (readiness(True, False, True, None, 10.0), "no fetch"),
                           (readiness(True, False, True, 10.5, 10.0), "10.5 s")):
        assert not not_ready.ready and why in not_ready.reason, not_ready
        status, document = web.readyz(not_ready, "w1")
        assert status == 503 and document == {"ready": False, "worker": "w1",
                                               "reason": not_ready.reason,
                                               "fetch_age_s": not_ready.fetch_age_s}
    assert web.readyz(readiness(True, False, True, 0.5, 10.0), "w1")[0] == 200


def test_the_index_and_the_list_of_groups() -> None:
    published, _ = results()
    assert web.groups(published) == (200, {"groups": ["A", "B"]})
    assert web.groups(None) == (200, {"groups": []})
    assert web.index({"/cover2": "results"}) == (200, {"endpoints": {"/cover2": "results"}})


def never_desk() -> StressDesk:
    raise AssertionError("no desk without results")


def test_what_if_names_the_groups_and_refuses_unknown_ones() -> None:
    published, _ = results()
    status, document = web.what_if(published, ["B"], "USD")
    assert status == 200 and document["groups"] == ["B"]
    assert document["credit"]["scenario"] == "S2"  # B: 40 in S1, 90 in S2
    assert abs(document["credit"]["loss_over_margin"] - 90.0) < MONEY_ATOL
    assert [layer["layer"] for layer in document["credit"]["waterfall"]][-1] == "uncovered"
    assert web.what_if(published, ["B", "NOPE"], "USD")[0] == 400
    assert web.what_if(published, [], "USD")[0] == 400
    assert web.what_if(None, ["B"], "USD")[0] == 503
