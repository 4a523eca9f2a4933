"""A fetched batch is applied in steps sized from what the steps of its topic cost."""

from __future__ import annotations

import pytest

from streams.kafka.ingest import FIRST_GUESS_S, STEP_S, Pace


def test_steps_keep_every_record_in_order_and_start_from_the_first_guess() -> None:
    pace, records = Pace(), list(range(10_000))
    steps = pace.steps("prices", records)
    assert [r for step in steps for r in step] == records
    assert len(steps[0]) == int(STEP_S / FIRST_GUESS_S)


def test_steps_follow_what_a_record_of_the_topic_cost() -> None:
    pace = Pace()
    for _ in range(40):  # prices at 20 us a record, trades at 2 us
        pace.took("prices", 500, 500 * 20e-6)
        pace.took("trades", 500, 500 * 2e-6)
    assert len(pace.steps("prices", list(range(10_000)))[0]) == pytest.approx(STEP_S / 20e-6,
                                                                               rel=0.01)
    assert len(pace.steps("trades", list(range(10_000)))[0]) == pytest.approx(STEP_S / 2e-6,
                                                                              rel=0.01)
    pace.took("prices", 1, 1.0)  # one slow step moves the average by a fifth
    assert pace.per_record["prices"] == pytest.approx(0.8 * 20e-6 + 0.2)
    assert pace.steps("prices", [1, 2, 3]) == [[1], [2], [3]]
