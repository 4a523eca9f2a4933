"""A member's home partition: where Kafka's default partitioner puts its messages.

A member's messages are keyed by its id, so a producer with Kafka's default
partitioner (the Java client's, librdkafka's ``murmur2_random``, aiokafka's)
sends them all to one partition: ``toPositive(murmur2(key)) % partitions``.
The worker that owns that partition of every member-keyed topic holds the member.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEED, _M, _MASK = 0x9747B28C, 0x5BD1E995, 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The 32-bit MurmurHash2 of ``data`` as Kafka's clients compute it (seed 0x9747b28c)."""
    length = len(data)
    h = _SEED ^ length
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[length - length % 4:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@dataclass(frozen=True)
class HomePartition:
    """A member's home partition among ``partitions``."""

    partitions: int

    def __call__(self, member: str) -> int:
        return (murmur2(member.encode()) & 0x7FFFFFFF) % self.partitions
