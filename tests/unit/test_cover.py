"""Groups, per-scenario ranking, cover-2, cover-1 and the EMIR default-fund minimum.

The worked credit example with its exact answers, small tie-breaking cases, and
Hypothesis properties against brute force: sorting every column, and every pair
of groups in every scenario. Ties follow the module docstring: among equal
amounts the group or scenario whose id sorts first wins.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from risk.cover import (
    NO_COVER,
    GroupAmount,
    Groups,
    default_fund_minimum,
    first_max,
    largest_rows,
    ranked,
    same_scenario_cover,
    worst_per_group_cover,
)
from risk.model import FloatArray
from tests.tolerances import MONEY_ATOL, MONEY_RTOL


def assert_money(actual: FloatArray | float, expected: FloatArray | float) -> None:
    np.testing.assert_allclose(actual, expected, rtol=MONEY_RTOL, atol=MONEY_ATOL)


# The worked credit example: A1 and A2 are affiliates in group A.

MEMBERS = ["A1", "A2", "B", "C", "D"]
GROUP_OF = ["A", "A", "B", "C", "D"]
SCENARIOS = ["S1", "S2", "S3"]
INITIAL_MARGIN = np.array([40.0, 30.0, 60.0, 50.0, 20.0])
LOSSES = np.array([  # members x scenarios
    [70.0, 20.0, 90.0],
    [45.0, 10.0, 80.0],
    [100.0, 150.0, 30.0],
    [40.0, 120.0, 55.0],
    [25.0, 60.0, 10.0],
])
BY_GROUP = np.array([  # A, B, C, D x S1, S2, S3
    [30.0 + 15.0, 0.0, 50.0 + 50.0],
    [40.0, 90.0, 0.0],
    [0.0, 70.0, 5.0],
    [5.0, 40.0, 0.0],
])


def worked_example() -> tuple[Groups[str], FloatArray]:
    """Groups and exposure by group and scenario, from members' losses and margin."""
    groups = Groups(GROUP_OF)
    by_member = np.maximum(LOSSES - INITIAL_MARGIN[:, None], 0.0)
    return groups, groups.sum_rows(by_member, np.arange(len(groups)))


def test_worked_example_exposure_by_group() -> None:
    groups, exposure = worked_example()
    assert groups.names == ("A", "B", "C", "D")
    assert_money(exposure, BY_GROUP)


def test_worked_example_cover2_and_cover1() -> None:
    groups, exposure = worked_example()
    cover = same_scenario_cover(exposure, groups.names, SCENARIOS)

    assert_money(cover.amount, 160.0)
    assert cover.scenario == "S2"
    assert cover.top == (GroupAmount("B", 90.0), GroupAmount("C", 70.0))
    assert_money(cover.cover1, 100.0)
    assert (cover.cover1_group, cover.cover1_scenario) == ("A", "S3")


def test_worked_example_worst_per_group_mode() -> None:
    groups, exposure = worked_example()
    amount, top = worst_per_group_cover(exposure, groups.names, SCENARIOS)

    # A at its worst (S3) plus B at its worst (S2): more than any one scenario's cover-2.
    assert_money(amount, 190.0)
    assert top == (GroupAmount("A", 100.0, "S3"), GroupAmount("B", 90.0, "S2"))


def test_worked_example_default_fund_minimum() -> None:
    _, exposure = worked_example()
    # S1: max(45, 40 + 5) = 45; S2: max(90, 70 + 40) = 110; S3: max(100, 5 + 0) = 100.
    assert default_fund_minimum(exposure, SCENARIOS) == (110.0, "S2")
    assert default_fund_minimum(exposure, SCENARIOS, largest_rows(exposure, 3)) == (110.0, "S2")


def test_without_affiliates_each_member_is_its_own_group() -> None:
    groups = Groups(MEMBERS)
    exposure = groups.sum_rows(np.maximum(LOSSES - INITIAL_MARGIN[:, None], 0.0),
                               np.arange(len(groups)))
    cover = same_scenario_cover(exposure, groups.names, SCENARIOS)

    assert_money(cover.amount, 160.0)
    assert (cover.cover1, cover.cover1_group, cover.cover1_scenario) == (90.0, "B", "S2")


# Groups


def test_groups_are_numbered_in_key_order() -> None:
    groups = Groups(["b", "a", "c", "a", "b"])

    assert groups.names == ("a", "b", "c") and len(groups) == 3
    assert groups.of_member.tolist() == [1, 0, 2, 0, 1]
    assert [m.tolist() for m in groups.members] == [[1, 3], [0, 4], [2]]
    assert (groups.index("c"), groups.index("z")) == (2, None)


