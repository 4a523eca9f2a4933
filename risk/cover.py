"""Member groups, same-scenario top-2 ranking, cover-1 and cover-2.

Ties are broken the same way everywhere: among equal amounts the group (or
scenario) whose id sorts first wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from risk.model import FloatArray, IndexArray
from risk.segments import segment_sums

# A group id, or a (partition, group id) bucket.
Key = TypeVar("Key", str, tuple[int, str])


class Groups(Generic[Key]):
    """Members arranged into groups, groups numbered in key order.

    Parameters
    ----------
    group_of_member : group key of each member, by member index
    """

    def __init__(self, group_of_member: Sequence[Key]) -> None:
        self.names: tuple[Key, ...] = tuple(sorted(set(group_of_member)))
        self._index: dict[Key, int] = {name: g for g, name in enumerate(self.names)}
        self.of_member: IndexArray = np.fromiter(
            (self._index[name] for name in group_of_member), dtype=np.intp,
            count=len(group_of_member))
        by_group = np.argsort(self.of_member, kind="stable")
        bounds = np.searchsorted(self.of_member[by_group], np.arange(len(self.names) + 1))
        self.members: tuple[IndexArray, ...] = tuple(
            by_group[bounds[g]:bounds[g + 1]] for g in range(len(self.names)))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: Key) -> int | None:
        """The index of group ``name``, or None."""
        return self._index.get(name)

    def sum_rows(self, by_member: FloatArray, groups: IndexArray) -> FloatArray:
        """Sum member rows into group rows for ``groups``: (len(groups), columns)."""
        members = [self.members[g] for g in groups]
        starts = np.cumsum([0] + [len(m) for m in members[:-1]])
        return segment_sums(by_member[np.concatenate(members)], starts)


@dataclass(frozen=True)
class GroupAmount:
    """A group's amount, and for worst-scenario rankings the scenario it comes from."""

    group: str
    amount: float
    scenario: str | None = None


@dataclass(frozen=True)
class Cover:
    """The two largest groups in one scenario, and the largest alone.

    ``amount = max_s(largest_g + second_largest_g)`` of a (groups, scenarios) matrix.
    """

    amount: float
    scenario: str | None
    top: tuple[GroupAmount, ...]
    cover1: float
    cover1_scenario: str | None
    cover1_group: str | None


NO_COVER = Cover(0.0, None, (), 0.0, None, None)


def first_max(values: FloatArray, names: Sequence[str]) -> int:
    """Index of the largest value; among equals, the one whose name sorts first."""
    tied = np.flatnonzero(values == values.max())
    return int(min(tied, key=lambda i: names[int(i)]))


def ranked(values: FloatArray, count: int) -> IndexArray:
    """Indices of the ``count`` largest values, ties in index order (the id order of groups)."""
    return np.argsort(-values, kind="stable")[:count]


def largest_rows(matrix: FloatArray, count: int) -> FloatArray:
    """The ``count`` largest entries of each column in ascending order: (count, columns).

    Entries are not negative; missing rows count as zero (an absent group has no
    exposure). Column maxima with their ties, ``count`` times over: much faster
    than ``np.partition`` across the rows of a wide matrix.
    """
    columns = matrix.shape[1]
    out = np.zeros((count, columns))
    filled = np.zeros(columns, dtype=np.intp)
    remaining = matrix
    for _ in range(min(count, matrix.shape[0])):
        top = remaining.max(axis=0)
        # A column whose rows are all taken (ties used them up) has nothing left to rank.
        is_top = (remaining == top) & (top > -np.inf)
        ties = np.count_nonzero(is_top, axis=0)
        if filled.max() == 0 and ties.max() == 1:  # no ties, the usual case
            out[count - 1] = top
        else:
            for rank in range(count):  # ranks filled..filled+ties-1 take this value
                take = (filled <= rank) & (rank < filled + ties)
                out[count - 1 - rank, take] = top[take]
        filled += ties
        if filled.min() >= count:
            break
        remaining = np.where(is_top, -np.inf, remaining)
    return out


def same_scenario_cover(by_group_scenario: FloatArray, groups: Sequence[str],
                        scenarios: Sequence[str], largest: FloatArray | None = None) -> Cover:
    """Cover-2 and cover-1 where both defaulters are ranked in the same scenario.

    Parameters
    ----------
    by_group_scenario : (n_groups, n_scenarios) exposure or liquidity drain
    groups, scenarios : ids of the rows (sorted) and of the columns
    largest : (k >= 2, n_scenarios) ``largest_rows`` of the matrix, when already known
    """
    if not len(scenarios) or not len(groups):
        return NO_COVER
    two = (largest_rows(by_group_scenario, 2) if largest is None else largest)[-2:]
    s2 = first_max(two.sum(axis=0), scenarios)
    top = ranked(by_group_scenario[:, s2], 2)
    s1 = first_max(two[1], scenarios)
    g1 = int(ranked(by_group_scenario[:, s1], 1)[0])
    return Cover(
        amount=float(two[:, s2].sum()),
        scenario=scenarios[s2],
        top=tuple(GroupAmount(groups[g], float(by_group_scenario[g, s2])) for g in top),
        cover1=float(two[1, s1]),
        cover1_scenario=scenarios[s1],
        cover1_group=groups[g1],
    )


def worst_per_group_cover(by_group_scenario: FloatArray, groups: Sequence[str],
                          scenarios: Sequence[str]) -> tuple[float, tuple[GroupAmount, ...]]:
    """The conservative mode: each group at its own worst scenario, the two largest added."""
    if not len(scenarios) or not len(groups):
        return 0.0, ()
    worst = by_group_scenario.max(axis=1)
    top = tuple(
        GroupAmount(groups[g], float(worst[g]),
                    scenarios[first_max(by_group_scenario[g], scenarios)])
        for g in ranked(worst, 2))
    return float(sum(t.amount for t in top)), top


def default_fund_minimum(by_group_scenario: FloatArray, scenarios: Sequence[str],
                         largest: FloatArray | None = None) -> tuple[float, str | None]:
    """EMIR Art. 42(3): ``max_s max(largest, second + third largest)`` and its scenario.

    ``largest`` is ``largest_rows(by_group_scenario, 3)`` when already known.
    """
    if not len(scenarios):
        return 0.0, None
    three = largest_rows(by_group_scenario, 3) if largest is None else largest
    per_scenario = np.maximum(three[2], three[0] + three[1])
    s = first_max(per_scenario, scenarios)
    return float(per_scenario[s]), scenarios[s]
