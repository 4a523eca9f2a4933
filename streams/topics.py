"""Every topic name, written once.

Topics are created (:mod:`streams.kafka.admin`) before anything touches them: a
broker that auto-creates unknown topics would otherwise pick its own partition count.
"""

from __future__ import annotations

from dataclasses import dataclass

# Per-message inputs read in batches by the ingest loop.
TRADES, PRICES, COLLATERAL = "trades", "prices", "collateral"
HOT_INPUTS = (TRADES, PRICES, COLLATERAL)
# Low-rate inputs read by faust agents.
SETTLEMENTS, MEMBERS, INSTRUMENTS, SCENARIOS, RESOURCES = (
    "settlements", "members", "instruments", "scenarios", "resources")
REFERENCE_INPUTS = (SETTLEMENTS, MEMBERS, INSTRUMENTS, SCENARIOS, RESOURCES)
INPUTS = HOT_INPUTS + REFERENCE_INPUTS
# Inputs keyed by member and read together, partition number by partition number: a
# member's messages all belong to its home partition (:mod:`streams.homes`).
MEMBER_KEYED = (TRADES, COLLATERAL)
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