def test_partition_buckets_sort_by_partition_then_group() -> None:
    groups = Groups([(1, "A"), (0, "B"), (0, "A"), (1, "A")])

    assert groups.names == ((0, "A"), (0, "B"), (1, "A"))
    assert groups.of_member.tolist() == [2, 1, 0, 2]
    assert groups.index((0, "B")) == 1


def test_sum_rows_adds_the_members_of_each_requested_group() -> None:
    groups = Groups(["x", "y", "x", "z"])
    by_member = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [8.0, 80.0]])

    assert_money(groups.sum_rows(by_member, np.array([2, 0], dtype=np.intp)),
                 [[8, 80], [5, 50]])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["G0", "G1", "G2", "G3"]), min_size=1, max_size=8), st.data())
def test_sum_rows_equals_a_loop_over_members(group_of: list[str], data: st.DataObject) -> None:
    groups = Groups(group_of)
    by_member = data.draw(hnp.arrays(np.float64, (len(group_of), 3),
                                     elements=st.integers(-50, 50).map(float)))
    wanted = data.draw(st.lists(st.integers(0, len(groups) - 1), min_size=1, max_size=5))
    summed = groups.sum_rows(by_member, np.array(wanted, dtype=np.intp))

    assert list(groups.names) == sorted(set(group_of))
    for row, g in enumerate(wanted):
        expected = np.zeros(3)
        for m, name in enumerate(group_of):
            if name == groups.names[g]:
                expected += by_member[m]
        assert_money(summed[row], expected)


# Ranking helpers


def test_first_max_breaks_ties_by_name_not_position() -> None:
    assert first_max(np.array([3.0, 5.0, 5.0, 1.0]), ["a", "z", "b", "c"]) == 2
    assert first_max(np.array([3.0, 5.0, 4.0]), ["c", "b", "a"]) == 1


def test_ranked_takes_the_largest_ties_in_index_order() -> None:
    assert ranked(np.array([1.0, 3.0, 3.0, 2.0]), 2).tolist() == [1, 2]
    assert ranked(np.array([0.0, 2.0, 0.0]), 3).tolist() == [1, 0, 2]
    assert ranked(np.array([7.0]), 2).tolist() == [0]


def test_largest_rows_by_hand() -> None:
    matrix = np.array([[3.0, 0.0, 2.0], [1.0, 5.0, 2.0], [4.0, 5.0, 0.0], [2.0, 1.0, 2.0]])
    assert_money(largest_rows(matrix, 2), [[3, 5, 2], [4, 5, 2]])
    assert_money(largest_rows(matrix[:1], 3), [[0, 0, 0], [0, 0, 0], [3, 0, 2]])


def sorted_columns(matrix: FloatArray, count: int) -> FloatArray:
    """Each column sorted by a loop, padded with zeros, the ``count`` largest ascending."""
    out = np.zeros((count, matrix.shape[1]))
    for s in range(matrix.shape[1]):
        column = [*sorted(matrix[:, s].tolist(), reverse=True), *[0.0] * count][:count]
        out[:, s] = column[::-1]
    return out


# Small integers make exact ties common.
cells = st.integers(0, 4).map(float)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5).flatmap(lambda rows: st.tuples(
    hnp.arrays(np.float64, (rows, 4), elements=cells), st.integers(1, rows))))
def test_largest_rows_equals_sorting_each_column(case: tuple[FloatArray, int]) -> None:
    matrix, count = case
    assert_money(largest_rows(matrix, count), sorted_columns(matrix, count))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 3).flatmap(lambda rows: st.tuples(
    hnp.arrays(np.float64, (rows, 4), elements=cells), st.integers(rows + 1, 5))))
def test_largest_rows_counts_missing_rows_as_zero(case: tuple[FloatArray, int]) -> None:
    matrix, count = case  # fewer rows than count, ties likely
    assert_money(largest_rows(matrix, count), sorted_columns(matrix, count))


def test_largest_rows_counts_missing_rows_as_zero_after_a_tie() -> None:
    # Two groups with equal exposure, the three largest asked for (as the EMIR minimum does).
    assert_money(largest_rows(np.array([[1.0], [1.0]]), 3), [[0.0], [1.0], [1.0]])


# Cover-2 and cover-1


def test_ties_go_to_the_scenario_and_groups_whose_ids_sort_first() -> None:
    # Columns are "S2" then "S1": both scenarios have 10, "S1" sorts first.
    matrix = np.array([[5.0, 0.0], [5.0, 5.0], [0.0, 5.0]])
    cover = same_scenario_cover(matrix, ["A", "B", "C"], ["S2", "S1"])

    assert (cover.amount, cover.scenario) == (10.0, "S1")
    assert cover.top == (GroupAmount("B", 5.0), GroupAmount("C", 5.0))
    assert (cover.cover1, cover.cover1_scenario, cover.cover1_group) == (5.0, "S1", "B")


