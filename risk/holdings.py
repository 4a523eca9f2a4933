"""Which members a CCP holds, by home partition, and their sums per partition and group.

A member's *home* is the input partition its messages are keyed to. A CCP may
hold only the members of the partitions it owns; it sums them per (home
partition, group) *bucket* into :class:`risk.merge.PartitionView` objects, and
the views of every partition, from wherever they are held, merge into the
exact group totals.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np

from risk.cover import Groups
from risk.ids import Ids, grown
from risk.merge import PartitionView
from risk.model import BoolArray, FloatArray, IndexArray
from risk.results import frozen

# The partition of the bucket of a member not held here.
NOT_HELD = -1

Bucket = tuple[int, str]


class Holdings:
    """The partitions owned, the members held, and each bucket's sums.

    Attributes
    ----------
    home : (member capacity,) each member's home partition, ``home_of(member)``
    held : (member capacity,) whether the member's home is owned
    owned : the home partitions whose members are held
    rebuilding : owned partitions whose members are still being rebuilt (by replay):
        they are not called
    views : every owned partition's members summed per group

    Parameters
    ----------
    members : the CCP's member ids, shared (they grow as members appear)
    group_of_member : each member's group id, shared
    """

    def __init__(self, members: Ids, group_of_member: list[str],
                 home_of: Callable[[str], int] | None = None) -> None:
        self.members = members
        self.group_of_member = group_of_member
        self.home_of = home_of
        self.home: IndexArray = np.zeros(0, dtype=np.intp)
        self.held: BoolArray = np.zeros(0, dtype=np.bool_)
        self.owned: frozenset[int] = frozenset({0})
        self.rebuilding: frozenset[int] = frozenset()
        self.views: dict[int, PartitionView] = {}
        self._buckets: Groups[Bucket] | None = None
        self._bucket_partition: IndexArray = np.zeros(0, dtype=np.intp)
        self._bucket_members: tuple[tuple[str, ...], ...] = ()
        self._group_members: dict[str, IndexArray] = {}
        self._exposure: FloatArray = np.zeros((0, 0))
        self._need: FloatArray = np.zeros((0, 0))
        self._summed: Groups[Bucket] | None = None

    def add(self, first: int) -> None:
        """Place the members numbered from ``first`` on: their homes, whether held."""
        n = len(self.members)
        self.home = grown(self.home, n, 0, 0)
        self.held = grown(self.held, n, 0, False)
        if n > first:
            self.regroup()
            if self.home_of is not None:
                self.home[first:n] = list(map(self.home_of, self.members.names[first:n]))
            self.held[first:n] = np.isin(self.home[first:n], list(self.owned))

    def regroup(self) -> None:
        """Members joined or changed group: the buckets are arranged again."""
        self._buckets = None

    def rescenario(self) -> None:
        """The scenarios changed: every bucket is summed again."""
        self._summed = None

    def own(self, partitions: Iterable[int],
            home_of: Callable[[str], int] | None = None) -> tuple[IndexArray, IndexArray]:
        """Hold the members whose home is in ``partitions``: (members let go, members held).

        ``home_of`` (given once, before members' homes matter) maps a member to its
        home partition.
        """
        n = len(self.members)
        if home_of is not None:
            self.home_of = home_of
            self.home[:n] = list(map(home_of, self.members.names))
        self.owned = frozenset(partitions)
        self.rebuilding &= self.owned
        held = np.isin(self.home[:n], list(self.owned))
        released = np.flatnonzero(self.held[:n] & ~held)
        self.held[:n] = held
        self.regroup()
        return released, np.flatnonzero(held)

    def rebuild(self, partitions: Collection[int]) -> None:
        """Mark the owned ``partitions`` as still being rebuilt, and only those."""
        self.rebuilding = self.owned & frozenset(partitions)

    def callable(self, level: IndexArray) -> IndexArray:
        """Margin ``level`` per member, zero (no call) for members being rebuilt."""
        if not self.rebuilding:
            return level
        return np.where(np.isin(self.home[:len(level)], list(self.rebuilding)), 0, level)

    def of_partition(self, partition: int) -> IndexArray:
        """The members held whose home is ``partition``, ascending."""
        n = len(self.members)
        return np.flatnonzero(self.held[:n] & (self.home[:n] == partition))

    def buckets(self) -> Groups[Bucket]:
        """Members by (home partition, group); members not held are in partition NOT_HELD."""
        if self._buckets is None:
            n = len(self.members)
            home = np.where(self.held[:n], self.home[:n], NOT_HELD).tolist()
            buckets = Groups(list(zip(home, self.group_of_member, strict=True)))
            names = self.members.names
            self._bucket_partition = np.array([p for p, _ in buckets.names], dtype=np.intp)
            self._bucket_members = tuple(tuple(sorted(names[m] for m in rows))
                                         for rows in buckets.members)
            held: dict[str, list[IndexArray]] = {}
            for (p, group), rows in zip(buckets.names, buckets.members, strict=True):
                if p != NOT_HELD:
                    held.setdefault(group, []).append(rows)
            self._group_members = {group: np.array(sorted(np.concatenate(rows).tolist(),
                                                          key=names.__getitem__), dtype=np.intp)
                                   for group, rows in held.items()}
            self._buckets = buckets
        return self._buckets

    def of_group(self, group: str) -> IndexArray:
        """The group's members held here, in id order."""
        self.buckets()
        return self._group_members.get(group, np.zeros(0, dtype=np.intp))

    def refresh(self, rows: IndexArray, exposure: FloatArray, need: FloatArray,
                level: IndexArray, scenarios: Sequence[str]) -> list[int]:
        """Sum the buckets of the members in ``rows`` again and rebuild their views.

        Parameters
        ----------
        rows : members whose figures changed
        exposure, need : (n_members, n_scenarios) every member's credit exposure and
            liquidity need
        level : (n_members,) every member's margin level
        scenarios : scenario ids, the columns

        Returns the owned partitions whose view changed, ascending.
        """
        buckets = self.buckets()
        shape = (len(buckets), len(scenarios))
        if self._exposure.shape == shape and self._summed is buckets:
            changed = np.unique(buckets.of_member[rows])
            changed = changed[self._bucket_partition[changed] != NOT_HELD]
            partitions = sorted(set(self._bucket_partition[changed].tolist()))
        else:
            self._exposure, self._need = np.zeros(shape), np.zeros(shape)
            self._summed = buckets
            changed = np.flatnonzero(self._bucket_partition != NOT_HELD)
            partitions = sorted(self.owned)
            self.views = {}
        if len(changed) and len(scenarios):
            self._exposure[changed] = buckets.sum_rows(exposure, changed)
            self._need[changed] = buckets.sum_rows(need, changed)
        if partitions:
            by_bucket = np.zeros(len(buckets), dtype=np.intp)
            np.maximum.at(by_bucket, buckets.of_member, level)
            self.views.update({p: self._view(p, by_bucket, scenarios) for p in partitions})
        return partitions

    def _view(self, partition: int, level_by_bucket: IndexArray,
              scenarios: Sequence[str]) -> PartitionView:
        buckets = self.buckets()
        first, end = np.searchsorted(self._bucket_partition, [partition, partition + 1])
        rows = slice(int(first), int(end))
        return PartitionView(
            partition=partition, offsets=(), scenarios=tuple(scenarios),
            groups=tuple(group for _, group in buckets.names[rows]),
            members=self._bucket_members[rows],
            exposure=frozen(self._exposure[rows].copy()),
            need=frozen(self._need[rows].copy()),
            margin_level=frozen(level_by_bucket[rows].copy()))
