"""A failure that repeats is said once per window, with how many were held back."""

from __future__ import annotations

import logging

import pytest

from streams.logs import Repeats, silenced


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_error_passes_once_per_window_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.repeats")
    logger.addFilter(Repeats(window=5.0, clock=clock))
    with caplog.at_level(logging.ERROR, logger="test.repeats"):
        for _ in range(240):  # a second of a dead broker
            logger.error('Unable connect to "%s:%s": refused', "127.0.0.1", 9092)
            clock.now += 1 / 240
        logger.error("another kind of error")
        clock.now = 6.0
        logger.error('Unable connect to "%s:%s": refused', "127.0.0.1", 9092)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ['Unable connect to "127.0.0.1:9092": refused',
                     "another kind of error",
                     'Unable connect to "127.0.0.1:9092": refused [and 239 more like this in '
                     'the last 6 s]']


def test_silenced_holds_back_everything_below_critical_and_restores(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.silenced.child")
    with caplog.at_level(logging.INFO):
        with silenced("test.silenced"):
            logger.error("while probing")
        logger.error("after")
    assert [record.getMessage() for record in caplog.records] == ["after"]
