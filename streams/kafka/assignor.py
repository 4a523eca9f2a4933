"""Which worker owns which partition numbers of the member-keyed inputs.

Trades and collateral are keyed by member and have the same partition count,
so a worker that owns partition ``p`` of both holds every message of the
members whose home is ``p`` (:mod:`streams.homes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

# Begins the user data of the assignment of a member the group refuses.
REFUSED = b"refused:"


class CoPartitionedAssignor:
    """Hands out partition numbers, each with the same partition of every subscribed topic.

    Members get contiguous ranges in member-id order, as Kafka's range assignor does,
    but over partition numbers rather than topic by topic, so the topics stay
    co-partitioned whatever they are called. Every assignment carries the group's
    size, so that a worker knows whether anyone else needs its partition views.

    The group reads the topics its leader subscribes to. A member that subscribes to
    others (a worker of other topics given the same group id) is refused: it gets no
    partition, only the reason, and stops; the others carry on.
    """

    name = "cover2-copartitioned"
    version = 0

    def __init__(self) -> None:
        self.group_size = 1
        self.refused: str | None = None
        self._subscription: list[str] = []

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        self._subscription = sorted(topics)
        return ConsumerProtocolMemberMetadata(self.version, self._subscription, b"")

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = self._subscription
        fits = sorted(m for m, meta in members.items() if sorted(meta.subscription) == topics)
        counts = {len(cluster.partitions_for_topic(topic) or ()) for topic in topics}
        n = min(counts, default=0)
        size = str(len(fits)).encode()
        out = {}
        for i, member in enumerate(fits):
            partitions = list(range(n))[i * n // len(fits):(i + 1) * n // len(fits)]
            out[member] = ConsumerProtocolMemberAssignment(
                self.version, [(topic, partitions) for topic in topics], size)
        for member in set(members) - set(fits):
            why = (f"this group reads {', '.join(topics)}, and this worker subscribes to "
                   f"{', '.join(sorted(members[member].subscription))}")
            out[member] = ConsumerProtocolMemberAssignment(self.version, [],
                                                           REFUSED + why.encode())
        return out

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        data = assignment.user_data or b"1"
        if data.startswith(REFUSED):
            self.refused = data.removeprefix(REFUSED).decode()
        else:
            self.refused, self.group_size = None, int(data)
