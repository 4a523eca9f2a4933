"""A fetched batch is applied in steps sized from what each topic's records cost."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from aiokafka import TopicPartition

from streams.kafka.ingest import (
    CATCH_UP_BATCHES,
    FIRST_GUESS_S,
    MIN_STEP,
    STEP_S,
    Pace,
    catching_up,
)

TRADES, COLLATERAL, PRICES = (TopicPartition("trades", 0), TopicPartition("collateral", 0),
                              TopicPartition("prices", 0))


def flat(steps: list[list[tuple[TopicPartition, list[int]]]]) -> list[tuple[str, int]]:
    return [(tp.topic, r) for step in steps for tp, records in step for r in records]


def test_steps_keep_every_record_in_order_and_start_from_the_first_guess() -> None:
    pace = Pace()
    batch = {TRADES: list(range(5_000)), COLLATERAL: list(range(300))}
    steps = pace.steps(batch)
    assert flat(steps) == [("trades", r) for r in range(5_000)] + \
        [("collateral", r) for r in range(300)]
    assert len(steps[0][0][1]) == int(STEP_S / FIRST_GUESS_S)


def test_a_small_batch_of_several_partitions_is_one_step() -> None:
    batch = {TRADES: [1, 2], COLLATERAL: [3], PRICES: [4, 5]}
    assert Pace().steps(batch) == [list(batch.items())]


def test_steps_follow_what_a_record_of_the_topic_cost() -> None:
    pace = Pace()
    for _ in range(60):  # prices at 20 us a record, trades at 2 us
        pace.took([(PRICES, [0] * 500)], 500 * 20e-6)
        pace.took([(TRADES, [0] * 500)], 500 * 2e-6)
    assert pace.cost("prices") == pytest.approx(20e-6, rel=0.01)
    assert pace.cost("trades") == pytest.approx(2e-6, rel=0.01)
    assert len(pace.steps({PRICES: list(range(10_000))})[0][0][1]) == pytest.approx(
        STEP_S / 20e-6, rel=0.01)
    pace.took([(PRICES, [0] * 500)], 1.0)  # one slow step moves the cost a fifth of the way
    assert pace.cost("prices") == pytest.approx(20e-6 * (0.8 + 0.2 * 1.0 / (500 * 20e-6)))


def test_however_slow_a_topic_seems_a_step_is_never_below_the_minimum() -> None:
    pace = Pace()
    pace.took([(TRADES, [0])], 10.0)  # one record that took 10 s (the process was stopped)
    steps = pace.steps({TRADES: list(range(1_000))})
    assert [len(records) for step in steps for _, records in step] == \
        [MIN_STEP] * (1_000 // MIN_STEP)


class Record(NamedTuple):
    offset: int


class Ends:
    """What a consumer last heard of its partitions' ends (aiokafka's ``highwater``)."""

    def __init__(self, ends: dict[TopicPartition, int | None]) -> None:
        self.ends = ends

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends[tp]


def records(first: int, last: int) -> list[Record]:
    return [Record(offset) for offset in range(first, last + 1)]


BEHIND = CATCH_UP_BATCHES * 5_000  # records that may wait while a batch is still stepped


@pytest.mark.parametrize(("ends", "whole"), [
    ({TRADES: 1_000 + BEHIND, PRICES: 600}, False),  # as many as may wait, no more
    ({TRADES: 1_000 + BEHIND, PRICES: 601}, True),  # one record more
    ({TRADES: 1_000 + BEHIND + 1, PRICES: 600}, True),
    ({TRADES: 1_000 + 5_001, PRICES: 600}, False),  # a burst of a full batch and more
    ({TRADES: None, PRICES: None}, False),  # no answer from the broker yet
])
def test_a_batch_is_applied_whole_only_while_several_full_batches_wait_after_it(
        ends: dict[TopicPartition, int | None], whole: bool) -> None:
    batch = {TRADES: records(0, 999), PRICES: records(100, 599)}
    assert catching_up(Ends(ends), batch, 5_000) is whole
