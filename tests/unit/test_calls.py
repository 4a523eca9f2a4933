"""Margin calls through the core: levels, minimum transfer, cool-down, ids."""

from __future__ import annotations

import numpy as np

from risk.calls import CallPolicy, MarginLevel, call_id
from risk.model import Prices
from tests.fixtures import ccp_with_losses

POLICY = CallPolicy(warning_fraction_of_im=0.1, call_fraction_of_im=0.5, minimum_transfer=5.0,
                    cooldown_s=60.0)


def calls_for(loss: float, im: float = 100.0, now: float = 0.0) -> list[tuple[str, float]]:
    ccp = ccp_with_losses({"A": {"S": loss}}, initial_margin={"A": im})
    ccp.use_policy(POLICY)
    return [(c.level.label, c.amount) for c in ccp.publish(now)[1]]


def test_levels_are_fractions_of_initial_margin() -> None:
    assert calls_for(105.0) == []  # exposure 5 < warning level 10
    assert calls_for(120.0) == [("warning", 20.0)]
    assert calls_for(160.0) == [("call", 60.0)]


def test_a_call_is_reissued_only_after_growth_and_cool_down() -> None:
    ccp = ccp_with_losses({"A": {"S": 160.0}}, initial_margin={"A": 100.0})
    ccp.use_policy(POLICY)

    def mark(price: float, now: float) -> list[tuple[str, float]]:
        ccp.apply_prices(Prices(["book-A"], np.array([price]), np.array([now])))
        return [(c.level.label, c.amount) for c in ccp.publish(now)[1]]

    assert [(c.level.label, c.amount) for c in ccp.publish(now=0.0)[1]] == [("call", 60.0)]
    assert mark(1.05, now=10.0) == []  # grew by 7.95, but within the cool-down
    assert mark(1.05, now=70.0) == [("call", 68.0)]  # 167.95 - 100, rounded up
    assert mark(1.07, now=140.0) == []  # grew by 3.2 < minimum transfer
    assert mark(0.6, now=200.0) == []  # exposure 0: the episode ends
    assert mark(1.0, now=210.0) == [("call", 60.0)]  # a new crossing is issued afresh


def test_call_id_is_a_pure_function_of_the_decision() -> None:
    call, warning = MarginLevel.CALL, MarginLevel.WARNING
    assert call_id("A", call, 60.0, "S", 1.0) == call_id("A", call, 60.0, "S", 1.0)
    assert call_id("A", call, 60.0, "S", 1.0) != call_id("A", call, 61.0, "S", 1.0)
    assert call_id("A", call, 60.0, "S", 1.0) != call_id("A", warning, 60.0, "S", 1.0)


def test_members_of_a_partition_still_catching_up_are_called_once_it_counts() -> None:
    ccp = ccp_with_losses({"A": {"S": 160.0}, "B": {"S": 170.0}},
                          initial_margin={"A": 100.0, "B": 100.0})
    ccp.use_policy(POLICY)
    ccp.own({0, 1}, {"A": 0, "B": 1}.__getitem__)

    def called(now: float, rebuilding: set[int]) -> list[tuple[str, float]]:
        ccp.holdings.rebuild(rebuilding)
        return [(c.member, c.amount) for c in ccp.refresh(now)[1]]

    assert called(0.0, {1}) == [("A", 60.0)]
    assert called(1.0, {1}) == []  # B's partition is still being rebuilt
    assert called(2.0, set()) == [("B", 70.0)]  # over its level when it starts to count
