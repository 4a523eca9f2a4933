"""The report's days and periods equal a second-by-second scan of the same results."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.periods import DAY_S, Timeline, breach_days, calendar, midnight

FIRST = dt.date(2026, 3, 30)  # a quarter boundary falls on the third day
LAST = dt.date(2026, 4, 2)
START, END = midnight(FIRST), midnight(LAST + dt.timedelta(days=1))

money = st.integers(-5, 5).map(float)
observations = st.lists(
    st.tuples(st.integers(0, int(END - START) - 1).map(lambda t: START + t),
              st.none() | st.tuples(money, money, money, money)),
    min_size=1, max_size=30, unique_by=lambda o: o[0]).map(sorted)


def results(figures: tuple[float, float, float, float] | None) -> Any:
    if figures is None:
        return None
    c2, ch, l2, lh = figures
    return SimpleNamespace(credit=SimpleNamespace(cover2=c2, headroom=ch),
                           liquidity=SimpleNamespace(cover2=l2, headroom=lh))


@settings(max_examples=100, deadline=None)
@given(observations)
def test_days_and_periods_equal_a_scan_of_every_second(
        seen: list[tuple[float, tuple[float, float, float, float] | None]]) -> None:
    for kind in ("day", "month", "quarter"):
        timeline = Timeline(calendar(FIRST, LAST, kind))
        for at, figures in seen:
            timeline.observe(at, results(figures))
        timeline.close()
        # The headroom that holds at each second, by brute force (nan: no state).
        second = START + np.arange(int(END - START), dtype=np.float64)
        times = np.array([t for t, _ in seen])
        table = np.array([f if f else (np.nan,) * 4 for _, f in seen])
        latest = np.searchsorted(times, second, side="right") - 1
        holding = np.where((latest >= 0)[:, None], table[np.maximum(latest, 0)], np.nan)
        for spans in (timeline.periods, timeline.days):
            for sides in spans:
                span = sides.span
                inside = [(t, f) for t, f in seen if span.start <= t < span.end and f]
                for index, side in ((0, "credit"), (2, "liquidity")):
                    watch = getattr(sides, side)
                    if not inside:
                        assert not watch.seen
                        continue
                    peak = max(f[index] for _, f in inside)
                    assert watch.peak == peak
                    assert watch.peak_at == min(t for t, f in inside if f[index] == peak)
                    assert watch.low == min(f[index + 1] for _, f in inside)
                    within = (span.start <= second) & (second < span.end)
                    below = np.count_nonzero(within & (holding[:, index + 1] < 0))
                    assert watch.below_s == below
        assert [d.span.start for d in timeline.days] == [START + i * DAY_S for i in range(4)]


def test_calendars_cut_to_the_days_asked() -> None:
    quarters = calendar(dt.date(2026, 2, 15), dt.date(2026, 7, 3), "quarter")
    assert [q.label for q in quarters] == ["2026-Q1", "2026-Q2", "2026-Q3"]
    assert quarters[0].start == midnight(dt.date(2026, 2, 15))
    assert quarters[1].start == midnight(dt.date(2026, 4, 1))
    assert quarters[2].end == midnight(dt.date(2026, 7, 4))
    months = calendar(dt.date(2025, 12, 30), dt.date(2026, 1, 2), "month")
    assert [m.label for m in months] == ["2025-12", "2026-01"]
    assert len(calendar(FIRST, LAST, "day")) == 4


def test_breach_days_name_the_days_below_zero() -> None:
    timeline = Timeline(calendar(FIRST, LAST, "quarter"))
    timeline.observe(START, results((1.0, 1.0, 1.0, 1.0)))
    timeline.observe(START + DAY_S + 10, results((3.0, -2.0, 1.0, 1.0)))
    timeline.observe(START + DAY_S + 70, results((1.0, 1.0, 1.0, -1.0)))
    timeline.observe(START + DAY_S + 100, results((1.0, 1.0, 1.0, 1.0)))
    timeline.close()
    assert breach_days(timeline.days) == ["2026-03-31"]
    assert breach_days(timeline.days, "credit") == ["2026-03-31"]
    q1 = timeline.periods[0]
    assert (q1.credit.below_s, q1.liquidity.below_s) == (60.0, 30.0)
    assert q1.credit.peak_at == START + DAY_S + 10
