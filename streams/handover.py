"""The partition handover: which partitions this worker counts, and the views of the rest.

With several workers, each holds the members of the partitions it owns and the
results merge its own partition views with the other workers' (see
:mod:`risk.merge`). A partition counts once: from its owner's view once the
owner has caught up with the view it takes over (or, when nobody sent one,
after :data:`HANDOVER_WAIT_S`), from the last view received until then.
Settlements need no handover: every worker reads every settlement, and a
settlement places each trade by event time (:mod:`risk.settlement`), so the new
owner's replay of a partition books its trades as the previous owner did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from risk.merge import GroupTotals, MemberFigures, PartitionView, aligned, merge, reaches
from streams import topics as t
from streams.state import MonitorState

# How long a worker that gains a partition waits for the previous owner's view of it
# (handed over as the group rebalances) before counting the partition from scratch.
HANDOVER_WAIT_S = 1.0


class Handover:
    """The partitions this worker counts, and the latest view of each other partition.

    Attributes
    ----------
    remote : the latest view received of each partition, from the other workers
    group_size : how many workers share the partitions
    sources : where each partition was counted from at the last merge: "local",
        "remote" or "missing"
    """

    def __init__(self, state: MonitorState, topics: t.Topics,
                 clock: Callable[[], float]) -> None:
        self.state = state
        self.topics = topics
        self.clock = clock
        self.remote: dict[int, PartitionView] = {}
        # The latest own figures of each other partition's members (views carry them only
        # now and then): what the reverse stress test needs beyond group totals.
        self.remote_figures: dict[int, MemberFigures] = {}
        self.group_size = 1
        self.partitions = 1
        self.sources: dict[str, list[int]] = {}
        self._counted: set[int] = set()
        self._unpublished: set[int] = set()
        self._assigned_at = 0.0

    def assign(self, partitions: set[int], count: int, group_size: int) -> None:
        """This worker now owns ``partitions`` of ``count``, in a group of ``group_size``."""
        self.partitions, self.group_size = count, group_size
        self._counted &= partitions
        self._assigned_at = self.clock()
        self.take_over()
        self._unpublished = set(partitions)

    def offer(self, view: PartitionView) -> bool:
        """Another worker's view of a partition; False if it is older than the one held."""
        held = self.remote.get(view.partition)
        if held is None or view.includes(held) or not held.includes(view):
            self.remote[view.partition] = view
            if view.figures is not None:
                self.remote_figures[view.partition] = view.figures
            return True
        return False

    def offsets(self, partition: int) -> tuple[int, ...]:
        """The next input offsets of ``partition`` not included, per member-keyed topic."""
        return tuple(self.state.next_offset(self.topics.name(topic), partition)
                     for topic in t.MEMBER_KEYED)

    def take_over(self) -> None:
        """Count every owned partition whose own view now includes the last one received.

        The other owned partitions are rebuilding. A partition nobody has sent a view
        of waits up to ``HANDOVER_WAIT_S`` for one, unless the worker is alone.
        """
        holdings = self.state.ccp.holdings
        waited = self.group_size == 1 or self.clock() - self._assigned_at >= HANDOVER_WAIT_S
        for p in holdings.owned - self._counted:
            remote = self.remote.get(p)
            if (remote is None and waited) or (
                    remote is not None and reaches(self.offsets(p), remote.offsets)):
                self._counted.add(p)
        holdings.rebuild(holdings.owned - self._counted)

    def changed(self, partitions: Iterable[int]) -> None:
        """Own views of ``partitions`` changed: publish them next time."""
        self._unpublished.update(partitions)

    def views_to_publish(self, every: bool = False, figures: bool = False
                         ) -> list[PartitionView]:
        """Own views changed since last asked (or ``every`` own view), with the input
        offsets they include and (with ``figures``) their members' own figures."""
        ccp = self.state.ccp
        ready = sorted((ccp.holdings.owned if every else self._unpublished) & self._counted)
        self._unpublished -= set(ready)
        views = ccp.holdings.views
        return [replace(views[p], offsets=self.offsets(p),
                        figures=ccp.figures(p) if figures and views[p].scenarios
                        == ccp.scenarios else None)
                for p in ready if p in views]

    def figures(self) -> list[MemberFigures] | None:
        """Every partition's members' own figures, in partition order: this worker's own
        for the partitions it counts, the latest received for the others; None while one
        is missing or has other scenarios."""
        ccp = self.state.ccp
        out = []
        for p in range(self.partitions):
            received = self.remote_figures.get(p)
            figures = ccp.figures(p) if p in self._counted else (
                received.aligned(ccp.scenarios) if received is not None else None)
            if figures is None:
                return None
            out.append(figures)
        return out

    def merged(self) -> GroupTotals:
        """Every partition's view summed per group: own views for the partitions counted
        here, the latest received for the others."""
        ccp = self.state.ccp
        scenarios = ccp.scenarios
        views: list[PartitionView] = []
        self.sources = {"local": [], "remote": [], "missing": []}
        for p in range(self.partitions):
            view = ccp.holdings.views.get(p) if p in self._counted else None
            if view is not None:
                source = "local"
            else:
                received = self.remote.get(p)
                view = aligned(received, scenarios) if received is not None else None
                source = "remote" if view is not None else "missing"
            self.sources[source].append(p)
            if view is not None:
                views.append(view)
        return merge(views, scenarios)