def test_one_group_is_cover2_with_a_missing_second_group() -> None:
    cover = same_scenario_cover(np.array([[5.0, 7.0]]), ["G"], ["S1", "S2"])

    assert (cover.amount, cover.scenario, cover.cover1, cover.cover1_group) == (7.0, "S2", 7.0,
                                                                                "G")
    assert cover.top == (GroupAmount("G", 7.0),)


def test_nothing_to_cover_without_groups_or_scenarios() -> None:
    assert same_scenario_cover(np.zeros((0, 2)), [], ["S1", "S2"]) == NO_COVER
    assert same_scenario_cover(np.zeros((2, 0)), ["A", "B"], []) == NO_COVER
    assert worst_per_group_cover(np.zeros((0, 2)), [], ["S1", "S2"]) == (0.0, ())
    assert worst_per_group_cover(np.zeros((2, 0)), ["A", "B"], []) == (0.0, ())
    assert default_fund_minimum(np.zeros((2, 0)), []) == (0.0, None)


matrices = st.tuples(st.integers(1, 5), st.integers(1, 4)).flatmap(
    lambda shape: hnp.arrays(np.float64, shape, elements=cells))


def ids(prefix: str, n: int, data: st.DataObject, shuffle: bool) -> list[str]:
    """Group ids are sorted (rows are numbered in id order); scenario ids need not be."""
    names = [f"{prefix}{i}" for i in range(n)]
    return data.draw(st.permutations(names)) if shuffle else names


@settings(max_examples=150, deadline=None)
@given(matrices, st.data())
def test_same_scenario_cover_equals_every_pair_in_every_scenario(
        matrix: FloatArray, data: st.DataObject) -> None:
    n_g, n_s = matrix.shape
    groups, scenarios = ids("G", n_g, data, False), ids("S", n_s, data, True)

    # Every pair of groups (one group alone when there is only one) in every scenario.
    pairs = list(itertools.combinations(range(n_g), 2)) or [(0,)]
    best_amount = max(sum(matrix[g, s] for g in pair) for s in range(n_s) for pair in pairs)
    best_s = min((s for s in range(n_s)
                  if max(sum(matrix[g, s] for g in pair) for pair in pairs) == best_amount),
                 key=lambda s: scenarios[s])
    best_top = min(sorted((-matrix[g, best_s], groups[g]) for g in pair)
                   for pair in pairs if sum(matrix[g, best_s] for g in pair) == best_amount)
    largest = matrix.max()
    s1 = min((s for s in range(n_s) if matrix[:, s].max() == largest),
             key=lambda s: scenarios[s])
    g1 = min(groups[g] for g in range(n_g) if matrix[g, s1] == largest)

    for known in (None, largest_rows(matrix, 2), largest_rows(matrix, 3)):
        cover = same_scenario_cover(matrix, groups, scenarios, known)
        assert cover.amount == best_amount
        assert cover.scenario == scenarios[best_s]
        assert cover.top == tuple(GroupAmount(g, -minus) for minus, g in best_top)
        assert (cover.cover1, cover.cover1_scenario, cover.cover1_group) == (largest,
                                                                             scenarios[s1], g1)


@settings(max_examples=100, deadline=None)
@given(matrices, st.data())
def test_worst_per_group_cover_equals_a_loop(matrix: FloatArray, data: st.DataObject) -> None:
    n_g, n_s = matrix.shape
    groups, scenarios = ids("G", n_g, data, False), ids("S", n_s, data, True)
    amount, top = worst_per_group_cover(matrix, groups, scenarios)

    worst = []
    for g in range(n_g):
        value = max(matrix[g, s] for s in range(n_s))
        scenario = min(scenarios[s] for s in range(n_s) if matrix[g, s] == value)
        worst.append((-value, groups[g], scenario))
    expected = sorted(worst)[:2]
    assert top == tuple(GroupAmount(g, -minus, s) for minus, g, s in expected)
    assert amount == -sum(minus for minus, _, _ in expected)
    assert amount >= same_scenario_cover(matrix, groups, scenarios).amount


@settings(max_examples=100, deadline=None)
@given(matrices, st.data())
def test_default_fund_minimum_equals_a_loop(matrix: FloatArray, data: st.DataObject) -> None:
    n_s = matrix.shape[1]
    scenarios = ids("S", n_s, data, True)

    per_scenario = []
    for s in range(n_s):
        first, second, third = [*sorted(matrix[:, s].tolist(), reverse=True), 0.0, 0.0, 0.0][:3]
        per_scenario.append((-max(first, second + third), scenarios[s]))
    minus, scenario = min(per_scenario)

    assert default_fund_minimum(matrix, scenarios) == (-minus, scenario)
    assert default_fund_minimum(matrix, scenarios, largest_rows(matrix, 3)) == (-minus, scenario)
