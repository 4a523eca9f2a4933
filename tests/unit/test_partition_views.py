"""Partition views on the wire: what is decoded is what was encoded, or a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.merge import MemberFigures, PartitionView
from streams.kafka.views import decode_view, encode_view
from streams.records import EventTimes

names = st.sampled_from(["A", "B", "C", "é"])


@st.composite
def views(draw: st.DrawFn) -> PartitionView:
    n_groups, n_scenarios = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    finite = st.floats(-1e12, 1e12, allow_nan=False)
    matrix = st.lists(finite, min_size=n_groups * n_scenarios,
                      max_size=n_groups * n_scenarios).map(
        lambda cells: np.array(cells, dtype=np.float64).reshape(n_groups, n_scenarios))
    scenarios = tuple(f"S{s}" for s in range(n_scenarios))
    n_members = draw(st.integers(0, 3))
    vector = st.lists(finite, min_size=n_members, max_size=n_members).map(np.array)
    figures = draw(st.none() | st.builds(
        MemberFigures, st.just(tuple(f"M{m}" for m in range(n_members))), st.just(scenarios),
        vector, vector, vector, vector,
        st.lists(finite, min_size=n_members * n_scenarios,
                 max_size=n_members * n_scenarios).map(
            lambda cells: np.array(cells, dtype=np.float64).reshape(n_members, n_scenarios))))
    return PartitionView(
        draw(st.integers(0, 7)), tuple(draw(st.lists(st.integers(0, 10**12), max_size=2))),
        scenarios, tuple(f"G{g}" for g in range(n_groups)),
        tuple(tuple(draw(st.lists(names, max_size=2))) for _ in range(n_groups)),
        draw(matrix), draw(matrix),
        np.array(draw(st.lists(st.integers(0, 2), min_size=n_groups, max_size=n_groups)),
                 dtype=np.intp), figures=figures)


@settings(max_examples=200, deadline=None)
@given(views(), st.lists(st.floats(1.7e9, 1.8e9), max_size=20))
def test_a_view_decodes_to_what_was_encoded(view: PartitionView, ts: list[float]) -> None:
    times = EventTimes.of([np.array(ts)])
    header, decoded = decode_view(encode_view(view, "cover2", "w1", times))
    assert (header.group_id, header.sender) == ("cover2", "w1")
    assert EventTimes(header.event_ms, header.event_counts) == times
    assert sum(times.counts) == len(ts)
    np.testing.assert_allclose(np.repeat(times.seconds, times.counts), np.sort(ts), atol=5e-4)
    for field in ("partition", "offsets", "scenarios", "groups", "members"):
        assert getattr(decoded, field) == getattr(view, field)
    np.testing.assert_array_equal(decoded.exposure, view.exposure)
    np.testing.assert_array_equal(decoded.need, view.need)
    np.testing.assert_array_equal(decoded.margin_level, view.margin_level)
    if view.figures is None:
        assert decoded.figures is None
    else:
        assert decoded.figures is not None
        assert (decoded.figures.members, decoded.figures.scenarios) == (
            view.figures.members, view.figures.scenarios)
        for field in ("vm", "initial_margin", "cash", "settlement_obligation", "pnl"):
            np.testing.assert_array_equal(getattr(decoded.figures, field),
                                          getattr(view.figures, field))


def test_a_message_that_is_not_a_view_is_refused() -> None:
    view = PartitionView(0, (1, 2), ("S",), ("G",), (("A",),), np.ones((1, 1)), np.ones((1, 1)),
                         np.zeros(1, dtype=np.intp))
    encoded = encode_view(view, "cover2", "w1")
    uneven = encode_view(view, "cover2", "w1", EventTimes((1, 2), (1,)))
    for broken in (b"", b"\x00\x00\x00\x05{}", encoded[:-1], encoded + b"\x00", uneven):
        with pytest.raises(ValueError, match="not a partition view"):
            decode_view(broken)
