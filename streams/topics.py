"""Every topic name, written once, and their explicit creation.

Topics are created before anything touches them: a broker that auto-creates
unknown topics would otherwise pick its own partition count.
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
# Outputs.
COVER2, MARGIN_CALLS, DEAD_LETTER = "cover2", "margin-calls", "dead-letter"
OUTPUTS = (COVER2, MARGIN_CALLS, DEAD_LETTER)
# Between workers: every partition's view, read by every worker.
PARTIALS = "partials"
ALL = INPUTS + OUTPUTS + (PARTIALS,)
# One partial view can be large: groups in the partition x scenarios x 16 bytes.
PARTIALS_MAX_BYTES = 64 * 1024 * 1024
# Views are superseded within seconds, and a joining worker asks for fresh ones:
# the topic keeps ten minutes, enough to read what is in flight.
PARTIALS_CONFIG = {"max.message.bytes": str(PARTIALS_MAX_BYTES), "retention.ms": "600000"}


@dataclass(frozen=True)
class Topics:
    """Full topic names under a prefix (``ccp.`` by default)."""

    prefix: str

    def name(self, topic: str) -> str:
        """The full name of ``topic``: ``trades`` -> ``ccp.trades``."""
        return self.prefix + topic

    def kind(self, name: str) -> str:
        """The short name of a full topic name: ``ccp.trades`` -> ``trades``."""
        return name.removeprefix(self.prefix)

    def names(self, topics: tuple[str, ...] = ALL) -> list[str]:
        """Full names of ``topics``."""
        return [self.name(t) for t in topics]


async def create_topics(bootstrap_servers: str, topics: Topics, partitions: int) -> list[str]:
    """Create every topic of the contract that does not exist yet; returns those created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics.names() if name not in existing]
        if missing:
            await admin.create_topics([
                NewTopic(name, 1, 1, topic_configs=PARTIALS_CONFIG)
                if name == topics.name(PARTIALS) else NewTopic(name, partitions, 1)
                for name in missing])
        return missing
    finally:
        await admin.close()
