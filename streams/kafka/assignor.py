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


class CoPartitionedAssignor:
    """Hands out partition numbers, each with the same partition of every subscribed topic.

    Members get contiguous ranges in member-id order, as Kafka's range assignor does,
    but over partition numbers rather than topic by topic, so the topics stay
    co-partitioned whatever they are called. Every assignment carries the group's
    size, so that a worker knows whether anyone else needs its partition views.
    """

    name = "cover2-copartitioned"
    version = 0

    def __init__(self) -> None:
        self.group_size = 1

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), b"")

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({topic for m in members.values() for topic in m.subscription})
        counts = {len(cluster.partitions_for_topic(topic) or ()) for topic in topics}
        n = min(counts, default=0)
        ids = sorted(members)
        size = str(len(ids)).encode()
        out = {}
        for i, member in enumerate(ids):
            partitions = list(range(n))[i * n // len(ids):(i + 1) * n // len(ids)]
            out[member] = ConsumerProtocolMemberAssignment(
                self.version, [(topic, partitions) for topic in topics], size)
        return out

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.group_size = int(assignment.user_data or b"1")
