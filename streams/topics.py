"""Every topic name, written once.

Topics are created (:mod:`streams.kafka.admin`) before anything touches them: a
broker that auto-creates unknown topics would otherwise pick its own partition count.
"""

from __future__ import annotations

from dataclasses import dataclass

# Per-message inputs.
TRADES, PRICES, COLLATERAL = "trades", "prices", "collateral"
HOT_INPUTS = (TRADES, PRICES, COLLATERAL)
# Low-rate inputs, applied one message at a time.
SETTLEMENTS, MEMBERS, INSTRUMENTS, SCENARIOS, RESOURCES = (
    "settlements", "members", "instruments", "scenarios", "resources")
REFERENCE_INPUTS = (SETTLEMENTS, MEMBERS, INSTRUMENTS, SCENARIOS, RESOURCES)
INPUTS = HOT_INPUTS + REFERENCE_INPUTS
# Inputs keyed by member and read together, partition number by partition number: a
# member's messages all belong to its home partition (:mod:`streams.homes`).
MEMBER_KEYED = (TRADES, COLLATERAL)
# Inputs every worker reads whole.
EVERY_WORKER = (PRICES, *REFERENCE_INPUTS)
# Outputs.
COVER2, MARGIN_CALLS, DEAD_LETTER = "cover2", "margin-calls", "dead-letter"
OUTPUTS = (COVER2, MARGIN_CALLS, DEAD_LETTER)
# Between workers: every partition's view, read by every worker.
PARTITION_VIEWS = "partition-views"
ALL = INPUTS + OUTPUTS + (PARTITION_VIEWS,)
# One partition view can be large: groups in the partition x scenarios x 16 bytes.
PARTITION_VIEWS_MAX_BYTES = 64 * 1024 * 1024
# Views are superseded within seconds, and a joining worker asks for fresh ones:
# the topic keeps ten minutes, enough to read what is in flight.
PARTITION_VIEWS_CONFIG = {"max.message.bytes": str(PARTITION_VIEWS_MAX_BYTES),
                          "retention.ms": "600000"}


@dataclass(frozen=True)
class Layout:
    """How the topics are created: partitions, replicas, and how long inputs are kept.

    The input topics are the record recovery and partition takeover replay from the
    start, so they are kept forever by default (``input_retention_ms = -1``); a shorter
    retention bounds the disk, and then a worker's state can be rebuilt only while the
    inputs since its oldest checkpoint are still there.
    """

    partitions: int = 4
    replication_factor: int = 1
    min_insync_replicas: int = 1
    input_retention_ms: int = -1

    def config(self, topic: str) -> dict[str, str]:
        """The topic configuration of ``topic`` (short name)."""
        config = {"min.insync.replicas": str(self.min_insync_replicas)}
        if topic in INPUTS:
            config["retention.ms"] = str(self.input_retention_ms)
        if topic == PARTITION_VIEWS:
            config.update(PARTITION_VIEWS_CONFIG)
        return config

    def partitions_of(self, topic: str) -> int:
        """How many partitions ``topic`` (short name) has: one for the partition views."""
        return 1 if topic == PARTITION_VIEWS else self.partitions


@dataclass(frozen=True)
class Topics:
    """Full topic names under a prefix (``ccp.`` by default)."""

    prefix: str

    def name(self, topic: str) -> str:
        """The full name of ``topic``: ``trades`` -> ``ccp.trades``."""
        return self.prefix + topic

    def short(self, name: str) -> str:
        """The short name of a full topic name: ``ccp.trades`` -> ``trades``."""
        return name.removeprefix(self.prefix)

    def names(self, topics: tuple[str, ...] = ALL) -> list[str]:
        """Full names of ``topics``."""
        return [self.name(t) for t in topics]
