"""Partition views and their merge: Cover-2 over members spread across workers.

Members are split by the input partition their messages are keyed to. A
:class:`PartitionView` is one partition's members summed per group, by
scenario; a group whose members sit in several partitions appears in several
views. Summing every partition's view once gives exactly the group totals of
one process holding every member: no member is in two partitions, and a
partition is counted from exactly one view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from risk.cover import Groups
from risk.model import FloatArray, IndexArray


@dataclass(frozen=True)
class MemberFigures:
    """One partition's members' own figures, which the reverse stress test needs: a
    member's exposure under multiplied shocks is ``max(0, affine in k)`` of them, so
    group totals are not enough (:mod:`risk.reverse`).

    Attributes
    ----------
    members : (n,) member ids
    scenarios : scenario ids; columns of ``pnl``
    vm, initial_margin, cash, settlement_obligation : (n,)
    pnl : (n, scenarios) scenario P&L
    """

    members: tuple[str, ...]
    scenarios: tuple[str, ...]
    vm: FloatArray
    initial_margin: FloatArray
    cash: FloatArray
    settlement_obligation: FloatArray
    pnl: FloatArray

    def aligned(self, scenarios: Sequence[str]) -> MemberFigures | None:
        """These figures with columns in the order of ``scenarios``; None if the sets
        differ."""
        order = column_order(self.scenarios, scenarios)
        if order is None or self.scenarios == tuple(scenarios):
            return None if order is None else self
        return replace(self, scenarios=tuple(scenarios), pnl=self.pnl[:, order])


@dataclass(frozen=True)
class PartitionView:
    """One input partition's members, summed per group.

    Attributes
    ----------
    partition : input partition number
    offsets : the next input offsets it does not include, one per partitioned input topic;
        empty inside one process, where nothing else can hold the partition
    scenarios : scenario ids; columns of the matrices
    groups : group ids with a member in the partition; rows of the matrices
    members : each group's members in the partition
    exposure, need : (groups, scenarios) credit exposure and liquidity need
    margin_level : (groups,) the highest margin-call level a member is over
    figures : the members' own figures for the reverse stress test, carried every
        ``COVER2_REVERSE_STRESS_INTERVAL`` seconds; None in the other views
    """

    partition: int
    offsets: tuple[int, ...]
    scenarios: tuple[str, ...]
    groups: tuple[str, ...]
    members: tuple[tuple[str, ...], ...]
    exposure: FloatArray
    need: FloatArray
    margin_level: IndexArray
    figures: MemberFigures | None = None

    def includes(self, other: PartitionView) -> bool:
        """Whether this view has every input of ``other`` (is at least as far on)."""
        return reaches(self.offsets, other.offsets)


def reaches(offsets: tuple[int, ...], other: tuple[int, ...]) -> bool:
    """Whether input ``offsets`` are at or past ``other`` on every topic."""
    return len(offsets) == len(other) and all(
        mine >= theirs for mine, theirs in zip(offsets, other, strict=True))


@dataclass(frozen=True)
class GroupTotals:
    """Partition views summed per group; rows in group id order."""

    groups: tuple[str, ...]
    scenarios: tuple[str, ...]
    exposure: FloatArray
    need: FloatArray
    margin_level: IndexArray
    members_by_group: dict[str, tuple[str, ...]]


def column_order(have: Sequence[str], want: Sequence[str]) -> IndexArray | None:
    """Where each of ``want`` stands in ``have``: (n,); None if the sets differ."""
    if sorted(have) != sorted(want):
        return None
    column = {name: s for s, name in enumerate(have)}
    return np.array([column[name] for name in want], dtype=np.intp)


def aligned(view: PartitionView, scenarios: Sequence[str]) -> PartitionView | None:
    """``view`` with its columns in the order of ``scenarios``; None if the sets differ."""
    order = column_order(view.scenarios, scenarios)
    if order is None or view.scenarios == tuple(scenarios):
        return None if order is None else view
    return replace(view, scenarios=tuple(scenarios), exposure=view.exposure[:, order],
                   need=view.need[:, order])


def merge(views: Iterable[PartitionView], scenarios: tuple[str, ...]) -> GroupTotals:
    """Sum views of distinct partitions, all with columns ``scenarios``, per group."""
    views = list(views)
    keys = [group for view in views for group in view.groups]
    groups = Groups(keys)
    n_s = len(scenarios)
    exposure = np.zeros((len(groups), n_s))
    need = np.zeros((len(groups), n_s))
    level = np.zeros(len(groups), dtype=np.intp)
    members: dict[str, list[str]] = {name: [] for name in groups.names}
    if keys:
        everything = np.arange(len(groups))
        if n_s:
            exposure = groups.sum_rows(np.concatenate([v.exposure for v in views]), everything)
            need = groups.sum_rows(np.concatenate([v.need for v in views]), everything)
        np.maximum.at(level, groups.of_member,
                      np.concatenate([v.margin_level for v in views]))
        for view in views:
            for group, names in zip(view.groups, view.members, strict=True):
                members[group] += names
    return GroupTotals(groups.names, scenarios, exposure, need, level,
                       {group: tuple(sorted(names)) for group, names in members.items()})
